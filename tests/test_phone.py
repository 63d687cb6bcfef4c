from __future__ import annotations

import pytest

from integrations.masking import mask
from integrations.phone import InvalidPhoneNumber, normalise_phone

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "raw",
    ["+14155550123", "(415) 555-0123", "415.555.0123", "1 415 555 0123",
     "sip:+14155550123@trunk.example", "tel:+1-415-555-0123"],
)  # fmt: skip
def test_us_numbers_normalise_to_e164(raw):
    assert normalise_phone(raw) == "+14155550123"


def test_other_regions():
    assert normalise_phone("020 7183 8750", default_region="GB") == "+442071838750"
    assert normalise_phone("+44 20 7183 8750") == "+442071838750"


@pytest.mark.parametrize("raw", ["12", "not a number", "+1 555", "", "+999 1234567"])
def test_malformed_numbers_are_rejected_without_echoing_them(raw):
    with pytest.raises(InvalidPhoneNumber) as err:
        normalise_phone(raw)
    assert raw.strip() == "" or raw not in str(err.value) or len(raw) <= 4


def test_masking():
    assert mask("+14155550123") == "********0123"
    assert mask("jane@acme.com") == "j***@acme.com"
    assert mask("call +1 415 555 0123 or jane@acme.com") == "call ***********0123 or j***@acme.com"
    assert mask("(415) 555-0123") == "(*********0123"
    assert mask("eou delay=0.660 port 7880") == "eou delay=0.660 port 7880"
    assert mask("listening on 127.0.0.1:8081") == "listening on 127.0.0.1:8081"
    assert mask("from 415.555.0123") == "from ********0123"
    assert mask(None) == "<none>"


def test_log_lines_mask_the_room_named_after_the_caller_and_keep_the_call_id():
    import json
    import logging

    from config.logs import JsonFormatter

    record = logging.LogRecord(
        "tools", logging.INFO, __file__, 1, "booked for %s", ("+14155550123",), None
    )
    record.room = "call-_+14155550123_psCvYyCZ"
    record.call_id = "AJ_QHE73qtWRyT3"

    line = json.loads(JsonFormatter().format(record))

    assert line["msg"] == "booked for ********0123"
    assert line["room"] == "call-_********0123_psCvYyCZ"
    assert line["call_id"] == "AJ_QHE73qtWRyT3"
