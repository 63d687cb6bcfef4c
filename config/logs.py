"""JSON log lines for every process: the call id and room where a call set them, phone numbers
and emails masked."""

from __future__ import annotations

import json
import logging

from integrations.masking import mask


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key in ("call_id", "event_id", "room"):
            if hasattr(record, key):
                # A SIP room is named after the caller ("call-_+14155550123_x"): masked too.
                entry[key] = mask(str(getattr(record, key)))
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
