"""JSON log lines for every process: the call id and room where a call set them, phone numbers
and emails masked."""

from __future__ import annotations

import json
import logging

from integrations.masking import mask

# What every LogRecord carries; anything else on a record came from a call's `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask(record.getMessage()),
            # epoch seconds, so stages can be timed across processes; ``at`` marks an earlier
            # moment the line reports (when a job was received, say)
            "t": round(getattr(record, "at", record.created), 3),
        }
        for key in ("call_id", "event_id", "room", "stage"):
            if hasattr(record, key):
                # A SIP room is named after the caller ("call-_+14155550123_x"): masked too.
                entry[key] = mask(str(getattr(record, key)))
        # Figures passed as `extra` (LiveKit's end-of-turn probability and delay, say) are
        # kept; text is not, since it may quote what the caller said.
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and isinstance(value, int | float):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
