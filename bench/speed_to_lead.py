"""Speed to lead: from a web-form lead POSTed to the lead API to the INVITE ringing the
lead's phone, through the dialer, LiveKit's agent dispatch, the worker and our SIP bridge.

    uv run python bench/speed_to_lead.py --leads 100 --out bench/results/speed_to_lead.json

The phone (our Go test phone) answers every call 486 busy, so each attempt ends at once and
the next lead is not held back by the caps; leads are sent one at a time, each after the
previous INVITE arrived, so every figure is one lead's own path, not queueing behind others.
Each lead has its own number (no de-duplication) and a zone where it is midday (always
inside calling hours). The dialer polls its queue every `--poll` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from callab.harness import CallLab, LabConfig
from callab.scenarios import script
from callab.sip_phone import SipPhone, free_udp_port


def zone_at_midday(now: datetime) -> str:
    offset = min(range(-12, 15), key=lambda o: (abs((now.hour + o) % 24 - 13), abs(o)))
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_lead(http: aiohttp.ClientSession, api_url: str, phone: SipPhone, index: int) -> float:
    number = f"+1212555{index:04d}"
    lead = {"name": f"Lead {index}", "phone": number, "consent": {"given": True},
            "time_zone": zone_at_midday(datetime.now(UTC))}  # fmt: skip
    seen = len(phone.events)
    posted = time.monotonic()
    async with http.post(f"{api_url}/v1/leads", json=lead) as response:
        if response.status != 202:
            raise RuntimeError(f"lead {index}: {response.status} {await response.text()}")
    deadline = posted + 30
    while time.monotonic() < deadline:
        for event in phone.events[seen:]:
            if event.kind == "invite" and number.lstrip("+") in str(event.fields.get("to")):
                return 1000 * (event.at - posted)
        await asyncio.sleep(0.005)
    raise TimeoutError(f"lead {index}: no INVITE within 30 s")


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
        failures: list[str] = []
        async with aiohttp.ClientSession(headers=headers) as http:
            for index in range(args.leads):
                try:
                    samples.append(await one_lead(http, api_url, phone, index))
                except (RuntimeError, TimeoutError) as exc:
                    failures.append(str(exc))
                await asyncio.sleep(args.gap)
    return {
        "leads": args.leads,
        "reached": len(samples),
        "failures": failures,
        "post_to_invite_ms": {
            "p50": round(statistics.median(samples)) if samples else None,
            "p95": round(percentile(samples, 0.95)) if samples else None,
            "max": round(max(samples)) if samples else None,
        },
        "dialer_poll_s": args.poll,
        "samples_ms": [round(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100)
    parser.add_argument("--poll", type=float, default=0.2, help="DIALER_POLL_SECONDS")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between leads")
    parser.add_argument("--out", type=Path, default=Path("bench/results/speed_to_lead.json"))
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    figures = result["post_to_invite_ms"]
    print(f"speed to lead over {result['reached']}/{result['leads']} leads: POST -> INVITE "
          f"{figures}")  # fmt: skip
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
