"""Every sentence the agent says or is told lives in this package, loaded by name."""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

import yaml


class PromptError(LookupError):
    """A prompt file is missing, malformed, or a placeholder was left unfilled."""


def load_text(name: str) -> str:
    try:
        return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"no prompt named {name!r} in prompts/") from None


def load_yaml(name: str) -> Any:
    try:
        return yaml.safe_load(load_text(name))
    except yaml.YAMLError as exc:
        raise PromptError(f"prompts/{name} is not valid YAML: {exc}") from None


def render(template: str, **values: object) -> str:
    """Fill ``$placeholders``; a placeholder without a value is an error, not a silent gap."""
    try:
        return Template(template).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise PromptError(f"prompt placeholder ${exc.args[0]} has no value") from None
