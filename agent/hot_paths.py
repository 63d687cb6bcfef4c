"""Three pieces of per-call work, done the same way for less: LiveKit's transcript pacing's
speaking-rate estimate, the tool schemas it sends with every LLM request, and the OpenAI
client's walk over every request body.

Both ran on the call's event loop, the loop that also hands the caller's audio to Silero one
32 ms window at a time. With three calls on one core, 26 % of a job process's main-thread
samples (py-spy, 45 s of a call) were the speaking-rate estimate, and while the agent spoke
Silero fell up to 2 s behind the caller's audio: a caller talking over the agent was heard
only as they finished (the phone measured every such stop at 2.1 s, the length of the line).

- The estimate: every 0.1 s of agent audio, LiveKit takes a spectrum of the last second
  (`_speaking_rate.SpeakingRateStream`), one FFT and one difference at a time in Python:
  4.2 ms of loop per 0.1 s of 24 kHz audio, in bursts as fast as the TTS delivers. The same
  figure, from one FFT call over only the frames the window adds (`SlidingFlux`), is equal
  to LiveKit's within 1e-12 (the tests check).
- The schemas: LiveKit rebuilds each tool's JSON schema (a pydantic model from its signature
  and docstring) on every request: 1.9 ms per tool, 24 ms for our 12, on an idle core. A
  tool's schema depends only on its declaration, so it is built once, while the job process
  waits for its call (`warm_schemas`), and copied out for each request.

- The request body: before sending a chat completion the OpenAI client walks the whole body
  against its parameter types (`async_maybe_transform`), every message against each of the
  six message types, to rename aliased keys and format dates or files. The chat parameter
  types declare no alias and no format, so on a body of plain JSON that walk returns the body
  with its omitted arguments dropped, and so does `plain_chat_body`, without it. It is
  on the path from the caller's last word to the request leaving: 13 ms of our call's
  requests on an idle core, 10-79 ms of loop in a live call (traced), most of it this walk.
  The parameter types are checked when it is installed; should a later client declare an
  alias or a format there, the client's own walk stays.

`install()` swaps them in; it is idempotent, and a library version without the hook is left
as it is (logged), since each is only a cost, never a behaviour."""

from __future__ import annotations

import copy
import logging
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import typing_extensions
from livekit.agents import llm
from livekit.agents.voice.transcription import _speaking_rate
from openai import _utils as openai_utils
from openai.resources.chat.completions import completions as openai_completions
from openai.types.chat import completion_create_params

logger = logging.getLogger("agent.hot_paths")

# A tool is declared once, so a few dozen declarations cover every agent; the bound keeps
# tools made on the fly (one per call, say) from growing the cache without end.
SCHEMA_CACHE_SIZE = 256

_installed = False


def spectral_flux(audio: np.ndarray, sample_rate: int) -> float:
    """LiveKit's speaking-rate figure for one window: the mean L1 change between the magnitude
    spectra of consecutive 25 ms Hann frames at 50 % overlap. Computed over all frames at once."""
    return SlidingFlux()(audio, sample_rate)


class SlidingFlux:
    """`spectral_flux` of one stream's windows. LiveKit moves its 1 s window on by 0.1 s, a
    whole number of frame hops at 8, 16, 24 and 48 kHz, so the next window shares all but 8
    of its frames with the last: their spectra are kept, and only the new frames' are taken.
    A window that is not the last one moved on by `step` samples is computed whole."""

    def __init__(self) -> None:
        self._audio: np.ndarray | None = None
        self._magnitudes: np.ndarray | None = None
        self._rate = 0

    def __call__(self, audio: np.ndarray, sample_rate: int, step: int = 0) -> float:
        frame_length = int(sample_rate * 0.025)
        hop = frame_length // 2
        count = (len(audio) - frame_length) // hop + 1
        if count < 2:
            return 0.0
        magnitudes = self._moved_on(audio, sample_rate, step, frame_length, count)
        if magnitudes is None:
            magnitudes = _magnitudes(audio, frame_length, hop, 0, count)
        self._audio, self._magnitudes, self._rate = audio.copy(), magnitudes, sample_rate
        return float(np.mean(np.abs(np.diff(magnitudes, axis=0)).sum(axis=1)))

    def _moved_on(
        self, audio: np.ndarray, sample_rate: int, step: int, frame_length: int, count: int
    ) -> np.ndarray | None:
        hop = frame_length // 2
        last, kept = self._audio, self._magnitudes
        if last is None or kept is None or sample_rate != self._rate or len(last) != len(audio):
            return None
        shift = step // hop
        if step <= 0 or step % hop or shift >= count or len(kept) != count:
            return None
        if not np.array_equal(audio[:-step], last[step:]):
            return None
        new = _magnitudes(audio, frame_length, hop, count - shift, shift)
        return np.concatenate([kept[shift:], new])


def _magnitudes(
    audio: np.ndarray, frame_length: int, hop: int, first: int, count: int
) -> np.ndarray:
    """The scaled magnitude spectra of frames `first` to `first + count - 1`."""
    window = np.hanning(frame_length)
    scale = 1.0 / np.sqrt(np.sum(window**2))
    frames = np.lib.stride_tricks.sliding_window_view(audio[first * hop :], frame_length)
    return np.abs(np.fft.rfft(frames[::hop][:count] * window, axis=1)) * scale


def _stream_flux(stream: Any, audio: np.ndarray, sample_rate: int) -> float:
    """`SpeakingRateStream._spectral_flux`, with the stream's last window kept on the stream."""
    sliding = stream.__dict__.get("_hot_paths_flux")
    if sliding is None:
        sliding = stream.__dict__["_hot_paths_flux"] = SlidingFlux()
    return sliding(audio, sample_rate, step=getattr(stream, "_step_size_samples", 0))


class SchemaCache:
    """`build_strict_openai_schema`, once per tool declaration. Keyed on the tool's info, which
    LiveKit shares between a declared tool and every copy bound to an agent."""

    def __init__(self, build: Callable[[Any], dict[str, Any]], size: int = SCHEMA_CACHE_SIZE):
        self.build = build
        self._size = size
        # id(info) -> (info, schema); holding the info keeps its id from being reused
        self._schemas: OrderedDict[int, tuple[Any, dict[str, Any]]] = OrderedDict()

    def __call__(self, tool: Any) -> dict[str, Any]:
        info = tool.info
        hit = self._schemas.get(id(info))
        if hit is None or hit[0] is not info:
            hit = (info, self.build(tool))
            self._schemas[id(info)] = hit
            while len(self._schemas) > self._size:
                self._schemas.popitem(last=False)
        else:
            self._schemas.move_to_end(id(info))
        return copy.deepcopy(hit[1])  # the request may be changed downstream; the cache may not

    def __len__(self) -> int:
        return len(self._schemas)


def warm_schemas(tools: list[Any]) -> int:
    """Build these tools' schemas now, so the call's first request builds none. Tools with a
    schema of their own (`raw_schema`) need none. Returns how many were built."""
    install()
    cache = llm.utils.build_strict_openai_schema
    if not isinstance(cache, SchemaCache):
        return 0
    function_tools = [tool for tool in tools if isinstance(tool, llm.FunctionTool)]
    for tool in function_tools:
        cache(tool)
    return len(function_tools)


CHAT_PARAMS: tuple[type, ...] = (
    completion_create_params.CompletionCreateParamsStreaming,
    completion_create_params.CompletionCreateParamsNonStreaming,
)
_JSON_SCALARS = (str, int, float, bool, type(None))


def declares_key_changes(params: Any) -> bool:
    """Whether anything in a request's parameter types (TypedDicts, unions, lists, nested)
    carries the client's `PropertyInfo`: an alias, a format or a discriminator, which is what
    its body walk acts on."""
    seen: set[int] = set()
    pending = [params]
    while pending:
        kind = pending.pop()
        if id(kind) in seen:
            continue
        seen.add(id(kind))
        if typing_extensions.is_typeddict(kind):
            pending.extend(typing.get_type_hints(kind, include_extras=True).values())
            continue
        args = typing.get_args(kind)
        if typing.get_origin(kind) is typing.Annotated:
            if any(isinstance(meta, openai_utils.PropertyInfo) for meta in args[1:]):
                return True
            args = args[:1]
        pending.extend(arg for arg in args if not isinstance(arg, _JSON_SCALARS))
    return False


def is_plain_json(value: Any) -> bool:
    """Dicts with string keys, lists, strings, numbers, booleans and None, all the way down:
    what the client's walk would return unchanged. (A tuple, an iterator, a pydantic model or
    an omitted argument inside would be converted, so they are not plain.)"""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif not isinstance(item, _JSON_SCALARS):
            return False
    return True


def plain_chat_body(
    walk: Callable[[object, object], Awaitable[Any]],
) -> Callable[[object, object], Awaitable[Any]]:
    """The client's `async_maybe_transform` for a chat completion's body, without the walk:
    the given arguments as they are when they are plain JSON; anything else still walked."""

    async def transform(data: object, expected_type: object) -> Any:
        if expected_type in CHAT_PARAMS and isinstance(data, Mapping):
            body = {key: value for key, value in data.items() if openai_utils.is_given(value)}
            if is_plain_json(body):
                return body
        return await walk(data, expected_type)

    return transform


def install() -> None:
    """Use them in this process. The worker's prewarm calls it (through `warm_schemas`), and so
    does every session build, the voice console's too."""
    global _installed
    if _installed:
        return
    _installed = True
    stream = getattr(_speaking_rate, "SpeakingRateStream", None)
    if stream is not None and callable(getattr(stream, "_spectral_flux", None)):
        stream._spectral_flux = _stream_flux
    else:
        logger.warning("LiveKit's speaking-rate estimate has moved; it runs unchanged")
    build = getattr(llm.utils, "build_strict_openai_schema", None)
    if callable(build):
        llm.utils.build_strict_openai_schema = SchemaCache(build)  # type: ignore[assignment]
    else:
        logger.warning("LiveKit's tool schema builder has moved; schemas are built per request")
    walk = getattr(openai_completions, "async_maybe_transform", None)
    if not callable(walk):
        logger.warning("the OpenAI client's body transform has moved; it runs unchanged")
    elif any(declares_key_changes(params) for params in CHAT_PARAMS):
        logger.warning("the OpenAI chat parameters now rename or format keys; the walk stays")
    else:
        # same call, same result; typed as the coroutine function it replaces
        openai_completions.async_maybe_transform = plain_chat_body(walk)  # type: ignore[assignment]
