"""Phone numbers: one canonical form (E.164) everywhere, and masking for logs."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """The text is not a dialable phone number."""


def normalise_phone(raw: str, *, default_region: str = "US") -> str:
    """Return ``raw`` in E.164 (``+14155550100``) or raise ``InvalidPhoneNumber``.

    SIP From headers arrive as ``sip:+14155550100@host`` or ``tel:...``; those wrappers are
    stripped first.
    """
    text = raw.strip()
    for prefix in ("sip:", "sips:", "tel:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("@", 1)[0].split(";", 1)[0]
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber(f"{mask_phone(raw)} is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{mask_phone(raw)} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(value: str | None) -> str:
    """``+14155550123`` -> ``+1******0123``: enough to correlate logs, not enough to dial."""
    if not value:
        return "<none>"
    digits = [c for c in value if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    head = "+" + digits[0] if value.strip().startswith("+") else ""
    hidden = len(digits) - 4 - (1 if head else 0)
    return f"{head}{'*' * hidden}{''.join(digits[-4:])}"


def mask_email(value: str | None) -> str:
    if not value or "@" not in value:
        return "<none>"
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"
