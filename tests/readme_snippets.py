"""The code blocks the README gives sales operations, as they would paste them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(after: str, *, language: str) -> str:
    """The first ``language`` code block after the text ``after`` in README.md."""
    text = README.read_text()
    assert after in text, f"README.md no longer says {after!r}"
    return text.split(after, 1)[1].split(f"```{language}\n", 1)[1].split("```", 1)[0]


def run_node(directory: Path, script: str, *args: str) -> str:
    """Runs an ES module with Node (skipped, saying so, where Node is not installed)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the README's JavaScript is not checked")
    path = directory / "main.mjs"
    path.write_text(script)
    done = subprocess.run(
        [node, str(path), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
