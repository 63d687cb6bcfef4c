"""The lead API: leads in, call status out, the do-not-call list, campaigns, and the worker's
reports for workers that reach the queue over HTTP. Every route but /health needs a key.

Refusals: a bad field is 422 naming it (FastAPI's shape: ``detail[].loc``), a lead without
consent when consent is required is 422 with ``type: consent_required``; a number on the
do-not-call list is 409 (the lead is valid; the list says no, until the number is removed);
an Idempotency-Key reused for a different body is 409.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from console import ConsoleDeps, mount_console
from dialer.model import CallResult, Campaign
from dialer.outcomes import AttemptRef, AttemptReport, OutcomeReporter
from dialer.store import ApiKey, IdempotencyConflict, IdempotencyKey, Store
from dialer.views import call_view
from leadapi.admission import (
    AdmissionRules,
    LeadRejected,
    call_for,
    fingerprint,
    new_call_id,
    phone_or_reject,
)
from leadapi.campaign_routes import CampaignDeps, campaign_routes
from leadapi.keys import KeyRing
from leadapi.rate_limits import RateLimiter, retry_after_header
from leadapi.refusals import refuse
from leadapi.schemas import DncIn, LeadAccepted, LeadIn, OutcomeIn, ProgressIn, Refusal
from metrics.api import ApiMetrics
from privacy.api import contact_routes
from privacy.forget import ContactEraser

_bearer = HTTPBearer(auto_error=False, description="an API key from `python -m leadapi keys`")


@dataclass(frozen=True)
class ApiDeps:
    store: Store
    keys: KeyRing
    reporter: OutcomeReporter
    rules: AdmissionRules
    now: Callable[[], datetime]
    random_hex: Callable[[], str] = field(default=lambda: secrets.token_hex(12))
    metrics: ApiMetrics = field(default_factory=ApiMetrics)  # served at /metrics
    eraser: ContactEraser | None = None  # DELETE /v1/contacts/{phone}, when given
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(per_minute=0, burst=1))
    console: ConsoleDeps | None = None  # the rep console at /console/ (console/)


_UNAUTHORISED = {"detail": "a valid API key is required"}


def build_app(deps: ApiDeps) -> FastAPI:
    app = FastAPI(
        title="Lead API",
        version="1",
        description="Send leads to the AI phone agent and read how their calls went.",
    )
    app.add_exception_handler(LeadRejected, _rejected)  # type: ignore[arg-type]

    @app.get("/health", tags=["health"])
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Before anything reads the body, so a request without a key learns nothing else."""
        if request.url.path.startswith("/v1"):
            key = await run_in_threadpool(_verify, deps.keys, request.headers.get("authorization"))
            if key is None:
                return JSONResponse(_UNAUTHORISED, 401, headers={"WWW-Authenticate": "Bearer"})
            wait = deps.limiter.take(key.id)
            if wait is not None:
                return _rate_limited(wait)
            request.state.api_key = key
        return await call_next(request)

    router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
    _lead_routes(router, deps)
    _call_routes(router, deps)
    _dnc_routes(router, deps)
    campaign_routes(router, CampaignDeps(store=deps.store, reporter=deps.reporter,
                                         rules=deps.rules, now=deps.now,
                                         random_hex=deps.random_hex))  # fmt: skip
    if deps.eraser is not None:
        contact_routes(router, deps.eraser)
    app.include_router(router)
    if deps.console is not None:
        mount_console(app, deps.console)
    deps.metrics.install(app)
    return app


def _rate_limited(wait_s: float) -> JSONResponse:
    retry_after = retry_after_header(wait_s)
    message = f"too many requests for this API key; retry after {retry_after} s"
    body = {"detail": Refusal(reason="rate_limited", message=message).model_dump()}
    return JSONResponse(body, 429, headers={"Retry-After": retry_after})


def require_key(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's key, which the middleware checked (this declares the scheme in /docs)."""
    key: ApiKey = request.state.api_key
    return key


def _verify(keys: KeyRing, authorization: str | None) -> ApiKey | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return keys.verify(token.strip())


def _rejected(_request: Request, exc: LeadRejected) -> JSONResponse:
    detail = [{"loc": ["body", exc.field], "msg": str(exc), "type": exc.kind}]
    return JSONResponse({"detail": detail}, status_code=422)


def _lead_routes(router: APIRouter, deps: ApiDeps) -> None:
    @router.post(
        "/leads",
        status_code=202,
        response_model=LeadAccepted,
        tags=["leads"],
        responses={200: {"description": "a duplicate: the earlier call"}, 409: {}, 422: {}},
    )
    def post_lead(
        lead: LeadIn,
        request: Request,
        response: Response,
        key: Annotated[ApiKey, Depends(require_key)],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> LeadAccepted:
        now = deps.now()
        try:
            campaign = _known_campaign(deps, lead.campaign)
            call = call_for(lead, rules=deps.rules, campaign=campaign,
                            call_id=new_call_id(deps.random_hex), now=now)  # fmt: skip
        except LeadRejected as exc:
            deps.metrics.lead_refused(_refusal_reason(exc))
            raise
        idem = (
            IdempotencyKey(key.id, idempotency_key, fingerprint(lead)) if idempotency_key else None
        )
        dedupe = now - deps.rules.dedupe_window if deps.rules.dedupe_window else None
        try:
            admission = deps.store.admit(call, idempotency=idem, dedupe_since=dedupe)
        except IdempotencyConflict as exc:
            deps.metrics.lead_refused("idempotency_key_reused")
            raise refuse(409, "idempotency_key_reused", str(exc)) from None
        if admission.outcome == "campaign_cancelled":
            deps.metrics.lead_refused("campaign_cancelled")
            raise refuse(409, "campaign_cancelled", _CANCELLED)
        if admission.outcome == "do_not_call" or admission.call_id is None:
            deps.metrics.lead_refused("do_not_call")
            raise refuse(409, "do_not_call", "this number is on the do-not-call list")
        deps.metrics.lead_accepted(duplicate=admission.outcome == "duplicate")
        if admission.outcome == "duplicate":
            response.status_code = 200
        return LeadAccepted(
            id=admission.call_id, status=admission.status or "queued",
            scheduled_for=admission.next_at,
            status_url=str(request.url_for("get_call", call_id=admission.call_id)),
            duplicate=admission.outcome == "duplicate",
        )  # fmt: skip


def _refusal_reason(exc: LeadRejected) -> str:
    return exc.kind if exc.kind != "value_error" else f"invalid_{exc.field}"


_CANCELLED = "this campaign was cancelled; it takes no new leads"


def _known_campaign(deps: ApiDeps, name: str | None) -> Campaign | None:
    if name is None:
        return None
    campaign = deps.store.campaign(name)
    if campaign is None:
        raise LeadRejected("campaign", f"no campaign named {name!r}; create it first")
    if deps.store.campaign_state(name) == "cancelled":  # checked again as the lead is admitted
        raise refuse(409, "campaign_cancelled", _CANCELLED)
    return campaign


def _call_routes(router: APIRouter, deps: ApiDeps) -> None:
    @router.get("/calls/{call_id}", tags=["calls"], name="get_call")
    def get_call(call_id: str, request: Request) -> dict[str, Any]:
        call = deps.store.call(call_id)
        if call is None:
            raise HTTPException(404, "no such call")
        view = call_view(call, deps.store.attempts(call_id))
        view["status_url"] = str(request.url_for("get_call", call_id=call_id))
        return view

    @router.post("/calls/{call_id}/attempts/{attempt}/progress", tags=["worker"])
    def post_progress(call_id: str, attempt: int, body: ProgressIn) -> dict[str, bool]:
        _existing_call(deps, call_id)
        return {"recorded": deps.reporter.progress(AttemptRef(call_id, attempt), body.state)}

    @router.post("/calls/{call_id}/attempts/{attempt}/outcome", tags=["worker"])
    def post_outcome(call_id: str, attempt: int, body: OutcomeIn) -> dict[str, bool]:
        _existing_call(deps, call_id)
        result = CallResult(
            disposition=body.disposition, summary=body.summary,
            qualification=body.qualification, booking=body.booking,
        )  # fmt: skip
        report = AttemptReport(
            call_id, attempt, body.status, sip_status=body.sip_status, detail=body.detail,
            result=result if body.disposition or body.summary or body.booking else None,
            callback_at=body.callback_at,
        )  # fmt: skip
        return {"recorded": deps.reporter.report(report)}


def _existing_call(deps: ApiDeps, call_id: str) -> None:
    if deps.store.call(call_id) is None:
        raise HTTPException(404, "no such call")


def _dnc_routes(router: APIRouter, deps: ApiDeps) -> None:
    region = deps.rules.default_region

    @router.post("/dnc", status_code=201, tags=["do-not-call"])
    def add_dnc(body: DncIn, response: Response) -> dict[str, Any]:
        phone = phone_or_reject(body.phone, region=region)
        added = deps.store.add_dnc(phone, reason=body.reason, now=deps.now())
        if not added:
            response.status_code = 200
        return {"phone": phone, "added": added}

    @router.get("/dnc", tags=["do-not-call"])
    def list_dnc() -> dict[str, Any]:
        entries = deps.store.dnc_entries()
        return {
            "entries": [
                {"phone": e.phone, "reason": e.reason, "added_at": e.added_at.isoformat()}
                for e in entries
            ]
        }

    @router.delete("/dnc/{phone}", status_code=204, tags=["do-not-call"])
    def remove_dnc(phone: str) -> Response:
        if not deps.store.remove_dnc(phone_or_reject(phone, region=region)):
            raise HTTPException(404, "this number is not on the list")
        return Response(status_code=204)
