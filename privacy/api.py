"""`DELETE /v1/contacts/{phone}` on the lead API: the same erasure as `python -m privacy forget`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from integrations.phone import InvalidPhoneNumber
from privacy.forget import ContactEraser


def contact_routes(router: APIRouter, eraser: ContactEraser) -> None:
    @router.delete(
        "/contacts/{phone}",
        tags=["privacy"],
        responses={
            200: {"description": "everything we kept for this number is gone: the report"},
            422: {"description": "not a phone number; nothing was changed"},
            503: {
                "description": "our stores are clean, the CRM or the calendar did not finish: "
                "send it again"
            },
        },
    )
    async def forget_contact(phone: str) -> Any:
        """Delete a contact's data by phone number (idempotent: a repeat removes nothing)."""
        try:
            report = await eraser.forget(phone)
        except InvalidPhoneNumber as exc:
            detail = [{"loc": ["path", "phone"], "msg": str(exc), "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if not report.complete:
            return JSONResponse(report.as_dict(), status_code=503)
        return report.as_dict()
