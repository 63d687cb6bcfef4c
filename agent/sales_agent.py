"""The sales agent: its instructions, its tools, and what it says first."""

from __future__ import annotations

from livekit.agents import Agent, ChatContext

import prompts
from calls.business import BusinessProfile
from calls.call import Call
from calls.time_zones import zone_label
from integrations.masking import mask
from prompts.lines import greeting_lines
from tools.function_tools import sales_tools


def instructions(business: BusinessProfile) -> str:
    return prompts.render(
        prompts.load_text("system.md"),
        agent_name=business.agent_name,
        company_name=business.company_name,
        company_pitch=business.company_pitch,
        product_summary=business.product_summary,
    )


def greeting(call: Call) -> str:
    """The first words, rendered without the LLM so the caller hears us at once."""
    lines = greeting_lines()
    business = call.services.business
    state = call.state
    name = state.contact.firstname if state.contact else None
    if state.direction == "outbound":
        opener = lines.outbound
    else:
        opener = lines.known_caller if name else lines.new_caller
    parts = [opener]
    if call.services.announce_ai:
        parts.append(lines.ai_disclosure)
    if call.services.announce_recording:
        parts.append(lines.recording_notice)
    parts.append(lines.question_known if name else lines.question_new)
    return prompts.render(
        " ".join(parts),
        name=name or "",
        company_name=business.company_name,
        agent_name=business.agent_name,
    )


def call_context(call: Call) -> str:
    """Facts about this call, from the CRM and the clock, given to the LLM as it starts."""
    state, hours = call.state, call.services.hours
    now = call.now().astimezone(hours.zone)
    facts = [
        f"It is {now:%A %B %d, %Y, %I:%M %p} where our team is ({hours.time_zone}).",
        f"Call direction: {state.direction}.",
    ]
    if state.caller_phone:
        facts.append(f"Caller's number is on file as {mask(state.caller_phone)}.")
    contact = state.contact
    if contact is not None:
        known = {
            "first name": contact.firstname,
            "last name": contact.lastname,
            "email": contact.email,
            "company": contact.company,
        }
        facts.append(
            "The CRM already has: "
            + "; ".join(f"{k}: {v}" for k, v in known.items() if v)
            + ". Do not ask for these again."
        )
    else:
        facts.append("This caller is not in the CRM yet.")
    answered = state.qualification.as_text()
    if answered:
        facts.append(
            "Qualification answers already known: "
            + "; ".join(f"{k} = {v}" for k, v in answered.items())
            + "."
        )
    if state.caller_zone is not None:
        label = zone_label(state.caller_zone, now)
        facts.append(f"Their number suggests the {label} time zone; confirm before booking.")
    return "\n".join(facts)


class SalesAgent(Agent):
    """The agent of one call. An outbound call is greeted once the lead answers, so the
    worker greets (``greet_on_enter=False``); an inbound caller is greeted at once."""

    def __init__(self, call: Call, *, greet_on_enter: bool = True) -> None:
        chat_ctx = ChatContext.empty()
        chat_ctx.add_message(role="system", content=call_context(call))
        super().__init__(
            instructions=instructions(call.services.business),
            chat_ctx=chat_ctx,
            tools=sales_tools(call.services.criteria),
        )
        self._call = call
        self._greet_on_enter = greet_on_enter

    async def on_enter(self) -> None:
        if self._greet_on_enter:
            self.session.say(greeting(self._call))
