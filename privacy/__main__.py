"""`python -m privacy`: forget a contact by phone number, or apply the retention settings once.

python -m privacy forget +14155550123   # every store we keep, and the CRM; prints the report
python -m privacy sweep                 # TRANSCRIPT_/RECORDING_RETENTION_DAYS, once
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from config import SettingsError
from config.logs import setup_logging
from dialer.stores import open_store
from integrations.phone import InvalidPhoneNumber
from privacy.retention import sweep
from privacy.settings import PrivacySettings, eraser_for, load_privacy_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m privacy", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    forget = commands.add_parser("forget", help="delete a contact's data by phone number")
    forget.add_argument("phone", help="E.164 (+14155550123) or national in DEFAULT_REGION")
    commands.add_parser("sweep", help="apply the retention settings once")
    return parser


async def forget_command(phone: str, settings: PrivacySettings) -> int:
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        eraser = eraser_for(
            settings.integrations, queue=store, default_region=settings.business.default_region
        )
    except SettingsError as exc:
        store.close()
        print(exc, file=sys.stderr)
        return 2
    try:
        report = await eraser.forget(phone)
    except InvalidPhoneNumber as exc:
        print(f"not a phone number: {exc}; nothing was changed", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(json.dumps(report.as_dict(), indent=2))
    if not report.complete:
        print("; ".join(report.errors), file=sys.stderr)
        return 1
    return 0


async def sweep_command(settings: PrivacySettings) -> int:
    report = await sweep(
        data_dir=settings.integrations.data_dir,
        retention=settings.retention,
        now=datetime.now(UTC),
    )
    print(json.dumps(dataclasses.asdict(report)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_privacy_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging("WARNING")
    if args.command == "forget":
        return asyncio.run(forget_command(args.phone, settings))
    return asyncio.run(sweep_command(settings))


if __name__ == "__main__":
    sys.exit(main())
