"""The function tools the LLM calls, in one list. Each validates its input, talks to the CRM
or calendar through their protocols, and turns every failure into a sentence the agent can act
on (see ``tools.tool_support``)."""

from __future__ import annotations

from typing import Any

from calls.qualification import Criteria
from tools.calendar_tools import (
    book_meeting,
    cancel_meeting,
    offer_slots,
    reschedule_meeting,
    set_time_zone,
)
from tools.call_tools import (
    end_call,
    hand_to_rep,
    log_support_issue,
    qualification_tool,
    request_follow_up,
    schedule_callback,
    stop_calling,
)
from tools.contact_tools import save_contact_details


def sales_tools(criteria: Criteria) -> list[Any]:
    return [
        qualification_tool(criteria.json_schema()),
        save_contact_details,
        set_time_zone,
        offer_slots,
        book_meeting,
        reschedule_meeting,
        cancel_meeting,
        request_follow_up,
        hand_to_rep,
        log_support_issue,
        schedule_callback,
        stop_calling,
        end_call,
    ]
