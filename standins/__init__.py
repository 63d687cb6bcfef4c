"""Local stand-ins for Deepgram, OpenAI and Cartesia that speak each vendor's wire protocol.

Each runs in-process (`await Server(...).start()`, `.base_url`, `await .aclose()`) or as
a process (`python -m standins.<module> --port ...`); see each module's docstring.
"""

from .cartesia_tts import CartesiaTTSStandin, ContextRecord
from .chat_script import ChatScript, Guard, Step, ToolCallSpec
from .deepgram_stt import DeepgramSTTStandin, DetectedUtterance, DetectionSettings, ListenRecord
from .openai_chat import OpenAIChatStandin, RecordedRequest
from .speech import EspeakSynthesizer, synthesize_blocking

__all__ = [
    "CartesiaTTSStandin",
    "ChatScript",
    "ContextRecord",
    "DeepgramSTTStandin",
    "DetectedUtterance",
    "DetectionSettings",
    "EspeakSynthesizer",
    "Guard",
    "ListenRecord",
    "OpenAIChatStandin",
    "RecordedRequest",
    "Step",
    "ToolCallSpec",
    "synthesize_blocking",
]
