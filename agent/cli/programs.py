"""Our other programs, reached from `python -m agent`: each subcommand runs the program's own
`main` (its module run with `python -m`), with the words after the subcommand as its arguments.
The process is replaced, not wrapped, so exit codes, signals and the terminal are the program's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn


@dataclass(frozen=True)
class Program:
    module: str  # run as `python -m <module>`
    prefix: tuple[str, ...]  # its own subcommand, when ours names one of its commands
    help: str
    own_arguments: bool = True  # False: it parses none, so `--help` is answered here


PROGRAMS: dict[str, Program] = {
    "api": Program("leadapi", (), "serve the lead API and the rep console (LEADAPI_PORT)"),
    "keys": Program("leadapi", ("keys",), "create, list and revoke lead API keys"),
    "import": Program("leadapi", ("leads", "import"), "import a CSV of leads into a campaign"),
    "dialer": Program("dialer", (), "dial what the lead API queued", own_arguments=False),
    "provision": Program("telephony.provision", (), "create or update the SIP trunks and dispatch"),
    "reps": Program("transfer", ("reps",), "the sales reps warm transfers go to"),
    "invite": Program("console", ("invite",), "an invite link to the rep console for a rep"),
    "privacy": Program("privacy", (), "forget a contact, or apply the retention settings once"),
    "stack": Program("localstack", (), "run the local LiveKit stack in the foreground"),
}


def program_argv(name: str, arguments: Sequence[str]) -> list[str]:
    """The command line that runs subcommand ``name`` with ``arguments``."""
    program = PROGRAMS[name]
    return [sys.executable, "-m", program.module, *program.prefix, *arguments]


def run_program(name: str, arguments: Sequence[str]) -> NoReturn:
    argv = program_argv(name, arguments)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
