"""`dev`'s reload: the worker runs as a child process, restarted when a source file changes.

LiveKit Agents 1.8's own `dev` no longer reloads in process (it points to `lk agent dev`), so
the child is watched here with watchfiles; the local stack, started once by the parent, stays
up across reloads.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

from watchfiles import Change, DefaultFilter, run_process

logger = logging.getLogger("agent.dev")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WATCHED_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json")  # code, prompts, criteria
GRACEFUL_STOP_S = 10  # a reload lets the worker leave the room before it is killed


def source_directories(root: Path = PROJECT_ROOT) -> list[Path]:
    """The project's packages: what a reload follows (not .venv, data or the tests)."""
    return sorted(
        path
        for path in root.iterdir()
        if (path / "__init__.py").exists() and path.name not in {"tests", "bench"}
    )


class SourceFilter(DefaultFilter):
    def __call__(self, change: Change, path: str) -> bool:
        return path.endswith(WATCHED_SUFFIXES) and super().__call__(change, path)


def run_reloading(command: Sequence[str], *, watch: Sequence[Path]) -> int:
    """Run ``command`` until Ctrl-C, restarting it whenever a file under ``watch`` changes."""
    logging.getLogger("watchfiles").setLevel(logging.INFO)  # its DEBUG polls every 5 s
    logger.info("dev: watching %s for changes", ", ".join(str(p) for p in watch))
    run_process(
        *watch,
        target=shlex.join(command),
        target_type="command",
        callback=_announce,
        watch_filter=SourceFilter(),
        sigint_timeout=GRACEFUL_STOP_S,
    )
    return 0


def _announce(changes: set[tuple[Change, str]]) -> None:
    paths = sorted({_relative(path) for _, path in changes})
    logger.info("dev: reloading the worker; changed: %s", ", ".join(paths))


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(PROJECT_ROOT))
    except ValueError:
        return path
