"""Tools that steer the call: qualification, routing, hand-offs and hanging up."""

from __future__ import annotations

from typing import Any, Literal

from livekit.agents import RunContext, function_tool

import prompts
from agent.state import CallState  # runtime import: LiveKit resolves tool type hints
from tools.tool_support import as_json


def qualification_tool(criteria_schema: dict[str, Any]) -> Any:
    """The qualification tool, whose parameters are the fields of the business's criteria."""

    async def record_qualification(raw_arguments: dict[str, Any], context: RunContext) -> Any:
        state: CallState = context.userdata
        problems = state.qualification.record(raw_arguments)
        return as_json(qualification_status(state, problems))

    return function_tool(
        record_qualification,
        raw_schema={
            "name": "record_qualification",
            "description": (
                "Record qualification answers as soon as the caller gives them (only the ones "
                "you heard). Returns what is already known, the next questions to ask, and the "
                "route once it is decided."
            ),
            "parameters": criteria_schema,
        },
    )


def qualification_status(state: CallState, problems: dict[str, str] | None = None) -> dict:
    qual = state.qualification
    status: dict[str, Any] = {
        "known": qual.as_text(),
        "ask_next": [{"field": c.key, "question": c.question} for c in qual.still_needed()],
    }
    if problems:
        status["not_recorded"] = problems
    decided = qual.route()
    if decided is not None:
        outcome, reason = decided
        status["route"] = outcome
        if reason:
            status["route_reason"] = reason
    return status


@function_tool
async def request_follow_up(
    context: RunContext[CallState],
    how: Literal["email_times", "email_information", "call_back"],
    detail: str | None = None,
) -> str:
    """Record that the team should follow up, e.g. email the caller meeting times when the
    calendar is unavailable, or send information to a lead who is not ready yet.

    Args:
        how: What the team should do.
        detail: Anything the team needs to know, in one sentence.
    """
    state = context.userdata
    state.follow_up = how + (f": {detail}" if detail else "")
    return as_json({"recorded": True})


@function_tool
async def hand_to_rep(context: RunContext[CallState], reason: str) -> str:
    """Hand a hot lead to a sales rep when the qualification route says hand_to_rep.

    Args:
        reason: One sentence on why this lead is hot, for the rep.
    """
    state = context.userdata
    state.handoff_reason = reason
    state.outcome = "qualified"
    return as_json({"next": "Tell the caller a specialist will call them back within the hour."})


@function_tool
async def log_support_issue(context: RunContext[CallState], issue: str) -> str:
    """Record an existing customer's support issue, in one sentence.

    Args:
        issue: The problem in the caller's words.
    """
    state = context.userdata
    state.support_issue = issue
    state.outcome = "support"
    return as_json({"next": "Tell them support will follow up, then end the call."})


EndOutcome = Literal["booked", "qualified", "nurture", "disqualified", "support"]


@function_tool
async def end_call(context: RunContext[CallState], outcome: EndOutcome) -> None:
    """End the call, once the next step is settled and the caller has nothing else. This says
    goodbye for you: do not say goodbye yourself.

    Args:
        outcome: How the call ended.
    """
    state = context.userdata
    if outcome != "booked" or state.booking is None:
        state.outcome = "qualified" if outcome == "booked" else outcome
    goodbye = prompts.load_yaml("closings.yaml")["goodbye"][state.disposition()]
    handle = context.session.say(goodbye, allow_interruptions=False)
    # Awaiting the goodbye here would wait on this tool's own turn: hang up from outside it.
    state.hang_up_after(handle)
    return None
