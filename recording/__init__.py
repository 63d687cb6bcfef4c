"""Call recordings: both sides of a call in one OGG file under the data directory, when the
caller is told the call is recorded (``ANNOUNCE_RECORDING``).

recorder = CallRecorder(CallFiles(data_dir), call_id)
await recorder.attach(session)        # as the agent enters, before its first word
...
recording = await recorder.finish()   # at wrap-up, before the record: "recordings/<id>.ogg"
"""

from recording.recorder import CHANNELS, SAMPLE_RATE, CallRecorder

__all__ = ["CHANNELS", "SAMPLE_RATE", "CallRecorder"]
