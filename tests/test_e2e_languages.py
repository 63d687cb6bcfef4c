"""A Spanish-speaking caller over the real stack: a SIP call to the real worker, whose
Deepgram plugin asks the STT stand-in for its multilingual mode and gets Spanish transcripts
labelled as Deepgram labels them; the Cartesia plugin is asked for Spanish."""

from __future__ import annotations

from pathlib import Path

import pytest

from callab.phone import TestPhone
from callab.scenarios import CALLER, Line, agent_turn, script
from prompts.lines import closing_lines
from tests.e2e_support import StartLab, eventually, spoken_contexts, spoken_texts
from tests.worlds import EmbeddedWorld

pytestmark = pytest.mark.e2e

SPANISH_LINES = (
    Line("Hello I would like some information about your product",
         "Hola, quiero información sobre su producto."),
    Line("No thank you that is all", "No, nada más, muchas gracias."),
)  # fmt: skip
SPANISH_ANSWER = "¡Claro! Le cuento: ayudamos a los equipos de ventas con sus previsiones."
SPANISH_SCRIPT = script(
    [
        agent_turn(after_user="información", say=SPANISH_ANSWER),
        agent_turn(after_user="nada más", call=("end_call", {})),
    ]
)


async def test_a_spanish_caller_is_answered_in_spanish_and_the_record_says_so(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path
) -> None:
    lab = await start_lab(
        script=SPANISH_SCRIPT, utterances=[line.heard for line in SPANISH_LINES],
        utterance_languages={line.heard: "es" for line in SPANISH_LINES},
        settings={"SUPPORTED_LANGUAGES": "en,es"},
    )  # fmt: skip
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    since = phone.joined_at
    assert since is not None
    for line in SPANISH_LINES:
        since = (await phone.say_after_agent(line.spoken, since=since)).ended_at
    await phone.line_closes(limit_s=60)

    assert {tuple(s.params["language"]) for s in lab.stt.sessions} == {("multi",)}
    spoken = spoken_contexts(lab)
    assert spoken[0].language == "en"  # the greeting, before the caller said a word
    assert [c.text for c in spoken[1:]] == [
        SPANISH_ANSWER, closing_lines(language="es").goodbye["nurture"],
    ]  # fmt: skip
    assert {c.language for c in spoken[1:]} == {"es"}
    database = tmp_path / "lab" / "data" / "embedded.sqlite3"
    world = EmbeddedWorld(database, services=None)  # type: ignore[arg-type]  # reads the db only
    (logged,) = await eventually(world.logged_calls, limit_s=30)
    assert logged["qualification"]["language"] == "es"
    assert spoken_texts(lab)[-1] == closing_lines(language="es").goodbye["nurture"]
