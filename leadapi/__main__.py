"""`python -m leadapi`: serve the lead API; `python -m leadapi keys create|revoke|list`.

python -m leadapi                      # serve on LEADAPI_HOST:LEADAPI_PORT (docs at /docs)
python -m leadapi keys create website  # prints the new key once; store it in your form backend
python -m leadapi keys list
python -m leadapi keys revoke website  # by name or id
python -m leadapi leads import leads.csv --campaign spring  # a CSV campaign, row report
"""

from __future__ import annotations

import argparse
import csv
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from config import SettingsError
from config.logs import setup_logging
from console import console_deps, load_console_settings
from dialer.stores import open_store
from leadapi.csv_import import ImportRefused, import_csv
from leadapi.keys import KeyRing
from leadapi.service import admission_rules, app_for, utc_now
from leadapi.settings import LeadApiProcessSettings, load_leadapi_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m leadapi", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("create", help="create a key and print it once").add_argument("name")
    actions.add_parser("revoke", help="revoke a key by name or id").add_argument("name_or_id")
    actions.add_parser("list", help="list keys (never their tokens)")
    leads = commands.add_parser("leads", help="import leads from a CSV file into a campaign")
    lead_actions = leads.add_subparsers(dest="action", required=True)
    importing = lead_actions.add_parser("import", help="queue every row of a CSV file")
    importing.add_argument("file", type=Path)
    importing.add_argument("--campaign", required=True, help="an existing campaign's name")
    importing.add_argument("--errors", type=Path, help="also write the rejected rows here (CSV)")
    return parser


def leads_command(args: argparse.Namespace, settings: LeadApiProcessSettings) -> int:
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        report = import_csv(
            args.file, campaign=args.campaign, store=store, rules=admission_rules(settings),
            now=utc_now, random_hex=lambda: secrets.token_hex(12), progress=_progress_bar,
        )  # fmt: skip
    except (ImportRefused, OSError) as exc:
        print(f"cannot import {args.file}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(file=sys.stderr)
    for error in report.errors:
        print(f"line {error.line}: {error.field}: {error.message}")
    if args.errors is not None:
        with args.errors.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "field", "message"])
            writer.writerows((e.line, e.field, e.message) for e in report.errors)
    print(
        f"{report.rows} rows: {report.queued} queued, {report.duplicates} already queued, "
        f"{report.do_not_call} on the do-not-call list, {len(report.errors)} rejected"
    )
    return 1 if report.errors else 0


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr,
          flush=True)  # fmt: skip


def keys_command(args: argparse.Namespace, settings: LeadApiProcessSettings) -> int:
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        ring = KeyRing(store, now=utc_now)
        if args.action == "create":
            if any(k.name == args.name for k in ring.list()):
                print(f"a key named {args.name!r} exists; revoke it or pick another name",
                      file=sys.stderr)  # fmt: skip
                return 1
            created = ring.create(args.name)
            print(created.token)
            print(f"key {created.key.id} ({args.name}); shown once, store it now",
                  file=sys.stderr)  # fmt: skip
            return 0
        if args.action == "revoke":
            if ring.revoke(args.name_or_id):
                print(f"revoked {args.name_or_id}")
                return 0
            print(f"no live key named {args.name_or_id!r}", file=sys.stderr)
            return 1
        for key in ring.list():
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "live"
            print(f"{key.id}\t{key.name}\tcreated {key.created_at:%Y-%m-%d}\t{state}")
        return 0
    finally:
        store.close()


def serve(settings: LeadApiProcessSettings) -> int:
    import uvicorn

    setup_logging("INFO")
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        console = console_deps(load_console_settings(), store)  # the rep console, /console/
        app = app_for(settings, store=store, console=console)
        uvicorn.run(app, host=settings.leadapi.leadapi_host, port=settings.leadapi.leadapi_port,
                    log_config=None)  # fmt: skip
    finally:
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_leadapi_settings()
        if args.command == "keys":
            return keys_command(args, settings)
        if args.command == "leads":
            return leads_command(args, settings)
        return serve(settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
