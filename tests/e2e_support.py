"""What the e2e test modules share: a lab per test (started on demand, stopped after), phones
hung up after the test with their recordings kept, and polling helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from callab.audio import AudioToolMissing
from callab.harness import CallLab, LabConfig
from callab.phone import TestPhone
from localstack import StackNotInstalled
from outage import apology_lines

StartLab = Callable[..., Awaitable[CallLab]]


@pytest.fixture
async def start_lab(tmp_path: Path) -> AsyncIterator[StartLab]:
    labs: list[CallLab] = []

    async def start(**config: Any) -> CallLab:
        lab = CallLab(LabConfig(workdir=tmp_path / "lab", **config))
        try:
            await lab.__aenter__()
        except (StackNotInstalled, AudioToolMissing) as exc:
            pytest.fail(f"{exc}", pytrace=False)
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        await lab.aclose()
        print(stt_summary(lab))  # shown by pytest only when the test failed


def stt_summary(lab: CallLab) -> str:
    """One line per STT stream: the audio the stand-in received, the speech it found and the
    texts it sent. When a caller goes unheard, this says whether their words reached it."""
    lines = [f"STT stand-in, {len(lab.stt.sessions)} stream(s):"]
    for stream in lab.stt.sessions:
        heard = [(u.start, u.end, u.delivered_at, (u.text or "<script ran out>")[:40])
                 for u in stream.utterances]  # fmt: skip
        lines.append(
            f"  {stream.request_id}: {stream.audio_seconds:.1f} s of audio, closed={stream.closed},"
            f" controls={sorted(set(stream.control_messages))}, speech={heard}"
        )
    return "\n".join(lines)


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[list[TestPhone]]:
    """Phones to hang up after the test; each leaves its recording in tmp_path."""
    placed: list[TestPhone] = []
    yield placed
    for index, phone in enumerate(placed):
        phone.write_recording(tmp_path / f"heard{index or ''}.wav")
        await phone.hang_up()


async def eventually(check: Callable[[], Any], *, limit_s: float = 30.0) -> Any:
    """The first truthy result of `check`, polled until `limit_s`."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not (result := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.2)
    return result


def spoken_texts(lab: CallLab) -> list[str]:
    """What the TTS was asked to say on calls; the outage apology, which each worker records
    ahead of time at its start (outage/), is left out."""
    return [c.text for c in spoken_contexts(lab)]


def spoken_contexts(lab: CallLab) -> list[Any]:
    """The TTS requests made on calls (text, language ...), as `spoken_texts`."""
    recorded_ahead = set(apology_lines().values())
    return [c for c in lab.tts.contexts if c.text and c.text not in recorded_ahead]


def zone_at_midday(now: datetime) -> str:
    """A fixed-offset zone where it is late morning or afternoon right now, so the lead is
    inside calling hours whenever the test runs."""
    offset = min(range(-12, 15), key=lambda o: (abs((now.hour + o) % 24 - 13), abs(o)))
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


async def eventually_async(check: Callable[[], Awaitable[Any]], *, limit_s: float) -> Any:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.3)
    return result
