"""Where a call's own files live under the data directory: its journal (transcript, fields
and tool effects as the call goes) and its recording. Privacy requests and the retention
sweep find them here; whatever writes them must use these paths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

JOURNALS = "journals"
RECORDINGS = "recordings"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


@dataclass(frozen=True)
class CallFiles:
    data_dir: Path

    def journal(self, call_id: str) -> Path:
        return self.data_dir / JOURNALS / f"{_checked(call_id)}.jsonl"

    def recording(self, call_id: str) -> Path:
        return self.data_dir / RECORDINGS / f"{_checked(call_id)}.ogg"

    def of_call(self, call_id: str) -> list[Path]:
        """The files this call left, if any."""
        if not _SAFE_ID.fullmatch(call_id):
            return []  # an id no file can be named after (ours never are)
        return [p for p in (self.journal(call_id), self.recording(call_id)) if p.exists()]

    def journals(self) -> Iterator[Path]:
        return _files(self.data_dir / JOURNALS, "*.jsonl")

    def recordings(self) -> Iterator[Path]:
        return _files(self.data_dir / RECORDINGS, "*.ogg")


def _checked(call_id: str) -> str:
    if not _SAFE_ID.fullmatch(call_id):
        raise ValueError(f"call id {call_id!r} cannot name a file")
    return call_id


def _files(folder: Path, pattern: str) -> Iterator[Path]:
    return iter(sorted(folder.glob(pattern))) if folder.is_dir() else iter(())
