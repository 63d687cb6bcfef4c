"""Can the end-of-turn model tell a finished sentence from a pause inside one, on a phone line?
And do the words (``agent/endpointing.py``) tell them apart?

A labelled set built here: sentences a caller finishes and the same kind of sentence cut off
mid-way, spoken by espeak-ng through the call lab's 8 kHz phone channel and a G.711 (mu-law)
round trip, followed by the silence the VAD waits for and faint line noise. Each is given to
LiveKit's local ``v1-mini`` model as the session gives it (the last 1.2 s at 16 kHz), and its
transcript to the gate. Prints the model's probabilities per label and, per threshold, how
many finished sentences would wait and how many cut ones would end the turn; and how long
after each finished sentence's end the worker's Silero calls the end of speech.

    uv run python bench/end_of_turn.py [--silence 0.55] [--out bench/results/end_of_turn.json]
"""

from __future__ import annotations

import argparse
import audioop  # G.711 as the codec defines it; deprecated from 3.11, present until 3.13
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.endpointing import sentence_left_open
from callab.audio import phone_line
from callab.sweep import percentiles

RATE = 16000
FINISHED = [
    "Hi, I'm Dana from Acme.", "We need a better way to forecast sales.",
    "Our team is about forty people.", "Around fifty thousand a year.",
    "Next quarter would be ideal.", "Yes, that works for me.", "Tuesday afternoon is best.",
    "I run the sales operations team.", "We use spreadsheets right now.",
    "Can you send me the details by email?", "No, I don't think so.", "That sounds good.",
    "My email is dana at acme dot com.", "We have offices in three countries.",
    "I'd like to talk to a person.", "Probably by the end of March.",
    "It's for the whole company.", "We looked at two other vendors.", "Sure, go ahead.",
    "Yes, it is.", "I see.", "I agree.", "Yes, I know.",
]  # fmt: skip
CUT = [
    "My budget is", "We need a better way to", "Our team is about", "The main problem is that",
    "I think we would", "Next quarter or maybe", "I run the", "We use spreadsheets and",
    "Can you send me the", "I'm looking for something that", "The reason I called is",
    "Well, we have", "It depends on the", "Because our current", "We looked at two other",
    "So the thing is", "I'd like to talk to", "Probably by the end of", "It's for the",
    "My email is dana at", "We use", "I need",
]  # fmt: skip
THRESHOLDS = (0.1, 0.2, 0.3, 0.36, 0.45, 0.55)


def through_the_line(text: str) -> np.ndarray:
    """`text` spoken into the phone channel, through G.711, and at 16 kHz as the worker gets it."""
    narrow = phone_line(text, sample_rate=8000)
    line = audioop.ulaw2lin(audioop.lin2ulaw(narrow.tobytes(), 2), 2)
    wide, _ = audioop.ratecv(line, 2, 1, 8000, RATE, None)
    return np.frombuffer(wide, dtype=np.int16)


def as_the_session_hears(text: str, silence_s: float, rng: np.random.Generator) -> np.ndarray:
    speech = through_the_line(text).astype(np.float64)
    padded = np.concatenate([speech, np.zeros(int(RATE * silence_s))])
    noisy = padded + rng.normal(0, 30, padded.size)  # faint line noise
    return np.clip(noisy, -32768, 32767).astype(np.int16)[-19200:]


def silero_end_lags(texts: list[str], rng: np.random.Generator) -> list[float]:
    """Per finished sentence, in ms: where the worker's Silero (its default settings, in its
    input frames) puts the end of the caller's speech, after the line's end as the phone sends
    it (its fade-out). The worker anchors the end there (the END event less its silence), so
    the voice benchmark's uplink holds this as well as the way in."""
    import asyncio

    from livekit import rtc

    from agent.session import load_vad
    from config import VoiceSettings

    voice = VoiceSettings.model_construct()  # the defaults; no keys needed
    frame = RATE * voice.audio_input_frame_ms // 1000

    async def lag(text: str) -> float:
        speech = through_the_line(text)
        lead = np.zeros(int(RATE * 0.3))
        audio = np.concatenate([lead, speech, np.zeros(int(RATE * 1.2))])
        audio = np.clip(audio + rng.normal(0, 30, audio.size), -32768, 32767).astype(np.int16)
        ended = (lead.size + speech.size) / RATE
        stream = load_vad(voice).stream()
        for i in range(0, audio.size - frame + 1, frame):
            stream.push_frame(rtc.AudioFrame(audio[i : i + frame].tobytes(), RATE, 1, frame))
        stream.end_input()
        try:
            async for event in stream:
                if event.type.name == "END_OF_SPEECH":
                    return (event.timestamp - event.silence_duration - ended) * 1000
        finally:
            await stream.aclose()
        raise RuntimeError(f"Silero never ended the speech of {text!r}")

    async def every() -> list[float]:
        return [round(await lag(text), 1) for text in texts]

    return asyncio.run(every())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silence", type=float, default=0.55, help="seconds after speech")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from livekit.local_inference import EOT

    rng = np.random.default_rng(7)
    results: dict[str, list[dict[str, object]]] = {"finished": [], "cut": []}
    with EOT() as model:
        for label, texts in (("finished", FINISHED), ("cut", CUT)):
            for text in texts:
                p = model.predict(as_the_session_hears(text, args.silence, rng))
                results[label].append(
                    {"text": text, "probability": round(p, 3),
                     "words_left_open": sentence_left_open(text, "en")}
                )  # fmt: skip
    finished = [float(r["probability"]) for r in results["finished"]]  # type: ignore[arg-type]
    cut = [float(r["probability"]) for r in results["cut"]]  # type: ignore[arg-type]
    print(f"{len(finished)} finished, {len(cut)} cut sentences; {args.silence} s of silence after")
    for label, ps in (("finished", finished), ("cut", cut)):
        print(f"  model P(end) {label}: median {statistics.median(ps):.2f}, "
              f"min {min(ps):.2f}, max {max(ps):.2f}")  # fmt: skip
    print("  model alone, per threshold: finished sentences made to wait / cut ones ended")
    for threshold in THRESHOLDS:
        waits = sum(p < threshold for p in finished)
        ends = sum(p >= threshold for p in cut)
        print(f"    {threshold:.2f}: {waits}/{len(finished)} wait, {ends}/{len(cut)} end")
    gate_waits = sum(bool(r["words_left_open"]) for r in results["finished"])
    gate_ends = sum(not r["words_left_open"] for r in results["cut"])
    print(f"  the words: {gate_waits}/{len(finished)} finished wait, "
          f"{gate_ends}/{len(cut)} cut end")  # fmt: skip
    lags = silero_end_lags(FINISHED, rng)
    lag = percentiles(lags)
    print(f"  Silero's end of speech after the line's end: p50 {lag['p50']:.0f} ms, "
          f"p95 {lag['p95']:.0f}, min {min(lags):.0f}, max {max(lags):.0f} "
          "(finished sentences, default settings)")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out = {"silence_s": args.silence, **results, "silero_end_lag_ms": lags}
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
