"""What must never be in a log line: a secret the process was given, a phone number or an
email address unmasked. Used on the logs of e2e calls."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

# Unmasked, a number or address in any of these shapes; masked ones keep 4 digits or one
# letter and asterisks, which these do not match.
_E164 = re.compile(r"\+\d{8,15}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Variables whose value is a secret (the rest of a process's environment is not).
SECRET_VARIABLES = ("API_KEY", "API_SECRET", "ACCESS_TOKEN", "PASSWORD", "WEBHOOK_SECRET")


@dataclass(frozen=True)
class Leak:
    where: str  # file:line
    what: str  # "secret DEEPGRAM_API_KEY", "phone +1415...", "email"
    line: str


def secrets_in(
    env: Mapping[str, str], *, service_account_file: Path | None = None
) -> dict[str, str]:
    """The secret values a process was started with, by name: every variable whose name
    says it is one, and the private key of a service-account file."""
    found = {name: value for name, value in env.items()
             if any(part in name for part in SECRET_VARIABLES) and len(value) >= 6}  # fmt: skip
    if service_account_file is not None:
        key = json.loads(service_account_file.read_text())
        found["GOOGLE private_key_id"] = key["private_key_id"]
        body = [line for line in key["private_key"].splitlines() if "PRIVATE KEY" not in line]
        found |= {f"GOOGLE private_key line {i}": line for i, line in enumerate(body) if line}
    return found


def phone_spellings(numbers: Iterable[str]) -> set[str]:
    """Each number as E.164, national digits and the usual national format."""
    spellings = set()
    for number in numbers:
        parsed = phonenumbers.parse(number)
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        spellings |= {number, str(parsed.national_number), national}
    return spellings


def leaks_in(
    logs: Mapping[str, str], *, secrets: Mapping[str, str], phones: Iterable[str]
) -> list[Leak]:
    """Every line of ``logs`` (name -> text) that holds a secret, an unmasked number (any
    E.164 number, or a known one in another spelling) or an email address."""
    spellings = {s for s in phone_spellings(phones) if not _E164.fullmatch(s)}
    leaks = []
    for name, text in logs.items():
        for number, line in enumerate(text.splitlines(), start=1):
            where = f"{name}:{number}"
            leaks += [Leak(where, f"secret {k}", line) for k, v in secrets.items() if v in line]
            leaks += [Leak(where, f"phone {m}", line) for m in _E164.findall(line)]
            rest = _E164.sub("", line)  # a number found as E.164 is not counted twice
            leaks += [Leak(where, f"phone {s}", line) for s in spellings if s in rest]
            leaks += [Leak(where, f"email {m}", line) for m in _EMAIL.findall(line)]
    return leaks
