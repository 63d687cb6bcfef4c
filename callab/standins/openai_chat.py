"""Stand-in for OpenAI Chat Completions, driven by a scenario script. LiveKit's
answering-machine classification is answered by the visible rule in ``greeting_rules``.

In-process:
    server = await OpenAIChatStandin(script=ChatScript.load("scenario.json"), ttft_ms=400).start()
    llm = openai.LLM(base_url=server.base_url, api_key="test")
    ...
    server.requests  # every request received, with messages and tools offered
    await server.aclose()

As a process:
    python -m callab.standins.openai_chat --port 8081 --script scenario.json --ttft-ms 400
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._server import StandinServer, add_common_arguments, serve_forever
from .chat_script import ChatScript, Message, ScriptChoice, Step, ToolCallSpec, message_text
from .greeting_rules import AMD_TOOL, amd_labels, classify_greeting, is_amd_request

ARGUMENT_PIECE_CHARS = 8


@dataclass(frozen=True)
class RecordedRequest:
    body: Mapping[str, Any]
    step_index: int | None  # None when the fallback answered
    received_at: float  # time.monotonic()

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def tools(self) -> list[Mapping[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return _tool_names(self.body)

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))


class OpenAIChatStandin(StandinServer):
    service_name = "openai_chat"

    def __init__(
        self,
        *,
        script: ChatScript,
        ttft_ms: float = 0.0,
        token_interval_ms: float = 0.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`ttft_ms`: delay from request to first token (a step's own `ttft_ms` wins).
        `token_interval_ms`: delay between streamed chunks. `api_key`: when set, the
        bearer token must equal it; otherwise any non-empty token is accepted."""
        super().__init__(host=host, port=port)
        self.script = script
        self.ttft_ms = ttft_ms
        self.token_interval_ms = token_interval_ms
        self._api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.amd_labels: list[str] = []  # what each answering-machine classification answered
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """What `livekit.plugins.openai.LLM(base_url=...)` takes."""
        return f"{self.origin}/v1"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._handle_completion)
        app.router.add_post("/chat/completions", self._handle_completion)
        app.router.add_get("/v1/models", self._handle_models)

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_auth(request)) is not None:
            return denied
        model = {"id": "standin", "object": "model", "created": 0, "owned_by": "standins"}
        return web.json_response({"object": "list", "data": [model]})

    async def _handle_completion(self, request: web.Request) -> web.StreamResponse:
        # TTFT counts from the request's arrival: the stand-in's own parsing is provider time
        arrived = time.monotonic()
        if (denied := self._check_auth(request)) is not None:
            return denied
        try:
            body = await request.json()
            messages = body["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return _error(400, "invalid_request_error", "body must be JSON with `messages`")
        choice = self._choose(body, messages)
        self.requests.append(
            RecordedRequest(body=body, step_index=choice.step_index, received_at=arrived)
        )
        reply = _Reply(
            completion_id=f"chatcmpl-standin-{next(self._ids)}",
            model=str(body.get("model", "standin")),
            choice=choice,
            call_id_prefix=f"call_{len(messages)}_{choice.step_index}",
            prompt_tokens=_estimate_tokens(messages),
        )
        ttft = choice.step.ttft_ms if choice.step.ttft_ms is not None else self.ttft_ms
        first_token_at = arrived + ttft / 1000
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(
                request, reply, first_token_at=first_token_at, include_usage=include_usage
            )
        await _sleep_until(first_token_at)
        return web.json_response(reply.completion())

    async def _stream(
        self, request: web.Request, reply: _Reply, *, first_token_at: float, include_usage: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        chunks = list(reply.chunks())
        if include_usage:
            chunks.append(reply.usage_chunk())
        try:
            # headers go out at once, like the real API; the first chunk waits for TTFT
            await _sleep_until(first_token_at)
            for index, chunk in enumerate(chunks):
                if index > 0 and self.token_interval_ms:
                    await asyncio.sleep(self.token_interval_ms / 1000)
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the agent cancelled the generation (barge-in); nothing to finish
        return response

    def _choose(self, body: Mapping[str, Any], messages: Sequence[Message]) -> ScriptChoice:
        """The script's step, except for LiveKit's answering-machine classification, which is
        answered by a fixed rule over its transcript (``greeting_rules``)."""
        names = _tool_names(body)
        if not is_amd_request(names):
            return self.script.choose(messages, names)
        users = [message_text(m) for m in messages if m.get("role") == "user"]
        label = classify_greeting(users[-1] if users else "")
        allowed = amd_labels(body.get("tools") or [])
        if allowed and label not in allowed:
            label = "uncertain" if "uncertain" in allowed else allowed[0]
        call = ToolCallSpec(name=AMD_TOOL, arguments={"label": label})
        self.amd_labels.append(label)
        return ScriptChoice(step=Step(tool_calls=(call,)), step_index=None)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or (self._api_key is not None and token != self._api_key):
            return _error(401, "invalid_request_error", "Incorrect API key provided")
        return None


@dataclass(frozen=True)
class _Reply:
    completion_id: str
    model: str
    choice: ScriptChoice
    call_id_prefix: str
    prompt_tokens: int

    @property
    def step(self) -> Step:
        return self.choice.step

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.step.tool_calls else "stop"

    def call_id(self, index: int) -> str:
        return f"{self.call_id_prefix}_{index}"

    def text_tokens(self) -> list[str]:
        return re.findall(r"\s*\S+", self.step.say or "")

    def chunks(self) -> Iterator[dict[str, Any]]:
        yield self._chunk({"role": "assistant", "content": ""})
        for token in self.text_tokens():
            yield self._chunk({"content": token})
        for index, call in enumerate(self.step.tool_calls):
            opener = {"index": index, "id": self.call_id(index), "type": "function"}
            yield self._chunk(
                {"tool_calls": [{**opener, "function": {"name": call.name, "arguments": ""}}]}
            )
            arguments = call.arguments_json
            for start in range(0, len(arguments), ARGUMENT_PIECE_CHARS):
                piece = arguments[start : start + ARGUMENT_PIECE_CHARS]
                yield self._chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                )
        yield self._chunk({}, finish_reason=self.finish_reason)

    def usage_chunk(self) -> dict[str, Any]:
        return {**self._envelope("chat.completion.chunk"), "choices": [], "usage": self._usage()}

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.step.say}
        if self.step.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self.call_id(i),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for i, call in enumerate(self.step.tool_calls)
            ]
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {**self._envelope("chat.completion"), "choices": [choice], "usage": self._usage()}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**self._envelope("chat.completion.chunk"), "choices": [choice]}

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.completion_id, "object": obj, "created": 0, "model": self.model}

    def _usage(self) -> dict[str, int]:
        completion_tokens = len(self.text_tokens()) + sum(
            1 + len(c.arguments_json) // 4 for c in self.step.tool_calls
        )
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    return [
        (tool.get("function") or {}).get("name", "")
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
    ]


def _estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 + len(message_text(m)) // 4 for m in messages)


def _error(status: int, kind: str, message: str) -> web.Response:
    error = {"message": message, "type": kind, "param": None, "code": None}
    return web.json_response({"error": error}, status=status)


async def _sleep_until(deadline: float) -> None:
    """Until `deadline` on `time.monotonic()`; at once if it has passed."""
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--script", required=True, help="scenario file (.json or .yaml)")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--token-interval-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    args = parser.parse_args(argv)
    server = OpenAIChatStandin(
        script=ChatScript.load(args.script),
        ttft_ms=args.ttft_ms,
        token_interval_ms=args.token_interval_ms,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
    )
    serve_forever(server, log_level=args.log_level)


if __name__ == "__main__":
    main()
