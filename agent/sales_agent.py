"""The sales agent: its instructions, its tools, and what it says first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, NoReturn

from livekit import rtc
from livekit.agents import Agent, ChatContext, ModelSettings, StopResponse, llm, stt
from livekit.agents.voice.events import UserInputTranscribedEvent
from livekit.plugins import cartesia

import prompts
from agent.backchannel import is_backchannel, rest_of_reply
from calls.business import BusinessProfile
from calls.call import Call
from calls.languages import choose_language
from calls.time_zones import zone_label
from calls.transcript import HeardWords
from integrations.masking import mask
from prompts.lines import ENGLISH, greeting_lines, language_lines
from recording import CallRecorder
from tools.function_tools import sales_tools


def instructions(business: BusinessProfile, language: str = ENGLISH) -> str:
    text = prompts.render(
        prompts.load_text("system.md"),
        agent_name=business.agent_name,
        company_name=business.company_name,
        company_pitch=business.company_pitch,
        product_summary=business.product_summary,
    )
    if language == ENGLISH:
        return text
    return text + "\n\n" + language_instruction(language)


def language_instruction(language: str) -> str:
    lines = language_lines()
    return prompts.render(lines.instruction, language=lines.names[language]).strip()


def language_notices(call: Call, language: str) -> str | None:
    """What the LLM is asked to say once in the caller's language: the greeting's notices."""
    greeting = greeting_lines(language=language)
    said = [greeting.ai_disclosure] if call.services.announce_ai else []
    if call.services.announce_recording:
        said.append(greeting.recording_notice)
    if not said:
        return None
    lines = language_lines()
    return prompts.render(lines.notices, language=lines.names[language], lines=" ".join(said))


def tts_engines(tts: Any) -> list[cartesia.TTS]:
    """The Cartesia voices behind the session's TTS (LiveKit's FallbackAdapter keeps its list
    private)."""
    engines = [tts, *getattr(tts, "_tts_instances", ())]
    return [engine for engine in engines if isinstance(engine, cartesia.TTS)]


def greeting(call: Call) -> str:
    """The first words, rendered without the LLM so the caller hears us at once."""
    lines = greeting_lines(language=call.language)
    business = call.services.business
    state = call.state
    name = state.contact.firstname if state.contact else None
    if state.lead is not None:
        name = state.lead.first_name or name
    reason = state.lead.reason if state.lead else None
    if state.direction == "outbound":
        parts = [lines.outbound_known if name else lines.outbound_new]
        parts.append(lines.outbound_reason if reason else lines.outbound_no_reason)
    else:
        parts = [lines.known_caller if name else lines.new_caller]
    if call.services.announce_ai:
        parts.append(lines.ai_disclosure)
    if call.services.announce_recording:
        parts.append(lines.recording_notice)
    if state.direction == "outbound":
        parts.append(lines.question_outbound)
    else:
        parts.append(lines.question_known if name else lines.question_new)
    return prompts.render(
        " ".join(parts),
        name=name or "",
        reason=reason or "",
        company_name=business.company_name,
        agent_name=business.agent_name,
    )


def call_context(call: Call) -> str:
    """Facts about this call, from the CRM and the clock, given to the LLM as it starts."""
    state, hours = call.state, call.services.hours
    now = call.now().astimezone(hours.zone)
    facts = [
        f"It is {now:%A %B %d, %Y, %I:%M %p} where our team is ({hours.time_zone}).",
        f"Call direction: {state.direction}.",
    ]
    if state.caller_phone:
        facts.append(f"Caller's number is on file as {mask(state.caller_phone)}.")
    if state.lead is not None:
        lead = state.lead
        who = ", ".join(filter(None, [lead.name, lead.company])) or "a lead"
        about = f" They asked about {lead.reason}." if lead.reason else ""
        facts.append(f"We are calling {who} back after their request.{about}")
    contact = state.contact
    if contact is not None:
        known = {
            "first name": contact.firstname,
            "last name": contact.lastname,
            "email": contact.email,
            "company": contact.company,
        }
        facts.append(
            "The CRM already has: "
            + "; ".join(f"{k}: {v}" for k, v in known.items() if v)
            + ". Do not ask for these again."
        )
    else:
        facts.append("This caller is not in the CRM yet.")
    answered = state.qualification.as_text()
    if answered:
        facts.append(
            "Qualification answers already known: "
            + "; ".join(f"{k} = {v}" for k, v in answered.items())
            + "."
        )
    if state.caller_zone is not None:
        label = zone_label(state.caller_zone, now)
        facts.append(f"Their number suggests the {label} time zone; confirm before booking.")
    return "\n".join(facts)


class SalesAgent(Agent):
    """The agent of one call. An inbound caller is greeted at once. An outbound callee picks
    up and speaks first ("Hello?"): their first turn is answered with the opener, not by the
    LLM, and a callee who stays quiet is greeted after a moment (``callee_answered``).

    With voicemail detection the opener is queued as usual, but LiveKit's AMD holds it back
    until it has heard enough: a person hears it the moment AMD says so (already
    synthesised), a mailbox never does (AMD cancels it) and ``stop_conversation`` keeps the
    agent from answering the mailbox's turns."""

    def __init__(
        self, call: Call, *, greet_on_enter: bool = True, recorder: CallRecorder | None = None
    ) -> None:
        chat_ctx = ChatContext.empty()
        chat_ctx.add_message(role="system", content=call_context(call))
        super().__init__(
            instructions=instructions(call.services.business, call.language),
            chat_ctx=chat_ctx,
            tools=sales_tools(call.services.criteria),
        )
        self._call = call
        self._greet_on_enter = greet_on_enter
        self._recorder = recorder
        self._greeted = False
        self._talking = True  # False once a mailbox answered
        self._screening = False  # True while voicemail detection has not yet decided
        self._quiet_callee: asyncio.Task[None] | None = None
        self._latest_final: tuple[str | None, str] | None = None  # its language, its words
        self._reply_text: list[str] = []  # what the agent is saying (or last said), in full
        self.heard = HeardWords()  # the caller's words as the STT sent them, for the record

    async def on_enter(self) -> None:
        if self._recorder is not None:  # the session's audio is up; no word is said yet
            await self._recorder.attach(self.session)
        self.session.on("user_input_transcribed", self._on_transcript)
        self._speak_in(self._call.language)
        if self._greet_on_enter:
            self.greet()

    def greet(self) -> None:
        if self._greeted or not self._talking:
            return
        self._greeted = True
        self.session.say(greeting(self._call))

    def callee_answered(self, *, quiet_s: float) -> None:
        """The outbound callee picked up: open once they have spoken, or after ``quiet_s`` of
        them saying nothing."""
        self._quiet_callee = asyncio.create_task(self._greet_if_quiet(quiet_s))

    def begin_screening(self) -> None:
        """Voicemail detection listens to the callee: until it decides, their turns are kept
        and answered by the opener only (a reply the screen holds back would drop the turn)."""
        self._screening = True

    def open_conversation(self) -> None:
        """A person answered: from now on their turns are the LLM's to answer."""
        self._screening = False

    def stop_conversation(self) -> None:
        """A machine answered: its greeting and prompts are heard, never answered."""
        self._talking = False

    async def _greet_if_quiet(self, quiet_s: float) -> None:
        await asyncio.sleep(quiet_s)
        if self.session.user_state != "speaking":
            self.greet()

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if self._call.state.transfer == "rep_accepted":
            # Handed to a rep: the caller's words are kept (transcript, rep's screen), never
            # answered.
            self.session.history.insert(new_message)
            raise StopResponse()
        if self._greeted and self._talking and not self._screening:
            self._carry_on_after_backchannel(new_message)
            await self._follow_caller_language(turn_ctx, new_message)
            return
        # The callee's "Hello?" is answered with the opener, not the LLM (and a mailbox's
        # greeting not at all, nor anything said while the screen decides); it stays in the
        # conversation (and the transcript), which skipping the turn would otherwise drop.
        context = self.chat_ctx.copy()
        context.insert(new_message)
        await self.update_chat_ctx(context)
        self.session.history.insert(new_message)
        self.greet()
        raise StopResponse()

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterator[stt.SpeechEvent | str]:
        """LiveKit's STT, noting each final transcript before the session's turn handling
        (which may drop a turn; ``heard``)."""
        async for event in Agent.default.stt_node(self, audio, model_settings):
            if isinstance(event, stt.SpeechEvent):
                self.heard.observe(event)
            yield event

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterator[rtc.AudioFrame]:
        """LiveKit's TTS, keeping the whole text of the reply being spoken: the history keeps
        only what the caller heard of an interrupted one (agent/backchannel.py)."""
        said = self._reply_text = []

        async def kept() -> AsyncIterator[str]:
            async for chunk in text:
                said.append(chunk)
                yield chunk

        async for frame in Agent.default.tts_node(self, kept(), model_settings):
            yield frame

    def _carry_on_after_backchannel(self, new_message: llm.ChatMessage) -> None:
        """The caller only said "uh-huh" over the agent: it says the rest of its reply and the
        turn is not answered. Kept in the transcript all the same."""
        if not is_backchannel(new_message.text_content or ""):
            return
        replies = [item for item in self.chat_ctx.items
                   if isinstance(item, llm.ChatMessage) and item.role == "assistant"]  # fmt: skip
        cut = replies[-1] if replies else None
        if cut is None or not cut.interrupted:
            return  # said after the agent finished: an answer ("okay" to a question)
        rest = rest_of_reply("".join(self._reply_text), cut.text_content or "")
        if rest is None:
            return
        self.session.history.insert(new_message)
        self.session.say(rest)
        raise StopResponse()

    def _on_transcript(self, event: UserInputTranscribedEvent) -> None:
        if event.is_final and event.transcript.strip():
            self._latest_final = (event.language, event.transcript)

    async def _follow_caller_language(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """The caller spoke another of the business's languages: go on in it. One nobody here
        speaks: say so, in it, and end the call."""
        heard, self._latest_final = self._latest_final, None
        if heard is None:
            return
        call = self._call
        choice = choose_language(
            current=call.language, heard=heard[0], transcript=heard[1],
            supported=call.services.languages,
        )  # fmt: skip
        if choice.action == "keep":
            return
        if choice.action == "unsupported":
            self._decline(choice.language, new_message)
        call.state.language = choice.language
        await self.update_instructions(instructions(call.services.business, choice.language))
        # This turn's reply was set up with the old instructions: it is told here, just before
        # the caller's words (the context keeps items in time order), which stay the last.
        told = [language_instruction(choice.language), language_notices(call, choice.language)]
        turn_ctx.insert(
            llm.ChatMessage(
                role="system", content=["\n".join(filter(None, told))],
                created_at=new_message.created_at - 0.001,
            )
        )  # fmt: skip
        self._speak_in(choice.language)

    def _decline(self, language: str, new_message: llm.ChatMessage) -> NoReturn:
        state, lines = self._call.state, language_lines()
        state.language, state.language_supported = language, False
        state.ended_by_agent = True
        name = lines.names.get(language, f"their language ({language})")
        state.follow_up = state.follow_up or f"call back in {name}: the caller speaks it"
        line = lines.unsupported.get(language)
        self._speak_in(language if line else ENGLISH)
        self.session.history.insert(new_message)
        handle = self.session.say(line or lines.unsupported[ENGLISH], allow_interruptions=False)
        self._call.control.hang_up_after(handle)
        raise StopResponse()

    def _speak_in(self, language: str) -> None:
        for engine in tts_engines(self.session.tts):
            engine.update_options(language=language)
