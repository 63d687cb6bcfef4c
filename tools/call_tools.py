"""Tools that steer the call: qualification, routing, hand-offs and hanging up."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from livekit.agents import RunContext, ToolError, ToolResult, function_tool

from calls.call import Call  # runtime import: LiveKit resolves tool type hints
from calls.slots import say_time
from prompts.lines import closing_lines
from tools.contact_tools import save_contact
from tools.tool_support import as_json, speakable_failures, timed

logger = logging.getLogger("tools")


def qualification_tool(criteria_schema: dict[str, Any]) -> Any:
    """The qualification tool, whose parameters are the fields of the business's criteria."""

    async def record_qualification(raw_arguments: dict[str, Any], context: RunContext) -> Any:
        call: Call = context.userdata
        problems = call.state.qualification.record(raw_arguments)
        given = [key for key, value in raw_arguments.items() if value is not None]
        if problems and len(problems) == len(given):
            raise ToolError(_nothing_recorded(call, problems))
        return as_json(qualification_status(call, problems))

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


def _nothing_recorded(call: Call, problems: dict[str, str]) -> str:
    """Every answer was refused (an unknown field, a value of the wrong type): say which, and
    which fields there are, so the agent asks the caller instead of retrying."""
    why = "; ".join(f"{key[:40]}: {problem}" for key, problem in problems.items())
    fields = ", ".join(c.key for c in call.services.criteria.fields)
    return (
        f"Nothing was recorded ({why}). Only the caller's answers to these fields can be "
        f"recorded: {fields}. Ask the caller the next question instead."
    )


def qualification_status(call: Call, problems: dict[str, str] | None = None) -> dict:
    qual = call.state.qualification
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
    context: RunContext[Call],
    how: Literal["email_times", "email_information", "call_back"],
    detail: str | None = None,
) -> str:
    """Record that the team should follow up, e.g. email the caller meeting times when the
    calendar is unavailable, or send information to a lead who is not ready yet.

    Args:
        how: What the team should do.
        detail: Anything the team needs to know, in one sentence.
    """
    call = context.userdata
    call.state.follow_up = how + (f": {detail}" if detail else "")
    return as_json({"recorded": True})


@function_tool
async def hand_to_rep(context: RunContext[Call], reason: str) -> ToolResult:
    """Hand the caller to a sales rep live: when the qualification route says hand_to_rep, or
    the caller asks to speak with a person. Say nothing more after calling it: the caller is
    told what is happening and put on hold with music while a rep is reached.

    Args:
        reason: One sentence on why this lead is hot (or what they want), for the rep.
    """
    call = context.userdata
    call.state.handoff_reason = reason
    started = call.control.start_transfer(reason)
    if started == "unavailable":
        return ToolResult(
            as_json({"next": "Tell the caller a specialist will call them back within the hour."})
        )
    note = "already under way" if started == "in_progress" else "started"
    return ToolResult(as_json({"transfer": note}), reply_required=False)


@function_tool
async def log_support_issue(context: RunContext[Call], issue: str) -> str:
    """Record an existing customer's support issue, in one sentence.

    Args:
        issue: The problem in the caller's words.
    """
    call = context.userdata
    decided = call.state.qualification.route()
    if decided is None or decided[0] != "support":
        raise ToolError(
            "The routing rules have not sent this call to support, so nothing was logged. "
            "Record the caller's answers with record_qualification; log the issue only once "
            "the route it returns is support."
        )
    call.state.support_issue = issue
    return as_json({"next": "Tell them support will follow up, then end the call."})


CALLBACK_HORIZON = timedelta(days=14)


@function_tool
async def schedule_callback(context: RunContext[Call], at: str) -> str:
    """The caller asked to be called back at a certain time ("call me back at four"): record
    it, then confirm the time back to them in the words this returns and end the call.

    Args:
        at: When, as YYYY-MM-DDTHH:MM in the caller's local time (or with a UTC offset).
    """
    call = context.userdata
    state = call.state
    try:
        when = datetime.fromisoformat(at.strip())
    except ValueError:
        raise ToolError(f"'{at}' is not a time; pass YYYY-MM-DDTHH:MM.") from None
    zone = state.caller_zone or call.services.hours.zone
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    now = call.now()
    if when <= now:
        raise ToolError("That time has already passed; ask which time later on works.")
    if when > now + CALLBACK_HORIZON:
        raise ToolError("That is too far out; offer a call back within the next two weeks.")
    state.callback_at = when
    state.follow_up = f"call_back: {when.isoformat()}"
    return as_json({"recorded": True, "say": say_time(when, zone=zone, now=now)})


@function_tool
async def stop_calling(context: RunContext[Call], reason: str | None = None) -> str:
    """The caller asked us to stop calling them or to take them off our list: record it on
    the do-not-call list and in the CRM. Then confirm it in one sentence and end the call.

    Args:
        reason: Their words, briefly, if they gave a reason.
    """
    call = context.userdata
    state = call.state
    if not state.caller_phone:
        raise ToolError(
            "Their number is withheld, so it cannot be put on the list. Apologise, say the "
            "team will make sure they are not contacted, and record a follow-up."
        )
    why = reason or "asked on a call"
    async with speakable_failures("do-not-call list"):
        opt_out = call.services.do_not_call.add(state.caller_phone, reason=why)
        await timed(call, call.writes.shielded(opt_out))
    state.do_not_call = True
    try:
        await save_contact(call, {call.services.do_not_call_property: "true"})
    except ToolError:
        # On the list already, which is what stops the calls; the call's note says it too.
        logger.warning("the CRM did not take the do-not-call flag")
    return as_json({"recorded": True, "next": "Confirm they won't be called again; end_call."})


@function_tool
async def end_call(context: RunContext[Call]) -> None:
    """End the call, once the next step is settled and the caller has nothing else. This says
    goodbye for you: do not say goodbye yourself."""
    call = context.userdata
    call.state.ended_by_agent = True  # the record's outcome comes from what happened, not from us
    goodbye = closing_lines(language=call.language).goodbye[call.state.disposition()]
    handle = context.session.say(goodbye, allow_interruptions=False)
    # Awaiting the goodbye here would wait on this tool's own turn: hang up from outside it.
    call.control.hang_up_after(handle)
    return None
