"""CSV campaign upload: how long `POST /v1/campaigns` with a file of N rows takes, and what it
does to web-form leads POSTed meanwhile.

    uv run python bench/csv_upload.py --rows 10000 --store sqlite
    uv run python bench/csv_upload.py --rows 10000 --store postgres   # starts its own cluster

`python -m leadapi` runs as its own process on loopback (the settings `make run` uses, a fresh
data directory); the file has N valid rows with distinct numbers and consent, so every row is
queued. While the upload runs, one lead is POSTed every 0.1 s to `/v1/leads` and its latency
recorded: a web-form lead must not wait behind an import.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.dialer_load import postgres  # the cluster the dialer bench starts

_AREAS = ("212", "646", "718", "917", "347", "929")  # New York; 555-0000 to 555-9999 each


def phone(n: int) -> str:
    return f"+1{_AREAS[n // 10_000 % len(_AREAS)]}555{n % 10_000:04d}"


def csv_text(rows: int) -> str:
    lines = ["phone,name,company,consent,time_zone,interest"]
    lines += [f"{phone(n)},Lead {n},Acme,yes,America/New_York,forecasting" for n in range(rows)]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def lead_api(env: dict[str, str], workdir: Path) -> Iterator[str]:
    port = env["LEADAPI_PORT"]
    log = (workdir / "leadapi.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "leadapi"], env=env, cwd=workdir,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((workdir / "leadapi.log").read_text()[-2000:])
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def create_key(env: dict[str, str], workdir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "leadapi", "keys", "create", "bench"], env=env, cwd=workdir,
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def post_leads_meanwhile(
    base: str, headers: dict[str, str], stop: threading.Event, out: list[float]
) -> None:
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        n = 0
        while not stop.is_set():
            lead = {"name": "Web", "phone": f"+1415555{n % 10_000:04d}", "consent": {"given": True},
                    "time_zone": "America/New_York"}  # fmt: skip
            started = time.monotonic()
            response = http.post("/v1/leads", json=lead)
            if response.status_code in (200, 202):
                out.append(1000 * (time.monotonic() - started))
            n += 1
            stop.wait(0.1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="csv-upload-"))
    env = {**os.environ, "DATA_DIR": str(workdir / "data"), "LEADAPI_PORT": str(free_port()),
           "LEAD_CONSENT_REQUIRED": "true"}  # fmt: skip
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    env.pop("LIVEKIT_URL", None)
    body = csv_text(args.rows)
    key = create_key(env, workdir)
    headers = {"Authorization": f"Bearer {key}"}
    with lead_api(env, workdir) as base:
        alone: list[float] = []
        meanwhile: list[float] = []
        stop = threading.Event()
        poster = threading.Thread(target=post_leads_meanwhile,
                                  args=(base, headers, stop, meanwhile))  # fmt: skip
        with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
            for n in range(20):  # latency with nothing else going on
                started = time.monotonic()
                lead = {"phone": f"+1310555{n:04d}", "consent": {"given": True}}
                http.post("/v1/leads", json=lead)
                alone.append(1000 * (time.monotonic() - started))
            poster.start()
            started = time.monotonic()
            response = http.post("/v1/campaigns", data={"name": "bench"},
                                 files={"file": ("leads.csv", body, "text/csv")})  # fmt: skip
            upload_s = time.monotonic() - started
            stop.set()
            poster.join()
            answer = response.json()
    report = answer.get("import", {})
    return {
        "rows": args.rows,
        "store": args.store,
        "status": response.status_code,
        "upload_s": round(upload_s, 2),
        "rows_per_s": round(args.rows / upload_s),
        "queued": report.get("queued"),
        "rejected": len(report.get("rejected", [])),
        "lead_ms_alone": _figures(alone),
        "lead_ms_during_upload": _figures(meanwhile),
    }


def _figures(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(values),
        "p50": round(statistics.median(ordered)),
        "p95": round(ordered[round(0.95 * (len(ordered) - 1))]),
        "max": round(ordered[-1]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with postgres(args):
        result = run(args)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["status"] in (200, 201, 202) else 1


if __name__ == "__main__":
    sys.exit(main())
