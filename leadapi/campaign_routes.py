"""The lead API's campaigns: create (from JSON, or a CSV upload with its leads), configure,
read progress, pause, resume, cancel.

``POST /v1/campaigns`` takes either ``application/json`` (``CampaignCreateIn``) or
``multipart/form-data``: the config as form fields (``name``, ``max_concurrent``, and
``calling_hours`` / ``retry`` as JSON text) or as one JSON part named ``config``, and the leads
as a ``file`` part in the CSV format of ``python -m leadapi leads import``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from dialer.hours import CallingHours
from dialer.model import Campaign
from dialer.outcomes import OutcomeReporter
from dialer.retry import RetryPolicy
from dialer.store import StateChange, Store
from leadapi.admission import AdmissionRules, LeadRejected
from leadapi.csv_import import ImportRefused, ImportReport, csv_rows, import_rows
from leadapi.refusals import refuse
from leadapi.schemas import CampaignCreateIn, CampaignIn

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_JSON_FIELDS = ("calling_hours", "retry")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# An upload is imported inside its request, so its time is bounded by its rows: measured
# (bench/csv_upload.py) 10,000 rows in 1.3 s on SQLite and 3.5 s on PostgreSQL, 50,000 in 6.8 s
# and 18 s. Bigger files go through `python -m leadapi leads import` (no HTTP timeout).
MAX_UPLOAD_ROWS = 20_000


@dataclass(frozen=True)
class CampaignDeps:
    store: Store
    reporter: OutcomeReporter
    rules: AdmissionRules
    now: Callable[[], datetime]
    random_hex: Callable[[], str]


def campaign_routes(router: APIRouter, deps: CampaignDeps) -> None:
    @router.post(
        "/campaigns",
        status_code=201,
        tags=["campaigns"],
        responses={409: {"description": "a campaign has this name"}, 422: {}},
        openapi_extra={"requestBody": _REQUEST_BODY},
    )
    async def post_campaign(request: Request) -> dict[str, Any]:
        body, csv_text = await _campaign_request(request)
        campaign = campaign_from(body.name, body)
        return await run_in_threadpool(_create, deps, campaign, csv_text)

    @router.put(
        "/campaigns/{name}", tags=["campaigns"],
        responses={409: {"description": "the campaign was cancelled: its config is frozen"}},
    )  # fmt: skip
    def put_campaign(name: str, body: CampaignIn) -> dict[str, Any]:
        campaign = campaign_from(name, body)
        if deps.store.put_campaign(campaign).outcome == "cancelled":
            raise refuse(409, "campaign_cancelled", _FROZEN)
        return _progress_view(deps, name)

    @router.get("/campaigns", tags=["campaigns"])
    def list_campaigns() -> dict[str, Any]:
        return {"campaigns": [
            {**campaign_view(s.campaign), "state": s.state, "calls": s.calls}
            for s in deps.store.campaign_summaries()
        ]}  # fmt: skip

    @router.get("/campaigns/{name}", tags=["campaigns"], name="get_campaign")
    def get_campaign(name: str) -> dict[str, Any]:
        return _progress_view(deps, name)

    @router.post("/campaigns/{name}/pause", tags=["campaigns"])
    def pause(name: str) -> dict[str, Any]:
        return _changed(deps, name, deps.store.pause_campaign(name, now=deps.now()))

    @router.post("/campaigns/{name}/resume", tags=["campaigns"])
    def resume(name: str) -> dict[str, Any]:
        return _changed(deps, name, deps.store.resume_campaign(name, now=deps.now()))

    @router.post("/campaigns/{name}/cancel", tags=["campaigns"])
    def cancel(name: str) -> dict[str, Any]:
        change = deps.reporter.cancel_campaign(name)
        return {**_changed(deps, name, change), "cancelled_calls": change.ended}


_FROZEN = "the campaign was cancelled; that is final and its config can no longer change"


def _create(deps: CampaignDeps, campaign: Campaign, csv_text: str | None) -> dict[str, Any]:
    try:  # a file the import would refuse is refused before the campaign exists
        rows = csv_rows(csv_text) if csv_text is not None else None
    except ImportRefused as exc:
        raise _invalid("file", str(exc)) from None
    if rows is not None and len(rows) > MAX_UPLOAD_ROWS:
        raise _invalid(
            "file", f"{len(rows)} rows; an upload takes at most {MAX_UPLOAD_ROWS}: split the "
            "file, or import it with `python -m leadapi leads import`",
        )  # fmt: skip
    if not deps.store.create_campaign(campaign):
        raise refuse(409, "campaign_exists", f"a campaign named {campaign.name!r} exists")
    if rows is None:
        return _progress_view(deps, campaign.name)
    report = import_rows(
        rows, campaign=campaign.name, store=deps.store, rules=deps.rules, now=deps.now,
        random_hex=deps.random_hex,
    )  # fmt: skip
    return {**_progress_view(deps, campaign.name), "import": _report_view(report)}


def _changed(deps: CampaignDeps, name: str, change: StateChange) -> dict[str, Any]:
    if change.outcome == "unknown":
        raise HTTPException(404, "no such campaign")
    if change.outcome == "cancelled":
        raise refuse(409, "campaign_cancelled", "the campaign was cancelled; that is final")
    return _progress_view(deps, name)


def _progress_view(deps: CampaignDeps, name: str) -> dict[str, Any]:
    campaign = deps.store.campaign(name)
    state = deps.store.campaign_state(name)
    if campaign is None or state is None:
        raise HTTPException(404, "no such campaign")
    return {**campaign_view(campaign), "state": state,
            "calls": deps.store.campaign_progress(name)}  # fmt: skip


def _report_view(report: ImportReport) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "queued": report.queued,
        "duplicates": report.duplicates,
        "do_not_call": report.do_not_call,
        "rejected": [{"line": e.line, "field": e.field, "message": e.message}
                     for e in report.errors],
    }  # fmt: skip


async def _campaign_request(request: Request) -> tuple[CampaignCreateIn, str | None]:
    """The config, and the CSV text when the request is an upload."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_part_size=MAX_UPLOAD_BYTES) as form:
            config = _form_config(form)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _invalid("file", "a CSV file part named 'file' is required")
            raw = await upload.read()
        try:
            return _validated(config), raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _invalid("file", "the file is not UTF-8 text") from None
    try:
        data = await request.json()
    except ValueError:
        raise _invalid("body", "send JSON, or a multipart upload with a 'file' part") from None
    return _validated(data), None


def _form_config(form: FormData) -> dict[str, Any]:
    if "config" in form:
        return _json_field(form, "config")
    config: dict[str, Any] = {}
    for key in form:
        if key == "file":
            continue
        config[key] = _json_field(form, key) if key in _JSON_FIELDS else form.get(key)
    return config


def _json_field(form: FormData, key: str) -> Any:
    value = form.get(key)
    if not isinstance(value, str):
        raise _invalid(key, "expected JSON text, not a file")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise _invalid(key, f"not valid JSON: {exc.msg}") from None


def _validated(data: Any) -> CampaignCreateIn:
    try:
        return CampaignCreateIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def campaign_from(name: str, body: CampaignIn) -> Campaign:
    hours = retry = None
    try:
        if body.calling_hours is not None:
            h = body.calling_hours
            days = frozenset(DAYS.index(d) for d in h.days)
            hours = CallingHours(start=h.start, end=h.end, weekdays=days)
    except ValueError as exc:
        raise LeadRejected("calling_hours", str(exc)) from None
    try:
        if body.retry is not None:
            r = body.retry
            retry = RetryPolicy(
                max_attempts=r.max_attempts, busy=tuple(r.busy_minutes),
                no_answer=tuple(r.no_answer_minutes), voicemail=tuple(r.voicemail_minutes),
                failed=tuple(r.failed_minutes),
            )  # fmt: skip
    except ValueError as exc:
        raise LeadRejected("retry", str(exc)) from None
    return Campaign(name=name, hours=hours, max_concurrent=body.max_concurrent, retry=retry)


def campaign_view(campaign: Campaign) -> dict[str, Any]:
    hours = campaign.hours
    return {
        "name": campaign.name,
        "max_concurrent": campaign.max_concurrent,
        "calling_hours": {
            "start": hours.start.isoformat("minutes"),
            "end": hours.end.isoformat("minutes"),
            "effective_start": hours.effective_start().isoformat("minutes"),
            "effective_end": hours.effective_end().isoformat("minutes"),
            "days": [DAYS[d] for d in sorted(hours.weekdays)],
        }
        if hours
        else None,
        "retry": campaign.retry.__dict__ if campaign.retry else None,
    }


def _schema(model: type[CampaignCreateIn]) -> dict[str, Any]:
    """The model's JSON schema, its nested models referred to where OpenAPI keeps them (PUT
    registers them)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": _schema(CampaignCreateIn)},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "config": {"type": "string", "description": "the JSON body, as text"},
                    "name": {"type": "string"},
                    "max_concurrent": {"type": "integer"},
                    "calling_hours": {"type": "string", "description": "JSON"},
                    "retry": {"type": "string", "description": "JSON"},
                    "file": {"type": "string", "format": "binary", "description": "leads CSV"},
                },
            }
        },
    },
}
