"""SIP final responses as attempt outcomes."""

from __future__ import annotations

from typing import Literal

SipOutcome = Literal["completed", "busy", "no_answer", "invalid_number", "declined", "failed"]

_BY_CODE: dict[int, SipOutcome] = {
    486: "busy",  # Busy Here
    600: "busy",  # Busy Everywhere
    480: "no_answer",  # Temporarily Unavailable (no answer, phone off)
    408: "no_answer",  # Request Timeout (rang out)
    487: "no_answer",  # Request Terminated: we cancelled after the ring timeout
    404: "invalid_number",  # Not Found
    484: "invalid_number",  # Address Incomplete
    410: "invalid_number",  # Gone
    604: "invalid_number",  # Does Not Exist Anywhere
    603: "declined",  # Decline: the person rejected the call
}


def outcome_for_sip(status_code: int | None) -> SipOutcome:
    """The outcome a SIP final status means; anything unlisted (5xx, auth, a missing code) is a
    plain failure, retried on the failure schedule."""
    if status_code is None:
        return "failed"
    if 200 <= status_code < 300:
        return "completed"
    return _BY_CODE.get(status_code, "failed")
