"""A refusal the client can act on: 409 (or another status) with a reason and a sentence."""

from __future__ import annotations

from fastapi import HTTPException

from leadapi.schemas import Refusal, RefusalReason


def refuse(status: int, reason: RefusalReason, message: str) -> HTTPException:
    return HTTPException(status, Refusal(reason=reason, message=message).model_dump())
