"""Deepgram `/v1/listen` response messages, shaped as the real service sends them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MODEL_INFO = {"name": "standin", "version": "standin", "arch": "standin"}


@dataclass(frozen=True)
class Transcript:
    """Scripted text placed over a span of audio, formatted per the request's options."""

    text: str
    start: float
    end: float
    confidence: float = 0.98
    punctuated: bool = True
    # With `language=multi`, Deepgram labels the words and the alternative with the language it
    # heard; None: a single-language request, which carries no label.
    language: str | None = None

    def words(self) -> list[dict[str, Any]]:
        tokens = self.text.split()
        weights = [len(_bare(t)) + 1 for t in tokens]
        total = sum(weights) or 1
        span = max(self.end - self.start, 0.0)
        words, cursor = [], self.start
        for token, weight in zip(tokens, weights, strict=True):
            word_end = cursor + span * weight / total
            word: dict[str, Any] = {
                "word": _bare(token).lower(),
                "start": round(cursor, 3),
                "end": round(word_end, 3),
                "confidence": self.confidence,
            }
            if self.punctuated:
                word["punctuated_word"] = token
            if self.language is not None:
                word["language"] = self.language
            words.append(word)
            cursor = word_end
        return words

    def alternative(self) -> dict[str, Any]:
        words = self.words()
        transcript = self.text if self.punctuated else " ".join(w["word"] for w in words)
        alternative = {"transcript": transcript, "confidence": self.confidence, "words": words}
        if self.language is not None:
            alternative["languages"] = [self.language]
        return alternative

    def head(self, word_count: int) -> Transcript:
        """The first `word_count` words, as an interim result would show them."""
        tokens = self.text.split()
        keep = max(1, min(word_count, len(tokens)))
        fraction = sum(len(t) + 1 for t in tokens[:keep]) / max(1, sum(len(t) + 1 for t in tokens))
        end = self.start + (self.end - self.start) * fraction
        return Transcript(
            text=" ".join(tokens[:keep]),
            start=self.start,
            end=end,
            confidence=self.confidence,
            punctuated=self.punctuated,
            language=self.language,
        )


def results(
    *,
    request_id: str,
    transcript: Transcript | None,
    start: float,
    end: float,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool = False,
) -> dict[str, Any]:
    alternative = (
        transcript.alternative()
        if transcript is not None
        else {"transcript": "", "confidence": 0.0, "words": []}
    )
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(max(end - start, 0.0), 3),
        "start": round(start, 3),
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [alternative]},
        "metadata": {"request_id": request_id, "model_info": MODEL_INFO, "model_uuid": request_id},
    }


def speech_started(timestamp: float) -> dict[str, Any]:
    return {"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(timestamp, 3)}


def utterance_end(last_word_end: float) -> dict[str, Any]:
    return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)}


def metadata(*, request_id: str, duration: float, channels: int) -> dict[str, Any]:
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": "",
        "created": "1970-01-01T00:00:00.000Z",
        "duration": round(duration, 3),
        "channels": channels,
        "models": [request_id],
        "model_info": {request_id: MODEL_INFO},
    }


def prerecorded(
    *, request_id: str, transcripts: list[Transcript], duration: float
) -> dict[str, Any]:
    words = [w for t in transcripts for w in t.words()]
    alternative = {
        "transcript": " ".join(t.alternative()["transcript"] for t in transcripts),
        "confidence": min((t.confidence for t in transcripts), default=0.0),
        "words": words,
    }
    return {
        "metadata": {
            "request_id": request_id,
            "duration": round(duration, 3),
            "channels": 1,
            "models": [request_id],
            "model_info": {request_id: MODEL_INFO},
        },
        "results": {"channels": [{"alternatives": [alternative]}]},
    }


def _bare(token: str) -> str:
    return re.sub(r"[^\w'-]", "", token)
