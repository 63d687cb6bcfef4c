"""Voicemail detection over the labelled greetings in bench/greetings.py: how often a person is
taken for a mailbox (false positive), a mailbox for a person (false negative), and how long the
decision takes.

    uv run python bench/voicemail_detection.py [--only NAME ...] [--parallel 2] [--out FILE]

Each greeting is played in real time into a real ``AgentSession`` (Silero VAD, LiveKit's local
end-of-turn model, the production turn-taking settings) through the real Deepgram and OpenAI
plugins, with ``voicemail.CalleeScreen`` running on it exactly as on a call: LiveKit's AMD on
the session's transcripts and LLM, our beep detector on the same audio. What is real and what
is not:

- the beep detector, the timing (VAD, end of turn, AMD's silence and no-speech timers) and our
  decision rules run for real on the synthesised audio;
- the STT is the Deepgram stand-in given each greeting's true words: a perfect transcript;
- the LLM step is, by default, the OpenAI stand-in's keyword rule (callab/standins/
  greeting_rules.py), so on the LLM side the figure measures that rule, not a model. With
  ``EVALS_API_KEY`` and ``EVALS_BASE_URL`` set (optionally ``EVALS_MODEL``), AMD asks that real
  OpenAI-compatible endpoint instead.

A person's decision time is from the end of their first words to the screen's verdict, shown
beside when the session's turn detector ended their turn (the opener waits for that turn
anyway, so only a verdict later than the turn is delay they hear). A mailbox's is from the end
of the beep (or of the greeting, when there is none) to the moment the message would start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession, StopResponse, llm
from livekit.agents.utils import http_context
from livekit.agents.voice.io import AudioInput
from livekit.plugins import deepgram, openai, silero

warnings.filterwarnings("ignore", category=DeprecationWarning)

from bench.greetings import GREETINGS, RATE, Greeting, line_noise, render, timeline  # noqa: E402
from callab.standins.chat_script import ChatScript  # noqa: E402
from callab.standins.deepgram_stt import DeepgramSTTStandin  # noqa: E402
from callab.standins.openai_chat import OpenAIChatStandin  # noqa: E402
from voicemail import CalleeScreen, Decision  # noqa: E402

FRAME_S = 0.02
SESSION_RATE = 16000
TAIL_S = 12.0  # quiet line after the greeting: a mailbox records, a person waits


class _Line(AudioInput):
    """The callee's side of the line: the greeting in real time, then line noise. The session
    and the beep detector (on a call, its own stream of the callee's track) get every frame."""

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__(label="bench-line")
        resampler = rtc.AudioResampler(RATE, SESSION_RATE, quality=rtc.AudioResamplerQuality.HIGH)
        step = int(RATE * FRAME_S)
        self._frames = [
            resampled
            for i in range(0, samples.size - step + 1, step)
            for resampled in resampler.push(
                rtc.AudioFrame(samples[i : i + step].tobytes(), RATE, 1, step)
            )
        ]
        self._session: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()
        self._taps: list[asyncio.Queue[rtc.AudioFrame]] = []

    def tap(self) -> AsyncIterator[rtc.AudioFrame]:
        queue: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()
        self._taps.append(queue)

        async def frames() -> AsyncIterator[rtc.AudioFrame]:
            while True:
                yield await queue.get()

        return frames()

    async def play(self) -> None:
        start = time.monotonic()
        for index, frame in enumerate(self._frames):
            await asyncio.sleep(max(0.0, start + index * frame.duration - time.monotonic()))
            for queue in (self._session, *self._taps):
                queue.put_nowait(frame)

    async def __anext__(self) -> rtc.AudioFrame:
        return await self._session.get()


class _Listener(Agent):
    """Never speaks; notes when each of the callee's turns ended."""

    def __init__(self) -> None:
        super().__init__(instructions="Listen.")
        self.turns_at: list[float] = []

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        self.turns_at.append(time.monotonic())
        raise StopResponse()


@dataclass
class Outcome:
    name: str
    label: str
    expect: str
    action: str  # the last decision: open, leave_message, hang_up, or none
    first_action: str
    reason: str
    amd_category: str | None
    has_beep: bool
    beep_heard: bool
    decided_s: float | None  # from the answer
    reference_s: float  # end of first words (person) / of the beep or greeting (mailbox)
    turn_end_s: float | None  # when the turn detector ended the person's first turn
    correct: bool


def _llm(stand_in: OpenAIChatStandin) -> openai.LLM:
    key, base = os.environ.get("EVALS_API_KEY"), os.environ.get("EVALS_BASE_URL")
    if key and base:
        return openai.LLM(model=os.environ.get("EVALS_MODEL", "gpt-4.1-mini"), api_key=key,
                          base_url=base, temperature=0.0)  # fmt: skip
    return openai.LLM(model="standin", api_key="bench", base_url=stand_in.base_url)


async def run_one(greeting: Greeting, vad: silero.VAD) -> Outcome:
    from agent.session import turn_detector

    samples = render(greeting)
    samples = np.concatenate([samples, line_noise(TAIL_S, greeting.noise_dbfs)])
    first_end, sound_end, beep_end = timeline(greeting)
    async with (
        DeepgramSTTStandin(utterances=greeting.utterances(), final_delay_ms=100) as stt,
        OpenAIChatStandin(script=ChatScript(steps=()), ttft_ms=300) as chat,
    ):
        session: AgentSession[Any] = AgentSession(
            stt=deepgram.STT(model="nova-3", api_key="bench", base_url=stt.base_url,
                             sample_rate=SESSION_RATE, endpointing_ms=25, interim_results=True),
            llm=_llm(chat), vad=vad,
            turn_handling={
                "turn_detection": turn_detector(),
                "endpointing": {"mode": "fixed", "min_delay": 0.4, "max_delay": 3.0},
                "interruption": {"enabled": True, "mode": "vad"},
            },
        )  # fmt: skip
        line = _Line(samples)
        session.input.audio = line
        agent = _Listener()
        await session.start(agent=agent)
        screen = CalleeScreen(session, callee_audio=line.tap)
        await screen.start()
        await asyncio.sleep(0.3)  # the STT connection is up; the line "answers" now
        answered = time.monotonic()
        player = asyncio.create_task(line.play())
        decisions: list[Decision] = []
        try:
            async with asyncio.timeout(sound_end + TAIL_S):
                async for decision in screen.decisions():
                    decisions.append(decision)
        except TimeoutError:
            pass
        player.cancel()
        await session.aclose()
    last = decisions[-1] if decisions else None
    mailbox = greeting.label == "machine"
    reference = (beep_end if beep_end is not None else sound_end) if mailbox else first_end
    turn_end = next((t - answered for t in agent.turns_at), None)
    return Outcome(
        name=greeting.name, label=greeting.label, expect=greeting.expect,
        action=last.action if last else "none",
        first_action=decisions[0].action if decisions else "none",
        reason=last.reason if last else "", amd_category=last.amd_category if last else None,
        has_beep=greeting.has_beep, beep_heard=bool(screen.beeps),
        decided_s=(last.at - answered) if last else None, reference_s=reference,
        turn_end_s=turn_end, correct=bool(last and last.action == greeting.expect),
    )  # fmt: skip


def report(outcomes: list[Outcome]) -> dict[str, Any]:
    people = [o for o in outcomes if o.label == "human"]
    machines = [o for o in outcomes if o.label == "machine"]
    false_positive = [o for o in people if o.action != "open"]
    false_negative = [o for o in machines if o.action not in ("leave_message", "hang_up")]
    # people who spoke before the verdict (one who stays silent is opened by the no-speech rule)
    person_delay = [o.decided_s - o.reference_s for o in people
                    if o.action == "open" and o.decided_s is not None
                    and o.decided_s > o.reference_s]  # fmt: skip
    heard_delay = [max(0.0, o.decided_s - o.turn_end_s) for o in people
                   if o.decided_s is not None and o.turn_end_s is not None]  # fmt: skip
    messages = [o for o in machines if o.action == "leave_message" and o.decided_s is not None]
    after_beep = [o.decided_s - o.reference_s for o in messages if o.has_beep]
    after_greeting = [o.decided_s - o.reference_s for o in messages if not o.has_beep]
    summary = {
        "greetings": len(outcomes), "people": len(people), "machines": len(machines),
        "false_positives": [o.name for o in false_positive],
        "false_negatives": [o.name for o in false_negative],
        "wrong_action": [o.name for o in outcomes if not o.correct],
        "beeps_heard": f"{sum(o.beep_heard for o in outcomes if o.has_beep)} of "
        f"{sum(o.has_beep for o in outcomes)} greetings with a beep",
        "beeps_heard_where_there_was_none": [o.name for o in outcomes
                                             if o.beep_heard and not o.has_beep],
        "opened_then_revised_by_a_late_beep": [
            o.name for o in outcomes if o.first_action == "open" and o.action != "open"
        ],
        "person_verdict_after_words_s": _stats(person_delay),
        "person_verdict_after_turn_end_s": _stats(heard_delay),
        "message_decided_after_the_beep_s": _stats(after_beep),
        "message_decided_after_a_greeting_without_beep_s": _stats(after_greeting),
        "llm": "endpoint " + os.environ["EVALS_BASE_URL"]
        if os.environ.get("EVALS_API_KEY") and os.environ.get("EVALS_BASE_URL")
        else "OpenAI stand-in keyword rule",
    }  # fmt: skip
    return summary


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "p50": round(statistics.median(values), 3),
            "p95": round(p95, 3), "max": round(max(values), 3)}  # fmt: skip


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="greeting names")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from livekit.local_inference import init_eot

    init_eot()
    vad = silero.VAD.load(min_silence_duration=0.55)
    chosen = [g for g in GREETINGS if not args.only or g.name in args.only]
    gate = asyncio.Semaphore(args.parallel)

    async def bounded(greeting: Greeting) -> Outcome:
        async with gate:
            outcome = await run_one(greeting, vad)
            mark = "ok " if outcome.correct else "BAD"
            decided = f"{outcome.decided_s:.2f}" if outcome.decided_s is not None else "-"
            turn = f"{outcome.turn_end_s:.2f}" if outcome.turn_end_s is not None else "-"
            print(
                f"{mark} {outcome.name:28s} {outcome.label:7s} -> {outcome.action:13s} "
                f"({outcome.reason}, amd={outcome.amd_category}) decided {decided} s, "
                f"reference {outcome.reference_s:.2f} s, turn end {turn} s",
                flush=True,
            )
            return outcome

    async with http_context.open():
        outcomes = await asyncio.gather(*(bounded(g) for g in chosen))
    summary = report(list(outcomes))
    print(json.dumps(summary, indent=2))
    if args.out:
        results = {"summary": summary, "outcomes": [asdict(o) for o in outcomes]}
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
