"""Languages: which one a call goes on in, the per-language prompt files, the setting, and
the STT mode it asks for."""

from __future__ import annotations

from importlib import resources

import pytest
from pydantic import ValidationError

import prompts
from agent.sales_agent import instructions
from agent.session import stt_language
from calls.business import load_business_profile
from calls.languages import LanguageChoice, choose_language
from config import BusinessSettings, VoiceSettings
from prompts.lines import check_languages, closing_lines, greeting_lines, language_lines

pytestmark = pytest.mark.unit

BOTH = ("en", "es")


@pytest.mark.parametrize(
    ("current", "heard", "transcript", "expected"),
    [
        ("en", "es", "Hola, quiero información", LanguageChoice("switch", "es")),
        ("en", "es-419", "Hola, quiero información", LanguageChoice("switch", "es")),
        ("es", "en", "Actually, English is fine", LanguageChoice("switch", "en")),
        ("en", "en-US", "Hi there, I'm Dana", LanguageChoice("keep", "en")),
        ("en", "es", "Sí", LanguageChoice("keep", "en")),  # one word decides nothing
        ("en", "multi", "Hola, quiero información", LanguageChoice("keep", "en")),
        ("en", None, "Hola, quiero información", LanguageChoice("keep", "en")),
        ("en", "fr", "Bonjour, je voudrais des informations", LanguageChoice("unsupported", "fr")),
        ("es", "de", "Guten Tag, ich hätte gern", LanguageChoice("unsupported", "de")),
    ],
)
def test_the_call_switches_only_to_a_supported_language_heard_in_a_real_sentence(
    current: str, heard: str | None, transcript: str, expected: LanguageChoice
) -> None:
    assert choose_language(
        current=current, heard=heard, transcript=transcript, supported=BOTH
    ) == expected  # fmt: skip


def language_dirs() -> list[str]:
    root = resources.files(prompts)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and len(p.name) == 2)


def test_every_language_directory_has_the_english_keys_and_is_named() -> None:
    assert "es" in language_dirs()
    for code in language_dirs():
        for name in ("greeting.yaml", "closings.yaml"):
            english, other = prompts.load_yaml(name), prompts.load_yaml(f"{code}/{name}")
            assert set(other) == set(english), (code, name)
            assert set(other.get("goodbye", {})) == set(english.get("goodbye", {})), code
            assert len(other.get("silence_nudges", [])) == len(english.get("silence_nudges", []))
        assert code in language_lines().names
        check_languages(("en", code))
        assert greeting_lines(language=code) != greeting_lines()
        assert closing_lines(language=code).goodbye.keys() == closing_lines().goodbye.keys()


def test_every_language_has_a_polite_unsupported_line_and_a_name() -> None:
    lines = language_lines()
    assert set(lines.unsupported) == set(lines.names) >= {"en", "es"}
    assert lines.unsupported["es"] != lines.unsupported["en"]


def test_a_configured_language_without_its_files_fails_at_start() -> None:
    with pytest.raises(prompts.PromptError, match="fr"):
        check_languages(("en", "fr"))  # fr has an unsupported line, not the call's lines
    with pytest.raises(prompts.PromptError, match="xx"):
        check_languages(("en", "xx"))


def test_spanish_instructions_tell_the_llm_to_speak_spanish() -> None:
    business = load_business_profile()
    english, spanish = instructions(business), instructions(business, "es")
    assert spanish.startswith(english) and spanish != english
    assert "Spanish" in spanish.removeprefix(english)


def test_supported_languages_setting_is_typed() -> None:
    assert BusinessSettings().languages() == ("en",)
    assert BusinessSettings(supported_languages="EN, es,en").languages() == ("en", "es")
    for bad in ("", "english", "en,e1"):
        with pytest.raises(ValidationError, match="two-letter"):
            BusinessSettings(supported_languages=bad)


def test_more_than_one_language_asks_deepgram_for_its_multilingual_mode() -> None:
    voice = VoiceSettings(deepgram_api_key="k", openai_api_key="k", cartesia_api_key="k")
    assert stt_language(voice, ("en",)) == "en-US"
    assert stt_language(voice, ()) == "en-US"
    assert stt_language(voice, ("es",)) == "es"
    assert stt_language(voice, ("en", "es")) == "multi"
