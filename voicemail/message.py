"""The message left on a lead's mailbox, rendered from ``prompts/voicemail.yaml``."""

from __future__ import annotations

import prompts
from calls.call import Call
from prompts.lines import voicemail_lines


def voicemail_message(call: Call) -> str:
    """Who we are, why we called, and how to call back; personal when the lead is known."""
    lines = voicemail_lines()
    state, business = call.state, call.services.business
    name = state.lead.first_name if state.lead else None
    if name is None and state.contact is not None:
        name = state.contact.firstname
    reason = state.lead.reason if state.lead else None
    parts = [lines.greeting_named if name else lines.greeting_unnamed]
    parts.append(lines.reason if reason else lines.no_reason)
    if call.services.announce_ai:
        parts.append(lines.ai_disclosure)
    parts += [lines.call_back, lines.sign_off]
    return prompts.render(
        " ".join(parts),
        name=name or "",
        reason=reason or "",
        agent_name=business.agent_name,
        company_name=business.company_name,
        callback_number=lines.callback_number,
    )
