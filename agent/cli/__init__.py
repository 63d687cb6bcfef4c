"""The command line of `python -m agent` (its `__main__` runs the worker commands). The console
(`agent.cli.terminal`) is imported when used: it loads LiveKit Agents."""

from agent.cli.parser import command_parser
from agent.cli.programs import PROGRAMS, program_argv, run_program
from agent.cli.reload import run_reloading, source_directories

__all__ = [
    "PROGRAMS",
    "command_parser",
    "program_argv",
    "run_program",
    "run_reloading",
    "source_directories",
]
