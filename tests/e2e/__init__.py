"""End-to-end calls through the real local LiveKit stack.

A test phone (a WebRTC participant standing in for the SIP leg, see `phone.py`) calls the
real worker (`python -m agent`), which talks to the Deepgram, OpenAI and Cartesia stand-ins
and to the vendor fakes or the embedded CRM and calendar. `harness.py` starts and stops all
of it; `scenarios.py` holds what the caller says and what the scripted LLM answers.
"""
