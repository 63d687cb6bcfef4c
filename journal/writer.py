"""Writing one call's journal: one JSON line per event, appended and flushed as it happens.

The job process holds an exclusive lock on the file for as long as the call runs; the
operating system drops the lock when the process dies, however it dies (a kill -9, the OOM
killer), which is how the recovery tells a call in progress from one whose worker is gone.
A line reaches the kernel when written, so a killed process loses nothing it wrote; a machine
that loses power may lose the last lines (the file is not fsynced per line).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from livekit.agents import AgentSession

from calls.call import Call
from calls.call_files import CallFiles
from calls.transcript import transcript_line
from calls.wrapup import deal_request, draft_record
from integrations.outbox import to_json

logger = logging.getLogger("journal")


class CallJournal:
    def __init__(self, path: Path, call: Call, *, room: str | None = None) -> None:
        self._path = path
        self._call = call
        self._room = room
        self._file: IO[str] | None = None
        self._last_facts: str | None = None

    @classmethod
    def open(cls, call: Call, *, data_dir: Path, room: str | None = None) -> CallJournal:
        """Start the call's journal (locked by this process) and route the tools' effects to
        it. ``room``: the LiveKit room, hung up by the recovery if the caller is still in it.
        A journal that cannot be written is logged and the call goes on without one."""
        journal = cls(CallFiles(data_dir).journal(call.state.call_id), call, room=room)
        try:
            journal._open()
        except OSError as exc:
            logger.error("the call journal cannot be written; a crash would lose it: %r", exc)
            return journal
        call.effects = journal.effect
        journal.facts()
        return journal

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("a", encoding="utf-8")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # before the first line
        self._file = handle
        self._write({"kind": "begin", "call_id": self._call.state.call_id, "room": self._room,
                     "pid": os.getpid()})  # fmt: skip

    def follow(self, session: AgentSession[Any]) -> None:
        """Every spoken line as it is added, and the facts after every line and tool step."""
        session.on("conversation_item_added", lambda ev: self.line(ev.item))
        session.on("function_tools_executed", lambda _ev: self.facts())

    def line(self, item: Any) -> None:
        text = transcript_line(item)
        if text:
            self._write({"kind": "line", "text": text})
        self.facts()

    def facts(self) -> None:
        """What the wrap-up would record now; written only when it changed."""
        if self._file is None:
            return
        draft = draft_record(self._call, transcript="", summary="")
        facts = {
            "record": json.loads(to_json(draft.record)),
            # the deal it would earn, so a booking settled by the recovery gets one too
            "deal": json.loads(to_json(deal_request(self._call, draft.record))),
            "contact_updates": draft.contact_updates,
        }
        key = json.dumps({**facts, "record": {**facts["record"], "ended_at": None}})
        if key != self._last_facts:
            self._last_facts = key
            self._write({"kind": "facts", **facts})

    def effect(self, kind: str, data: dict[str, str]) -> None:
        self._write({"kind": "effect", "effect": kind, **data})

    def finish(self, *, recorded: bool) -> None:
        """The call is over. Recorded (in the CRM or the outbox): the journal goes. Not
        recorded (the wrap-up failed): it stays, unlocked, for the recovery to deliver."""
        handle, self._file = self._file, None
        if handle is None:
            return
        if recorded:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        handle.close()  # releases the lock

    def _write(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            return
        entry["at"] = self._call.now().isoformat()
        try:
            self._file.write(json.dumps(entry, default=str) + "\n")
            self._file.flush()
        except OSError as exc:  # a full disk must not end the call
            logger.error("call journal write failed: %r", exc)
