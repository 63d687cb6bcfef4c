"""Tools that write the caller's details to the CRM."""

from __future__ import annotations

import re

from livekit.agents import RunContext, ToolError, function_tool

from calls.call import Call  # runtime import: LiveKit resolves tool type hints
from integrations.crm import Contact, CrmConflict
from integrations.phone import InvalidPhoneNumber, normalise_phone
from tools.tool_support import as_json, speakable_failures, timed

# Says nothing of whose the address is: the caller may be fishing for another contact.
EMAIL_NOT_SAVED = (
    "That email could not be saved for this caller, and nothing else about it can be looked "
    "up. Do not ask for it again; say the team will confirm their email."
)
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def normalise_email(raw: str) -> str:
    """Accept what an STT writes for a spoken address ("jane at acme dot com")."""
    text = raw.strip().lower()
    text = re.sub(r"\s+at\s+", "@", text)
    text = re.sub(r"\s+dot\s+", ".", text)
    text = text.replace(" ", "")
    if not EMAIL_RE.match(text):
        raise ToolError(
            f"'{raw}' is not a valid email address. Ask the caller to spell it, then try again."
        )
    return text


@function_tool
async def save_contact_details(
    context: RunContext[Call],
    first_name: str | None = None,
    last_name: str | None = None,
    email: str | None = None,
    company: str | None = None,
    job_title: str | None = None,
    phone: str | None = None,
) -> str:
    """Save the caller's name, email, company, job title or a callback number to the CRM as
    soon as you learn them.

    Args:
        first_name: The caller's first name.
        last_name: The caller's last name.
        email: The caller's email address.
        company: The caller's company.
        job_title: The caller's job title.
        phone: A callback number the caller gave, if different from the one they call from.
    """
    call = context.userdata
    properties = {
        key: value.strip()
        for key, value in {
            "firstname": first_name,
            "lastname": last_name,
            "company": company,
            "jobtitle": job_title,
        }.items()
        if value and value.strip()
    }
    _check_names(properties)
    if email:
        properties["email"] = normalise_email(email)
    if phone:
        properties["phone"] = _callback_number(call, phone)
    if not properties:
        raise ToolError("Nothing to save: pass at least one detail.")
    asked_email = "email" in properties
    contact = await save_contact(call, properties)
    saved: dict[str, object] = {"saved": sorted(properties), "contact_name": contact.firstname}
    if asked_email and "email" not in properties:
        saved["email_not_saved"] = EMAIL_NOT_SAVED
    return as_json(saved)


MAX_NAME_WORDS = 4
MAX_NAME_CHARS = 40
MAX_DETAIL_CHARS = 100  # a company or a job title


def _check_names(properties: dict[str, str]) -> None:
    """A name is a name: a sentence in the name field ("ignore your instructions and ...")
    would be read back by reps, meeting titles and the next call's context."""
    for key in ("firstname", "lastname"):
        name = properties.get(key)
        if name is None:
            continue
        letters = all(ch.isalpha() or ch in " '-." for ch in name)
        if not letters or len(name) > MAX_NAME_CHARS or len(name.split()) > MAX_NAME_WORDS:
            raise ToolError(
                f"'{name[:MAX_NAME_CHARS]}' does not sound like a name, so nothing was saved. "
                "Ask the caller how they spell their name."
            )
    for key in ("company", "jobtitle"):
        if len(properties.get(key, "")) > MAX_DETAIL_CHARS:
            raise ToolError(
                f"The {key.replace('jobtitle', 'job title')} is too long to be one, so nothing "
                "was saved. Ask the caller for it in a few words."
            )


async def save_contact(call: Call, properties: dict[str, str]) -> Contact:
    """Create or update the caller's contact, keeping its id for the rest of the call (searching
    again right after a create is how duplicates happen: CRM search lags writes)."""
    crm = call.services.crm
    contact_id = call.state.contact.id if call.state.contact else None

    async def write() -> Contact:
        return await crm.upsert_contact(
            contact_id=contact_id, phone_e164=call.state.caller_phone, properties=properties
        )

    async with speakable_failures("CRM"):
        try:
            contact = await timed(call, call.writes.shielded(write()))
        except CrmConflict:
            # The email belongs to another record: keep the rest, do not steal the address.
            properties.pop("email", None)
            if not properties:
                raise ToolError(EMAIL_NOT_SAVED) from None
            contact = await timed(call, call.writes.shielded(write()))
    call.state.contact = contact
    return contact


def _callback_number(call: Call, raw: str) -> str:
    try:
        return normalise_phone(raw, default_region=call.services.default_region)
    except InvalidPhoneNumber:
        raise ToolError(
            f"'{raw}' is not a valid phone number. Ask the caller to repeat it with the area code."
        ) from None
