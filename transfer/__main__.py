"""`python -m transfer reps ...`: the sales reps warm transfers go to (see README, Warm transfer).

python -m transfer reps add --name "Sam Lee" --email sam@example.com --phone +14155550142 \
    --territory north-america --segment enterprise --hours "mon-fri 09:00-17:30 America/New_York"
python -m transfer reps list
python -m transfer reps presence sam@example.com available   # or away, offline
python -m transfer reps remove sam@example.com
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from config import (
    BusinessSettings,
    IntegrationSettings,
    QueueSettings,
    SettingsError,
    load_settings,
)
from dialer.stores import open_store
from transfer.roster import PRESENCES, Rep, Roster, RosterError


@dataclass(frozen=True)
class RosterSettings:
    integrations: IntegrationSettings
    queue: QueueSettings
    business: BusinessSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m transfer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reps = commands.add_parser("reps", help="add, list, remove reps and set their presence")
    actions = reps.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a rep (offline until they switch to available)")
    add.add_argument("--name", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--phone", help="reach them by phone too (E.164 or national format)")
    add.add_argument("--territory", action="append", default=[], help="repeatable")
    add.add_argument("--segment", action="append", default=[], help="repeatable")
    add.add_argument("--hours", help='e.g. "mon-fri 09:00-17:30 America/New_York"')
    add.add_argument("--available", action="store_true", help="available at once")
    actions.add_parser("list", help="every rep, with presence")
    remove = actions.add_parser("remove", help="remove a rep, by email or id")
    remove.add_argument("rep")
    presence = actions.add_parser("presence", help="set a rep's presence")
    presence.add_argument("rep")
    presence.add_argument("presence", choices=[p for p in PRESENCES if p != "on_call"])
    return parser


def _line(rep: Rep) -> str:
    tags = ",".join(rep.territories + rep.segments) or "-"
    hours = str(rep.hours) if rep.hours else "any time"
    who = f"{rep.name} <{rep.email}>"
    return f"{rep.id}  {rep.presence:<9}  {who}  {rep.phone or '-'}  {tags}  {hours}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(RosterSettings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        roster = Roster(store)
        if args.action == "add":
            rep = roster.add(
                name=args.name, email=args.email, phone=args.phone, territories=args.territory,
                segments=args.segment, hours=args.hours,
                default_region=settings.business.default_region,
            )  # fmt: skip
            if args.available:
                rep = roster.set_presence(rep.id, "available")
            print(_line(rep))
        elif args.action == "list":
            for rep in roster.all():
                print(_line(rep))
        elif args.action == "remove":
            roster.remove(roster.find(args.rep).id)
            print(f"removed {args.rep}")
        elif args.action == "presence":
            print(_line(roster.set_presence(roster.find(args.rep).id, args.presence)))
    except RosterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
