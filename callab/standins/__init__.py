"""Local stand-ins for Deepgram, OpenAI and Cartesia that speak each vendor's wire protocol.

Each runs in-process (`await Server(...).start()`, `.base_url`, `await .aclose()`) or as
a process (`python -m callab.standins.<module> --port ...`); see each module's docstring:

    callab.standins.openai_chat.OpenAIChatStandin    /v1/chat/completions, scripted (chat_script)
    callab.standins.deepgram_stt.DeepgramSTTStandin  /v1/listen websocket and REST
    callab.standins.cartesia_tts.CartesiaTTSStandin  /tts/websocket and /tts/bytes, espeak-ng voice

Nothing is re-exported here, so `python -m callab.standins.<module>` imports each module once.
"""
