"""The sales agent: its instructions, its tools, and what it says first."""

from __future__ import annotations

from livekit.agents import Agent, ChatContext

import prompts
from agent.state import BusinessProfile, CallState
from tools.function_tools import sales_tools
from tools.phone import mask_phone
from tools.slots import zone_label


def load_business_profile(name: str = "business.yaml") -> BusinessProfile:
    raw = prompts.load_yaml(name)
    meeting = raw["meeting"]
    return BusinessProfile(
        company_name=raw["company_name"],
        agent_name=raw["agent_name"],
        company_pitch=raw["company_pitch"],
        product_summary=raw["product_summary"],
        meeting_title=meeting["title"],
        meeting_description=meeting["description"],
        meeting_minutes=int(meeting["minutes"]),
    )


def instructions(business: BusinessProfile) -> str:
    return prompts.render(
        prompts.load_text("system.md"),
        agent_name=business.agent_name,
        company_name=business.company_name,
        company_pitch=business.company_pitch,
        product_summary=business.product_summary,
    )


def greeting(state: CallState) -> str:
    """The first words, rendered without the LLM so the caller hears us at once."""
    lines = prompts.load_yaml("greeting.yaml")
    business = state.services.business
    name = state.contact.firstname if state.contact else None
    if state.direction == "outbound":
        opener = lines["outbound"]
    else:
        opener = lines["known_caller"] if name else lines["new_caller"]
    parts = [opener]
    if state.services.announce_ai:
        parts.append(lines["ai_disclosure"])
    if state.services.announce_recording:
        parts.append(lines["recording_notice"])
    parts.append(lines["question_known"] if name else lines["question_new"])
    return prompts.render(
        " ".join(parts),
        name=name or "",
        company_name=business.company_name,
        agent_name=business.agent_name,
    )


def call_context(state: CallState) -> str:
    """Facts about this call, from the CRM and the clock, given to the LLM as it starts."""
    now = state.now().astimezone(state.services.hours.zone)
    facts = [
        f"It is {now:%A %B %d, %Y, %I:%M %p} where our team is ({state.services.hours.time_zone}).",
        f"Call direction: {state.direction}.",
    ]
    if state.caller_phone:
        facts.append(f"Caller's number is on file as {mask_phone(state.caller_phone)}.")
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
    def __init__(self, state: CallState) -> None:
        chat_ctx = ChatContext.empty()
        chat_ctx.add_message(role="system", content=call_context(state))
        super().__init__(
            instructions=instructions(state.services.business),
            chat_ctx=chat_ctx,
            tools=sales_tools(state.services.criteria),
        )
        self._state = state

    async def on_enter(self) -> None:
        self.session.say(greeting(self._state))
