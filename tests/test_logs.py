"""The JSON log line: figures passed as `extra` kept, text (which may quote a caller) dropped,
phone numbers masked in the message."""

from __future__ import annotations

import json
import logging

from config.logs import JsonFormatter


def test_a_log_line_keeps_figures_from_extra_and_drops_their_text() -> None:
    record = logging.getLogger("livekit.agents").makeRecord(
        "livekit.agents", logging.DEBUG, __file__, 1, "eot prediction for %s", ("+14155550123",),
        None, extra={"probability": 0.21, "endpointing_delay": 2.5, "from_cache": False,
                     "lk.pii.user_input": "my number is +14155550123", "trigger": "vad"},
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["probability"] == 0.21 and line["endpointing_delay"] == 2.5
    assert line["from_cache"] is False
    assert "lk.pii.user_input" not in line and "trigger" not in line
    assert "+14155550123" not in line["msg"] and line["msg"].startswith("eot prediction for")
