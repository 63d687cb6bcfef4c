"""Telephony: SIP trunks and dispatch rules, on the local stack or LiveKit Cloud."""
