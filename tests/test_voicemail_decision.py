"""The rules that turn AMD's verdict, the beep and the callee's speech into what the agent
does, on explicit times (seconds after the answer)."""

from __future__ import annotations

import pytest

from voicemail.decision import Screening, ScreenTimings

pytestmark = pytest.mark.unit

TIMINGS = ScreenTimings(no_beep_s=2.5, max_wait_s=40.0, late_beep_s=10.0)


def screening() -> Screening:
    return Screening(answered_at=0.0, timings=TIMINGS)


def test_a_person_is_opened_to_the_moment_amd_says_so():
    s = screening()
    decision = s.on_amd("human", at=1.4)
    assert decision is not None and (decision.action, decision.at) == ("open", 1.4)
    assert not s.finished and s.deadline() == pytest.approx(11.4)
    assert s.on_time(11.4) is None and s.finished  # no beep came: it stays a person
    assert s.on_beep(at=12.0) is None


def test_a_beep_before_any_verdict_is_a_mailbox_recording():
    s = screening()
    decision = s.on_beep(at=4.2)
    assert decision is not None and (decision.action, decision.reason) == ("leave_message", "beep")
    assert s.finished and s.on_amd("human", at=5.0) is None


def test_a_mailbox_verdict_waits_for_the_beep():
    s = screening()
    s.on_callee_speech(True, at=0.5)
    waiting = s.on_amd("machine-vm", at=3.0)
    assert waiting is not None and waiting.action == "wait_for_beep"
    assert s.deadline() == 40.0  # still speaking: nothing but the overall limit
    s.on_callee_speech(False, at=4.0)
    assert s.on_beep(at=4.9) is not None
    assert s.decision is not None and (s.decision.action, s.decision.reason) == (
        "leave_message", "beep",
    )  # fmt: skip


def test_without_a_beep_the_message_starts_once_the_greeting_has_been_over_a_while():
    s = screening()
    s.on_callee_speech(True, at=0.5)
    s.on_callee_speech(False, at=3.0)
    s.on_amd("machine-vm", at=3.2)
    assert s.deadline() == pytest.approx(5.5)
    assert s.on_time(5.0) is None  # too early: nothing yet
    s.on_callee_speech(True, at=5.1)  # the greeting goes on
    s.on_callee_speech(False, at=6.0)
    assert s.on_time(5.5) is None
    decision = s.on_time(8.5)
    assert decision is not None and (decision.action, decision.reason) == (
        "leave_message", "no_beep",
    )  # fmt: skip


def test_a_greeting_that_never_ends_is_cut_at_the_overall_limit():
    s = screening()
    s.on_callee_speech(True, at=0.5)
    s.on_amd("machine-vm", at=20.0)
    decision = s.on_time(40.0)
    assert decision is not None and decision.reason == "wait_limit"


@pytest.mark.parametrize("category", ["machine-unavailable", "machine-ivr"])
def test_a_machine_that_takes_no_message_is_hung_up_on(category):
    s = screening()
    decision = s.on_amd(category, at=4.0)
    assert decision is not None and decision.action == "hang_up" and s.finished


def test_uncertain_is_treated_as_a_person():
    decision = screening().on_amd("uncertain", at=2.0)
    assert decision is not None and decision.action == "open"


def test_a_beep_soon_after_the_opener_means_it_went_to_a_mailbox():
    s = screening()
    s.on_amd("human", at=1.8)
    late = s.on_beep(at=6.5)
    assert late is not None and (late.action, late.reason) == ("leave_message", "beep_after_open")
    assert [d.action for d in s.decisions] == ["open", "leave_message"] and s.finished


def test_a_beep_long_after_the_opener_changes_nothing():
    s = screening()
    s.on_amd("human", at=1.8)
    assert s.on_beep(at=12.5) is None
    assert s.decision is not None and s.decision.action == "open"


def test_no_verdict_at_all_opens_at_the_overall_limit():
    s = screening()
    assert s.deadline() == 40.0
    decision = s.on_time(40.0)
    assert decision is not None and (decision.action, decision.reason) == ("open", "no_verdict")
