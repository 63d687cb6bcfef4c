"""What the benchmarks share: comma lists of worker settings swept as every combination,
the agent's lines prepared the way the TTS stand-in synthesises them, and the percentiles
they report."""

from __future__ import annotations

import argparse
import itertools
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace

from agent.sales_agent import greeting
from calls.business import load_business_profile


def csv_floats(text: str) -> list[str]:
    return [str(float(v)) for v in text.split(",")]


def csv_ints(text: str) -> list[str]:
    return [str(int(v)) for v in text.split(",")]


# The barge-in settings both benchmarks sweep: CLI flag attribute -> (env name, value parser).
# The VAD's silence is among them: it ends the caller's speech, so it times the resume after a
# backchannel or a throat-clear as well as the end of a turn.
BARGE_IN_FLAGS = {
    "vad_min_silence": ("VAD_MIN_SILENCE_SECONDS", csv_floats),
    "min_interruption": ("MIN_INTERRUPTION_SECONDS", csv_floats),
    "min_interruption_words": ("MIN_INTERRUPTION_WORDS", csv_ints),
    "vad_activation": ("VAD_ACTIVATION_THRESHOLD", csv_floats),
    "input_frame_ms": ("AUDIO_INPUT_FRAME_MS", csv_ints),
    "false_interruption_timeout": ("FALSE_INTERRUPTION_TIMEOUT", csv_floats),
}
BARGE_IN_SETTINGS = {flag: env for flag, (env, _) in BARGE_IN_FLAGS.items()}


def add_barge_in_flags(parser: argparse.ArgumentParser) -> None:
    """``--min-interruption 0.05,0.2`` and the rest: comma lists, each value its own worker."""
    for flag, (_, parse) in BARGE_IN_FLAGS.items():
        parser.add_argument(
            "--" + flag.replace("_", "-"), type=parse, default=None,
            metavar="N[,N]" if parse is csv_ints else "X[,X]",
        )  # fmt: skip


def setting_grid(args: argparse.Namespace, flags: Mapping[str, str]) -> list[dict[str, str]]:
    """Every combination of the swept values, as worker settings: ``flags`` maps each CLI
    flag's attribute to its setting's env name; a flag not given is not swept."""
    axes = [
        [(env, value) for value in getattr(args, flag)]
        for flag, env in flags.items()
        if getattr(args, flag)
    ]
    return [dict(combo) for combo in itertools.product(*axes)]


def sentences(texts: Iterable[str]) -> list[str]:
    """The texts split by sentence, as the TTS stand-in synthesises them (a bench warms them
    up so espeak-ng's synthesis time never adds to the configured time to first audio)."""
    return [part for text in texts for part in re.split(r"(?<=[.!?;:])\s+", text)]


def bench_greeting(*, announce: bool) -> str:
    """What our worker greets a new inbound caller with in English; ``announce``: the AI and
    recording notices are on."""
    services = SimpleNamespace(
        business=load_business_profile(), announce_ai=announce, announce_recording=announce
    )
    state = SimpleNamespace(contact=None, lead=None, direction="inbound")
    call = SimpleNamespace(services=services, state=state, language="en")
    return greeting(call)  # type: ignore[arg-type]  # only these fields are read


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50 (the median) and p95 (nearest rank), to 0.1; None for no values."""
    if not values:
        return {"p50": None, "p95": None}
    ordered = sorted(values)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}
