"""Load a process's settings: each group it names, with one message for every problem."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

T = TypeVar("T")


class SettingsError(SystemExit):
    """Raised at start when the configuration cannot work; the message says what to set."""


def load_settings(kind: type[T], env_file: Path | None = Path(".env")) -> T:
    """Build ``kind`` (a dataclass whose fields are settings groups) from the environment and
    ``env_file`` when it exists; a missing or invalid variable stops with its name."""
    use_env_file = env_file if env_file is not None and env_file.exists() else None
    groups: dict[str, Any] = {}
    problems: list[str] = []
    for name, group in _groups(kind).items():
        try:
            groups[name] = group(_env_file=use_env_file)
        except ValidationError as exc:
            problems.extend(_explain(group, exc))
    if problems:
        raise SettingsError(
            "\n".join(
                [
                    "The process cannot start; fix these settings (environment or .env):",
                    *problems,
                    "See .env.example for every variable and README.md for where to get keys.",
                ]
            )
        )
    return kind(**groups)


def _groups(kind: type[Any]) -> dict[str, type[BaseSettings]]:
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


def _explain(group: type[BaseSettings], exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        field = group.model_fields.get(name)
        purpose = f" ({field.description})" if field and field.description else ""
        problem = "is missing" if error["type"] == "missing" else f"is invalid: {error['msg']}"
        lines.append(f"  {name.upper()}{purpose} {problem}")
    return lines
