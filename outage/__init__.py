"""A provider down in the middle of a call (issue 11): the apology recorded ahead of time, the
callback through the dialer's queue, and the guard that ties them to a call's session.

    clips = prepare_apology(cache_dir, voice_key=..., make_tts=...)     # in the prewarm
    OutageGuard(session, call, clips=clips, callbacks=OutageCallbacks(queue, policy,
                by_attempt=...), callback_after=timedelta(minutes=30))  # per call
"""

from outage.callbacks import OutageCallbacks, callback_call_id
from outage.clips import ApologyClips, Clip, apology_lines, prepare_apology
from outage.guard import OutageGuard

__all__ = [
    "ApologyClips",
    "Clip",
    "OutageCallbacks",
    "OutageGuard",
    "apology_lines",
    "callback_call_id",
    "prepare_apology",
]
