"""Voicemail on outbound calls: tell a mailbox from a person, leave a message after the beep.

screen = CalleeScreen(session, callee_audio=participant_audio(room, identity), ...)
await screen.start()                    # before dialing
... dial, wait until answered ...
await handle_answer(screen, session=session, call=call, opener=agent)
"""

from voicemail.beep import Beep, BeepDetector, BeepSettings
from voicemail.decision import Decision, Screening, ScreenTimings
from voicemail.message import voicemail_message
from voicemail.outbound import Opener, handle_answer
from voicemail.screen import CalleeScreen, participant_audio

__all__ = [
    "Beep",
    "BeepDetector",
    "BeepSettings",
    "CalleeScreen",
    "Decision",
    "Opener",
    "ScreenTimings",
    "Screening",
    "handle_answer",
    "participant_audio",
    "voicemail_message",
]
