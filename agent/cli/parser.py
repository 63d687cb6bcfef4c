"""`python -m agent`'s command line: LiveKit's agent commands (`start`, `dev`, `console`)
beside our other programs (see ``agent.cli.programs``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.programs import PROGRAMS

DESCRIPTION = """\
The sales agent. With no command: the worker, with a local LiveKit stack when LIVEKIT_URL is
unset (`make run` adds --outbound). `start`, `dev` and `console` follow LiveKit's agent CLI;
the other commands run our other programs, and what follows them is theirs (`<command> --help`).
"""


def command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _outbound(parser)
    commands = parser.add_subparsers(dest="command", metavar="<command>")
    start = commands.add_parser("start", help="the worker, against the configured LiveKit")
    _outbound(start)
    start.add_argument("--log-level", help="DEBUG, INFO ... (default: LOG_LEVEL)")
    dev = commands.add_parser("dev", help="the worker with reload, debug logs, a local stack")
    _outbound(dev)
    dev.add_argument("--no-reload", dest="reload", action="store_false",
                     help="do not restart the worker when a source file changes")  # fmt: skip
    dev.add_argument("--watch", type=Path, action="append",
                     help="follow this directory, not our packages; repeatable")  # fmt: skip
    console = commands.add_parser(
        "console",
        help="talk to the agent in the terminal",
        description="Talk to the agent in the terminal with LiveKit's console. Its own options "
        "(--input-device, --output-device, --list-devices, --record, --log-level) pass through.",
    )
    console.add_argument("--text", action="store_true",
                         help="type instead of speaking: only OPENAI_API_KEY (and optionally "
                         "OPENAI_BASE_URL, LLM_MODEL) is needed")  # fmt: skip
    for name, program in PROGRAMS.items():
        commands.add_parser(name, help=program.help, add_help=not program.own_arguments)
    return parser


def _outbound(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--outbound", action="store_true",
                        help="also run the dialer and the lead API beside the worker")  # fmt: skip
