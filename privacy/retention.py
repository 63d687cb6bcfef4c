"""The retention settings applied: transcripts and recordings older than their limit go.

Transcripts: blanked in the embedded CRM's call logs and the CRM outbox (the call, its
disposition and summary stay), and a call's journal is deleted. Recordings: the call's OGG
file is deleted. Age is the call's end (its record) or the file's last write. A limit of 0
keeps everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from calls.call_files import CallFiles
from config import RetentionSettings
from integrations.embedded import EmbeddedStore
from integrations.embedded_erasure import expire_transcripts
from integrations.outbox import Outbox
from privacy.forget import EMBEDDED_FILE, OUTBOX_FILE

logger = logging.getLogger("privacy")


@dataclass(frozen=True)
class SweepReport:
    transcripts: int = 0  # call records whose transcript was blanked
    journals: int = 0
    recordings: int = 0


async def sweep(*, data_dir: Path, retention: RetentionSettings, now: datetime) -> SweepReport:
    transcripts = journals = recordings = 0
    files = CallFiles(data_dir)
    if retention.transcript_retention_days:
        before = now - timedelta(days=retention.transcript_retention_days)
        transcripts = await _expire_records(data_dir, before)
        journals = await asyncio.to_thread(_delete_older, files.journals(), before)
    if retention.recording_retention_days:
        before = now - timedelta(days=retention.recording_retention_days)
        recordings = await asyncio.to_thread(_delete_older, files.recordings(), before)
    report = SweepReport(transcripts, journals, recordings)
    if report != SweepReport():
        logger.info("retention: %s", report)
    return report


async def sweep_forever(
    *,
    data_dir: Path,
    retention: RetentionSettings,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Sweep at start, then every ``RETENTION_SWEEP_MINUTES``; a failed sweep is logged and
    tried again next time."""
    if not (retention.transcript_retention_days or retention.recording_retention_days):
        return
    while True:
        try:
            await sweep(data_dir=data_dir, retention=retention, now=now())
        except Exception:
            logger.exception("retention sweep failed; trying again at the next one")
        await sleep(retention.retention_sweep_minutes * 60)


async def _expire_records(data_dir: Path, before: datetime) -> int:
    expired = 0
    if (data_dir / EMBEDDED_FILE).exists():
        store = EmbeddedStore(data_dir / EMBEDDED_FILE, now=lambda: before)
        try:
            expired += await expire_transcripts(store, before=before)
        finally:
            store.close()
    if (data_dir / OUTBOX_FILE).exists():
        expired += await asyncio.to_thread(_expire_outbox, data_dir / OUTBOX_FILE, before)
    return expired


def _expire_outbox(path: Path, before: datetime) -> int:
    outbox = Outbox(path)
    try:
        return outbox.expire_transcripts(before=before)
    finally:
        outbox.close()


def _delete_older(paths: Iterable[Path], before: datetime) -> int:
    deleted = 0
    for path in paths:
        if datetime.fromtimestamp(path.stat().st_mtime, UTC) < before:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted
