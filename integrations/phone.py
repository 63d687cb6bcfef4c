"""Phone numbers: one canonical form (E.164) everywhere."""

from __future__ import annotations

import phonenumbers

from integrations.masking import mask


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
        raise InvalidPhoneNumber(f"{_shown(raw)} is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{_shown(raw)} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _shown(raw: str) -> str:
    """What an error may say about the input: masked digits, never free text (it may be PII)."""
    return mask(raw) if any(c.isdigit() for c in raw) else "text without digits"
