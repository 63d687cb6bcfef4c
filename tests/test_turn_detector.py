"""The end-of-turn model is LiveKit's local one, and it runs here with no network."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from agent.session import turn_detector

pytestmark = pytest.mark.integration


def test_session_uses_the_local_v1_mini_model():
    detector = turn_detector()
    assert detector.model == "turn-detector-v1-mini"
    assert detector.describe_options()["model"] == "turn-detector-v1-mini"


def test_model_weights_ship_in_the_wheel_and_infer_offline(monkeypatch):
    from livekit.local_inference import EOT, EOT_MAX_SAMPLES, init_eot

    def no_network(*_args, **_kwargs):
        raise AssertionError("the turn detector tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    init_eot()
    with EOT() as eot:
        silence = np.zeros(EOT_MAX_SAMPLES, dtype=np.int16)
        t = np.arange(EOT_MAX_SAMPLES) / 16000
        tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)
        probabilities = [eot.predict(silence), eot.predict(tone)]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities[0] != probabilities[1]  # it looks at the audio, not a constant
