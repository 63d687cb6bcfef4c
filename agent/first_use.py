"""Side-effect module: LiveKit's lazy one-time work that every call hit on its own loop, done
once in the forkserver, so every job process inherits it done.

A job process is new for each call, so whatever the SDK builds on first use, each call builds
again while it starts, on the loop that also feeds the caller's audio to Silero. The SDK's
loop monitor caught two of them at session start with three calls on a core (2026-12-04):

- the English hyphenator the transcript's word timing uses (`tokenize.basic.hyphenate_word`):
  a tree of some 4,500 patterns, built by its first call: 60 ms on an idle core, as the
  greeting started;
- the chat items' private attributes with a default factory (the session's first
  `AgentConfigUpdate`, an image's cache): pydantic inspects each factory's signature the
  first time such an item is made, parsing `list`'s text signature: 28 ms in a job process,
  and the loop blocked 116-123 ms around it on a busy core.

Both keep their result at class or module level, which a fork copies. The forkserver imports
this module (`agent.preload.PRELOAD_MODULES`); a job process that was not forked from it (jobs
in threads, or off Linux) runs `warm()` in its prewarm instead, where it costs the same once
per process but no caller waits for it."""

from __future__ import annotations

import functools

from livekit.agents import llm
from livekit.agents.tokenize import basic


@functools.cache
def warm() -> None:
    basic.hyphenate_word("qualification")
    llm.AgentConfigUpdate()
    llm.ImageContent(image="data:image/png;base64,")


warm()
