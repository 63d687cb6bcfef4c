"""One way to hide phone numbers and emails, for logs, errors and what the LLM is told.

``+14155550123`` becomes ``********0123``: enough to correlate, not enough to dial.
"""

from __future__ import annotations

import re

# A number written with a leading +, or any run of 9+ digits and separators. Shorter runs
# (durations, ports, years) are left alone so metrics lines stay readable.
_PHONE = re.compile(r"\+\d[\d\-\s().]*\d|\d[\d\-\s().]{7,}\d")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")  # addresses in logs are not phone numbers
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask(text: str | None) -> str:
    """``text`` with every phone number and email address in it masked."""
    if not text:
        return "<none>"
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(_masked_number, text)


def _masked_number(match: re.Match[str]) -> str:
    found = match.group()
    if _IPV4.fullmatch(found):
        return found
    return "*" * max(len(found) - 4, 0) + found[-4:]
