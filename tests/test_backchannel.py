"""Backchannels over the agent ("uh-huh", "okay") are not turns: which words, and where the
agent picks its reply up again."""

from __future__ import annotations

import pytest

from agent.backchannel import is_backchannel, rest_of_reply

pytestmark = pytest.mark.unit

REPLY = (
    "Northwind builds sales forecasting on top of your CRM. It reads your pipeline every "
    "night, and scores each open deal. Most teams see their error halve!"
)


@pytest.mark.parametrize(
    "heard",
    ["uh huh", "Uh-huh.", "mm-hmm", "Mhm", "okay", "OK.", "yeah yeah", "Okay, right.",
     "I see", "got it", "all right", "vale", "ajá", "Mm hmm, okay"],
)  # fmt: skip
def test_listening_noises_are_backchannels(heard):
    assert is_backchannel(heard)


@pytest.mark.parametrize(
    "heard",
    ["", "  ", "no", "yes", "wait", "okay but what does it cost", "stop", "yeah I have a question",
     "sorry to cut in", "right now we use spreadsheets"],
)  # fmt: skip
def test_anything_with_words_of_its_own_is_a_turn(heard):
    assert not is_backchannel(heard)


def test_the_reply_picks_up_at_the_start_of_the_sentence_it_was_cut_in():
    heard = "Northwind builds sales forecasting on top of your CRM. It reads your"
    assert rest_of_reply(REPLY, heard) == (
        "It reads your pipeline every night, and scores each open deal. "
        "Most teams see their error halve!"
    )
    # cut in the first sentence: from the top
    assert rest_of_reply(REPLY, "Northwind builds") == REPLY
    # cut right after a sentence: the next one
    assert (
        rest_of_reply(REPLY, "Northwind builds sales forecasting on top of your CRM.")
        == (REPLY.split(". ", 1)[1])
    )


def test_no_rest_when_the_heard_part_is_not_the_reply_or_nothing_is_left():
    assert rest_of_reply(REPLY, "Something else entirely") is None
    assert rest_of_reply("", "Northwind") is None
    assert rest_of_reply(REPLY, "") is None
    assert rest_of_reply("Short answer.", "Short answer.") is None
