from __future__ import annotations

import pytest

from agent.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit

KEYS = {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "CARTESIA_API_KEY": "c"}


def test_missing_keys_are_named_with_their_purpose(monkeypatch, tmp_path):
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path / "absent.env")
    message = str(err.value)
    for name in KEYS:
        assert name in message
    assert "speech-to-text" in message


def test_env_file_is_read_and_defaults_apply(tmp_path):
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in KEYS.items()) + "BUSINESS_DAYS=mon,wed\n")
    settings = load_settings(env)
    assert settings.hubspot_access_token is None  # -> embedded CRM
    assert settings.business_hours().weekdays == frozenset({0, 2})


def test_invalid_values_are_explained(monkeypatch, tmp_path):
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BUSINESS_TIME_ZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="BUSINESS_TIME_ZONE"):
        load_settings(tmp_path / "absent.env")
