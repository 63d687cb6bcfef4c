from __future__ import annotations

from importlib import resources

import pytest

import prompts
from agent.sales_agent import call_context, greeting, instructions
from calls.business import load_business_profile
from calls.qualification import (
    CriteriaError,
    InvalidAnswer,
    Qualification,
    coerce_answer,
    load_criteria,
)
from calls.state import DISPOSITIONS, SPOKEN_DISPOSITIONS, Lead
from integrations.crm import Contact
from prompts.lines import closing_lines, greeting_lines, voicemail_lines
from tests.agent_harness import new_call
from voicemail import voicemail_message

pytestmark = pytest.mark.unit

PROMPT_FILES = sorted(
    p.name for p in resources.files("prompts").iterdir() if p.name.endswith((".md", ".yaml"))
)


def test_every_prompt_file_loads():
    assert {"system.md", "summary.md", "criteria.yaml", "greeting.yaml", "closings.yaml",
            "business.yaml", "voicemail.yaml"} <= set(PROMPT_FILES)  # fmt: skip
    for name in PROMPT_FILES:
        loaded = prompts.load_yaml(name) if name.endswith(".yaml") else prompts.load_text(name)
        assert loaded


def test_system_prompt_renders_with_no_placeholder_left():
    text = instructions(load_business_profile())
    assert "$" not in text.replace("$ ", "")


def test_summary_prompt_renders():
    text = prompts.render(prompts.load_text("summary.md"), answers="- a", disposition="booked",
                          transcript="Caller: hi")  # fmt: skip
    assert "Caller: hi" in text and "$" not in text


def test_missing_placeholder_is_an_error():
    with pytest.raises(prompts.PromptError):
        prompts.render("Hello $name")
    with pytest.raises(prompts.PromptError):
        prompts.load_text("nope.md")


def test_closings_cover_every_disposition_the_agent_ends_with():
    closings = closing_lines()
    assert set(closings.goodbye) == set(SPOKEN_DISPOSITIONS)
    assert set(DISPOSITIONS) - set(SPOKEN_DISPOSITIONS) == {"hung_up", "not_reached", "voicemail"}
    assert len(closings.silence_nudges) == 2


def test_fixed_lines_are_loaded_once_as_typed_objects():
    assert greeting_lines() is greeting_lines() and closing_lines() is closing_lines()
    assert greeting_lines().ai_disclosure == prompts.load_yaml("greeting.yaml")["ai_disclosure"]


def test_a_file_without_the_lines_is_named():
    with pytest.raises(prompts.PromptError, match=r"criteria\.yaml: silence_nudges"):
        closing_lines.__wrapped__("criteria.yaml")
    with pytest.raises(
        prompts.PromptError, match=r"criteria\.yaml needs a line for .known_caller."
    ):
        greeting_lines.__wrapped__("criteria.yaml")


def test_greetings_render_for_known_new_and_outbound(world):
    the_call = new_call(world.services)
    assert "$" not in greeting(the_call)
    the_call.state.set_contact(Contact(id="1", firstname="Dana"))
    assert "Dana" in greeting(the_call) and "$" not in greeting(the_call)
    out = new_call(world.services, direction="outbound")
    assert "$" not in greeting(out) and "following up on your request" in greeting(out)
    assert greeting(out).endswith(greeting_lines().question_outbound)
    assert "Caller's number" in call_context(the_call)


def test_outbound_opener_names_the_lead_and_the_reason(world):
    out = new_call(world.services, direction="outbound")
    out.state.lead = Lead(name="Dana Whitfield", company="Acme", reason="sales forecasting")
    text = greeting(out)
    assert text.startswith("Hi Dana, this is") and "asked us about sales forecasting" in text
    assert greeting_lines().ai_disclosure in text and greeting_lines().recording_notice in text
    assert "Dana Whitfield, Acme" in call_context(out) and "sales forecasting" in call_context(out)


def test_criteria_schema_has_every_field_and_choices():
    criteria = load_criteria()
    schema = criteria.json_schema()
    assert set(schema["properties"]) == {f.key for f in criteria.fields}
    assert schema["properties"]["timeline"]["enum"] == list(criteria.field("timeline").options)


def test_answers_are_coerced_and_bad_ones_explained():
    criteria = load_criteria()
    assert coerce_answer(criteria.field("company_size"), "about 25 people") == 25
    assert coerce_answer(criteria.field("budget_usd"), "50k") == 50_000
    assert coerce_answer(criteria.field("timeline"), "This Quarter") == "this_quarter"
    assert coerce_answer(criteria.field("existing_customer"), "no") is False
    with pytest.raises(InvalidAnswer, match="one of"):
        coerce_answer(criteria.field("timeline"), "whenever")


def test_routing_waits_for_earlier_rules_then_decides():
    q = Qualification(load_criteria())
    q.record({"need": "forecasting", "timeline": "this_quarter"})
    assert q.route() is None  # existing_customer and crm_system could still change the route
    q.record({"existing_customer": False, "crm_system": "hubspot", "company_size": 12})
    assert q.route() == ("book_meeting", None)
    q.record({"company_size": 80})
    assert q.route() == ("hand_to_rep", None)


def test_disqualify_and_support_routes():
    q = Qualification(load_criteria())
    q.record({"existing_customer": True})
    assert q.route() == ("support", None)
    q = Qualification(load_criteria())
    q.record({"existing_customer": False, "crm_system": "none"})
    outcome, reason = q.route()
    assert outcome == "disqualify" and reason


def test_crm_values_prefill_and_skip_questions():
    q = Qualification(load_criteria())
    q.prefill_from_crm({"numemployees": "40"})
    assert q.answers["company_size"] == 40 and q.sources["company_size"] == "crm"
    q.record({"existing_customer": False, "need": "x"})
    assert "company_size" not in {c.key for c in q.still_needed()}


def test_unknown_fields_are_reported_not_stored():
    q = Qualification(load_criteria())
    problems = q.record({"favourite_colour": "blue", "timeline": "someday"})
    assert set(problems) == {"favourite_colour", "timeline"} and q.answers == {}


def test_bad_criteria_file_is_rejected(monkeypatch):
    monkeypatch.setattr(prompts, "load_yaml", lambda _n: {"layers": [{"name": "x", "fields": [
        {"key": "a", "type": "choice", "question": "?"}]}]})  # fmt: skip
    with pytest.raises(CriteriaError):
        load_criteria()


def test_the_voicemail_message_names_the_lead_us_the_reason_and_how_to_call_back(world):
    out = new_call(world.services, direction="outbound")
    out.state.lead = Lead(name="Dana Whitfield", company="Acme", reason="sales forecasting")
    message = voicemail_message(out)
    business = world.services.business
    assert message.startswith(
        f"Hi Dana, this is {business.agent_name} from {business.company_name}"
    )
    assert "sales forecasting" in message and voicemail_lines().callback_number in message
    assert "$" not in message


def test_the_voicemail_message_without_a_lead_stays_polite_and_generic(world):
    out = new_call(world.services, direction="outbound", caller_phone=None)
    message = voicemail_message(out)
    assert message.startswith(voicemail_lines().greeting_unnamed.split("$")[0])
    assert voicemail_lines().no_reason in message and "$" not in message
