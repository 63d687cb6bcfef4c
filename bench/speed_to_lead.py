"""Speed to lead: from a web-form lead POSTed to the lead API to the INVITE ringing the
lead's phone, through the dialer, LiveKit's agent dispatch, the worker and our SIP bridge.

    uv run python bench/speed_to_lead.py --leads 100 --out bench/results/speed_to_lead.json

The phone (our Go test phone) answers every call 486 busy, so each attempt ends at once and
the next lead is not held back by the caps; leads are sent one every ``--period`` seconds
(each once the previous INVITE arrived, if that took longer), so every figure is one lead's
own path, not queueing behind others, at a steady arrival rate.
Each lead has its own number (no de-duplication) and a zone where it is midday (always
inside calling hours). The dialer polls its queue every `--poll` seconds.

Where the time goes: the dialer's and the worker's JSON log lines carry a ``stage`` and their
wall-clock time ``t``; matched by the attempt's room (``dial-<call id>-1``), they split each
lead's path into the stages of ``STAGES``, printed as p50 / p95 (all processes share this
machine's clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from callab.harness import CallLab, LabConfig
from callab.scenarios import script
from callab.sip_phone import SipPhone, free_udp_port


def zone_at_midday(now: datetime) -> str:
    offset = min(range(-12, 15), key=lambda o: (abs((now.hour + o) % 24 - 13), abs(o)))
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


# (name, the mark that ends it): each stage runs from the previous stage's mark to its own.
STAGES = (
    ("api", "accepted"),  # POST sent -> 202 received: validated, admitted, committed
    ("queue", "claimed"),  # -> the dialer claimed the attempt (its poll, or a wake)
    ("dispatch", "dispatched"),  # -> DNC checked, CreateDispatch answered, dispatch recorded
    ("job_request", "job_received"),  # -> livekit-server offered the job to the worker
    ("job_start", "job_started"),  # -> accepted, assigned, the entrypoint runs in a process
    ("before_dial", "dial_sent"),  # -> CreateSIPParticipant sent
    ("sip", "invite"),  # -> livekit-server, the bridge joining the room, the INVITE at the phone
)
# Beside the path: joining the room, which the worker does while the phone rings.
SIDE = (("connect", "job_started", "connected"),)


@dataclass
class LeadTimes:
    """One lead's marks, wall-clock seconds."""

    room: str
    marks: dict[str, float] = field(default_factory=dict)

    def stages_ms(self) -> dict[str, float] | None:
        """Each stage's duration, or None when a mark is missing. A mark another one runs
        concurrently with may come before the previous mark: the stage is then 0."""
        marks = ["posted", *(mark for _, mark in STAGES)]
        if any(m not in self.marks for m in marks):
            return None
        out: dict[str, float] = {}
        reached = self.marks["posted"]
        for name, mark in STAGES:
            out[name] = max(0.0, 1000 * (self.marks[mark] - reached))
            reached = max(reached, self.marks[mark])
        return out


def log_marks(text: str) -> list[tuple[str, str, float]]:
    """(room, stage, time) of every JSON log line with a stage mark."""
    marks = []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict) and "stage" in record and "room" in record:
                marks.append((str(record["room"]), str(record["stage"]), float(record["t"])))
    return marks


def attach_marks(leads: list[LeadTimes], *logs: str) -> None:
    by_room = {lead.room: lead for lead in leads}
    for text in logs:
        for room, stage, at in log_marks(text):
            lead = by_room.get(room)
            if lead is not None:
                lead.marks.setdefault(stage, at)  # the first one: a retry would come later


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_lead(
    http: aiohttp.ClientSession, api_url: str, phone: SipPhone, index: int
) -> tuple[float, LeadTimes]:
    """POST -> INVITE in ms, and the lead's marks (the INVITE's on the wall clock)."""
    number = f"+1212555{index:04d}"
    lead = {"name": f"Lead {index}", "phone": number, "consent": {"given": True},
            "time_zone": zone_at_midday(datetime.now(UTC))}  # fmt: skip
    seen = len(phone.events)
    wall_offset = time.time() - time.monotonic()
    posted = time.monotonic()
    async with http.post(f"{api_url}/v1/leads", json=lead) as response:
        accepted = time.monotonic()
        if response.status != 202:
            raise RuntimeError(f"lead {index}: {response.status} {await response.text()}")
        body = await response.json()
    times = LeadTimes(room=f"dial-{body['id']}-1")
    times.marks.update(posted=posted + wall_offset, accepted=accepted + wall_offset)
    deadline = posted + 30
    while time.monotonic() < deadline:
        for event in phone.events[seen:]:
            if event.kind == "invite" and number.lstrip("+") in str(event.fields.get("to")):
                times.marks["invite"] = event.at + wall_offset
                return 1000 * (event.at - posted), times
        await asyncio.sleep(0.005)
    raise TimeoutError(f"lead {index}: no INVITE within 30 s")


def stage_figures(leads: list[LeadTimes]) -> dict[str, dict[str, int]]:
    """p50 / p95 of each stage over the leads with every mark, then of the side figures."""
    rows = []
    for lead in leads:
        row = lead.stages_ms()
        if row is None:
            continue
        for name, start, end in SIDE:
            if start in lead.marks and end in lead.marks:
                row[name] = 1000 * (lead.marks[end] - lead.marks[start])
        rows.append(row)
    figures = {}
    for name in [name for name, _ in STAGES] + [name for name, _, _ in SIDE]:
        values = [r[name] for r in rows if name in r]
        if values:
            figures[name] = {
                "p50": round(statistics.median(values)),
                "p95": round(percentile(values, 0.95)),
                "leads": len(values),
            }
    return figures


async def run(args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="speed-to-lead-"))
    settings = {"DIALER_POLL_SECONDS": str(args.poll), "DIALER_CALLS_PER_SECOND": "50",
                "DIALER_CALLING_DAYS": "mon,tue,wed,thu,fri,sat,sun"}  # fmt: skip
    config = LabConfig(workdir=workdir, script=script([]), utterances=[], with_sip=True,
                       settings=settings)  # fmt: skip
    busy_phone = SipPhone(port=free_udp_port(), record=workdir / "x.wav", reject=486)
    async with CallLab(config) as lab, busy_phone as phone:
        await lab.provision_sip(outbound_address=phone.address)
        api_url = await lab.start_outbound_side()
        key = await asyncio.to_thread(lab.create_api_key)
        headers = {"Authorization": f"Bearer {key}"}
        samples: list[float] = []
        leads: list[LeadTimes] = []
        failures: list[str] = []
        async with aiohttp.ClientSession(headers=headers) as http:
            started = time.monotonic()
            for index in range(args.leads):
                # A fixed arrival schedule, whatever each lead took: a faster path must not
                # mean more calls at once for the worker's process pool.
                await asyncio.sleep(max(0.0, started + index * args.period - time.monotonic()))
                try:
                    sample, times = await one_lead(http, api_url, phone, index)
                except (RuntimeError, TimeoutError) as exc:
                    failures.append(str(exc))
                else:
                    samples.append(sample)
                    leads.append(times)
        await asyncio.sleep(1)  # the last log lines flushed
        attach_marks(leads, lab.process_log("dialer"), lab.worker_log())
    return {
        "leads": args.leads,
        "reached": len(samples),
        "failures": failures,
        "post_to_invite_ms": {
            "p50": round(statistics.median(samples)) if samples else None,
            "p95": round(percentile(samples, 0.95)) if samples else None,
            "max": round(max(samples)) if samples else None,
        },
        "stages_ms": stage_figures(leads),
        "dialer_poll_s": args.poll,
        "period_s": args.period,
        "samples_ms": [round(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100)
    parser.add_argument("--poll", type=float, default=0.2, help="DIALER_POLL_SECONDS")
    parser.add_argument("--period", type=float, default=2.0, help="seconds from lead to lead")
    parser.add_argument("--out", type=Path, default=Path("bench/results/speed_to_lead.json"))
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    figures = result["post_to_invite_ms"]
    print(f"speed to lead over {result['reached']}/{result['leads']} leads: POST -> INVITE "
          f"{figures}")  # fmt: skip
    stages: Any = result["stages_ms"]
    for name in stages:
        print(f"  {name:20} p50 {stages[name]['p50']:5d} ms   p95 {stages[name]['p95']:5d} ms")
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
