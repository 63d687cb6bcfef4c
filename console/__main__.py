"""`python -m console invite EMAIL`: an invite link for a rep on the roster to set a password.

python -m console invite sam@example.com   # prints the link; valid CONSOLE_INVITE_HOURS
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config import SettingsError
from console.service import accounts_for, load_console_settings
from dialer.stores import open_store
from transfer.roster import Roster, RosterError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    invite = commands.add_parser("invite", help="print an invite link for a rep (by email or id)")
    invite.add_argument("rep")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_console_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        roster = Roster(store)
        invite = accounts_for(settings, store, roster).invite(args.rep)
    except RosterError as exc:
        print(f"error: {exc}; add the rep first with `python -m transfer reps add`",
              file=sys.stderr)  # fmt: skip
        return 2
    finally:
        store.close()
    base = settings.leadapi.console_public_url.rstrip("/")
    print(f"{base}/console/#invite={invite.token}")
    print(f"invite for {invite.rep.name} <{invite.rep.email}>, valid until "
          f"{invite.expires_at:%Y-%m-%d %H:%M} UTC; send it to them", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
