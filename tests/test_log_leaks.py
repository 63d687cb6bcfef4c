"""The log check the e2e calls run: it finds what it must, and passes masked lines."""

from __future__ import annotations

import json
import logging

import pytest

from config.logs import JsonFormatter
from tests.log_leaks import leaks_in, secrets_in

pytestmark = pytest.mark.unit

SECRETS = secrets_in({"DEEPGRAM_API_KEY": "dg-secret-123", "LIVEKIT_URL": "ws://127.0.0.1:7880",
                      "WEBHOOK_SECRET": "whsec-abcdef-ghij"})  # fmt: skip


def line(message: str, **context: str) -> str:
    record = logging.LogRecord("tools", logging.INFO, __file__, 1, message, None, None)
    for key, value in context.items():
        setattr(record, key, value)
    return JsonFormatter().format(record)


def test_only_secret_variables_count_as_secrets() -> None:
    assert set(SECRETS) == {"DEEPGRAM_API_KEY", "WEBHOOK_SECRET"}


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('{"msg": "auth Token dg-secret-123"}', "secret DEEPGRAM_API_KEY"),
        ('{"msg": "dialing +14155550123"}', "phone +14155550123"),
        ('{"msg": "caller (415) 555-0123"}', "phone (415) 555-0123"),
        ('{"room": "call-_4155550123_x"}', "phone 4155550123"),
        ('{"msg": "invite to dana.smith@acme.example"}', "email dana.smith@acme.example"),
    ],
)
def test_a_raw_line_is_a_leak(text: str, what: str) -> None:
    found = leaks_in({"x.log": text}, secrets=SECRETS, phones=["+14155550123"])
    assert [leak.what for leak in found] == [what]


def test_our_formatted_lines_are_clean() -> None:
    text = "\n".join([
        line("dialing +14155550123 for dana.smith@acme.example", room="call-_+14155550123_x"),
        line("listening on 127.0.0.1:8081", call_id="AJ_QHE73qtWRyT3"),
    ])  # fmt: skip
    assert json.loads(text.splitlines()[0])["room"] == "call-_********0123_x"
    assert leaks_in({"x.log": text}, secrets=SECRETS, phones=["+14155550123"]) == []
