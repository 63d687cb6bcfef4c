"""The console's HTTP side, under /console: the page and its bundle, and the JSON API the page
calls with its session cookie. Refusals are JSON ``{"detail": "..."}`` in words for the rep:
401 not signed in (or expired), 403 a room or offer that is not theirs, 409 an offer that can
no longer be answered, 410 an invite that cannot be used, 422 bad input."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Cookie, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from console.accounts import Accounts, InviteInvalid, SessionInvalid, SignInError
from console.crm_notes import NoContact, RepDisposition, write_notes
from console.livekit_access import LiveKitAccess
from integrations.crm import Crm
from integrations.errors import IntegrationError
from transfer.consult import rep_identity
from transfer.offers import ConsoleOffers, Offer, OfferClosed
from transfer.roster import Rep, Roster

logger = logging.getLogger("console")

COOKIE = "console_session"
WEB_DIR = Path(__file__).resolve().parent / "web"


@dataclass(frozen=True)
class ConsoleDeps:
    roster: Roster
    offers: ConsoleOffers
    accounts: Accounts
    livekit: LiveKitAccess
    crm: Callable[[], Crm]  # built on first use
    now: Callable[[], datetime]
    web_dir: Path = WEB_DIR


class InviteCheckIn(BaseModel):
    token: str = Field(min_length=10, max_length=200)


class InviteUseIn(InviteCheckIn):
    password: str = Field(max_length=500)


class SignInIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(max_length=500)


class PresenceIn(BaseModel):
    presence: Literal["available", "away"]


class RoomIn(BaseModel):
    room: str = Field(min_length=1, max_length=200)


class NotesIn(BaseModel):
    notes: str = Field(max_length=10_000)
    disposition: RepDisposition


def mount_console(app: FastAPI, deps: ConsoleDeps) -> None:
    """The page at /console/ and its API at /console/api/."""
    app.state.console = deps
    app.include_router(_page_routes(deps))
    router = APIRouter(prefix="/console/api", tags=["rep console"])
    _sign_in_routes(router, deps)
    _presence_routes(router, deps)
    _offer_routes(router, deps)
    _call_routes(router, deps)
    app.include_router(router)


def _page_routes(deps: ConsoleDeps) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console")
    def to_page() -> RedirectResponse:
        return RedirectResponse("/console/")

    @router.get("/console/")
    def page() -> FileResponse:
        return FileResponse(deps.web_dir / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/console/{name}")
    def asset(name: str) -> FileResponse:
        if name not in ("app.js", "app.js.map"):
            raise HTTPException(404, "not found")
        built = deps.web_dir / "dist" / name
        if not built.exists():
            raise HTTPException(503, "the console is not built: run `make setup`")
        return FileResponse(built, headers={"Cache-Control": "no-cache"})

    return router


def _current_rep(request: Request, console_session: Annotated[str | None, Cookie()] = None) -> Rep:
    deps: ConsoleDeps = request.app.state.console
    try:
        return deps.accounts.session(console_session)
    except SessionInvalid as exc:
        raise HTTPException(401, str(exc)) from None


SignedIn = Annotated[Rep, Depends(_current_rep)]


def _set_cookie(response: Response, request: Request, token: str, ttl: timedelta) -> None:
    response.set_cookie(
        COOKIE, token, max_age=int(ttl.total_seconds()), httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/console",
    )  # fmt: skip


def _sign_in_routes(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/invites/check")
    def check_invite(body: InviteCheckIn) -> dict[str, str]:
        try:
            rep = deps.accounts.invited(body.token)
        except InviteInvalid as exc:
            raise HTTPException(410, str(exc)) from None
        return {"name": rep.name, "email": rep.email}

    @router.post("/invites/use")
    def use_invite(body: InviteUseIn, request: Request, response: Response) -> dict[str, Any]:
        try:
            session = deps.accounts.set_password(body.token, body.password)
        except InviteInvalid as exc:
            raise HTTPException(410, str(exc)) from None
        except SignInError as exc:
            raise HTTPException(422, str(exc)) from None
        _set_cookie(response, request, session.token, deps.accounts.session_ttl)
        return _me(deps, session.rep)

    @router.post("/sign-in")
    def sign_in(body: SignInIn, request: Request, response: Response) -> dict[str, Any]:
        try:
            session = deps.accounts.sign_in(body.email, body.password)
        except SignInError as exc:
            raise HTTPException(401, str(exc)) from None
        _set_cookie(response, request, session.token, deps.accounts.session_ttl)
        return _me(deps, session.rep)

    @router.post("/sign-out")
    def sign_out(
        response: Response, console_session: Annotated[str | None, Cookie()] = None
    ) -> dict[str, bool]:
        if console_session:
            try:
                rep = deps.accounts.session(console_session)
            except SessionInvalid:
                rep = None
            deps.accounts.sign_out(console_session)
            if rep is not None:
                _leave(deps, rep, "offline")
        response.delete_cookie(COOKIE, path="/console")
        return {"signed_out": True}

    @router.get("/me")
    def me(rep: SignedIn) -> dict[str, Any]:
        return _me(deps, rep)


def _leave(deps: ConsoleDeps, rep: Rep, presence: str) -> None:
    """The rep signed out (offline) or closed the page (away); a rep on a call stays on it."""
    deps.offers.gone(rep.id)
    if deps.roster.get(rep.id).presence != "on_call":
        deps.roster.set_presence(rep.id, presence)


def _me(deps: ConsoleDeps, rep: Rep) -> dict[str, Any]:
    rep = deps.roster.get(rep.id)
    return {
        "id": rep.id, "name": rep.name, "email": rep.email, "presence": rep.presence,
        "identity": rep_identity(rep), "hours": str(rep.hours) if rep.hours else None,
    }  # fmt: skip


def _presence_routes(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/state")
    def state(rep: SignedIn) -> dict[str, Any]:
        """The page asks every second or two: it checks in (a page that stops asking goes
        away), and learns its presence and the offer or call on screen."""
        deps.offers.seen(rep.id)
        _sweep(deps)
        current = deps.offers.current(rep.id)
        return {"me": _me(deps, rep), "offer": _offer_view(deps, current) if current else None}

    @router.put("/presence")
    def set_presence(body: PresenceIn, rep: SignedIn) -> dict[str, Any]:
        if deps.roster.get(rep.id).presence == "on_call":
            raise HTTPException(409, "you are on a call; your status changes when it ends")
        deps.offers.seen(rep.id)
        deps.roster.set_presence(rep.id, body.presence)
        return _me(deps, rep)

    @router.post("/away")
    def page_closed(rep: SignedIn) -> dict[str, bool]:
        """The page is going (sent as a beacon when the tab closes)."""
        _leave(deps, rep, "away")
        return {"away": True}


def _sweep(deps: ConsoleDeps) -> None:
    """Reps whose page stopped checking in go away (a call they are on is left alone)."""
    for rep_id in deps.offers.stale():
        try:
            if deps.roster.get(rep_id).presence == "available":
                deps.roster.set_presence(rep_id, "away")
                logger.info("rep %s: console gone quiet, now away", rep_id)
        except ValueError:
            continue


def _offer_view(deps: ConsoleDeps, offer: Offer) -> dict[str, Any]:
    left = (offer.decide_by - deps.now()).total_seconds()
    return {
        "id": offer.id, "state": offer.state, "detail": offer.detail, "brief": offer.brief,
        "caller_room": offer.caller_room, "consult_room": offer.consult_room,
        "offered_at": offer.offered_at.isoformat(), "decide_by": offer.decide_by.isoformat(),
        "seconds_left": max(0.0, round(left, 1)) if offer.state == "ringing" else None,
        "answered_at": offer.answered_at.isoformat() if offer.answered_at else None,
        "ended_at": offer.ended_at.isoformat() if offer.ended_at else None,
        "notes": offer.notes, "disposition": offer.disposition,
    }  # fmt: skip


def _own_offer(deps: ConsoleDeps, rep: Rep, offer_id: str) -> Offer:
    offer = deps.offers.get(offer_id)
    if offer is None or offer.rep_id != rep.id:
        raise HTTPException(403, "this call was not offered to you")
    return offer


def _offer_routes(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/offers/{offer_id}")
    def get_offer(offer_id: str, rep: SignedIn) -> dict[str, Any]:
        return _offer_view(deps, _own_offer(deps, rep, offer_id))

    @router.post("/livekit-token")
    def livekit_token(body: RoomIn, rep: SignedIn) -> dict[str, Any]:
        """A token for the consult room of the offer ringing, or the caller's room of the
        call the rep took; any other room is refused."""
        if deps.offers.may_join(rep.id, body.room) is None:
            raise HTTPException(403, "you were not offered this room")
        return _join(deps, rep, body.room)

    def answer(offer_id: str, rep: Rep, *, accept: bool) -> Offer:
        _own_offer(deps, rep, offer_id)
        try:
            return deps.offers.answer(offer_id, rep_id=rep.id, accept=accept)
        except OfferClosed as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/offers/{offer_id}/accept")
    def accept(offer_id: str, rep: SignedIn) -> dict[str, Any]:
        offer = answer(offer_id, rep, accept=True)
        logger.info("rep %s accepted %s", rep.id, offer.id)
        return {"offer": _offer_view(deps, offer), "join": _join(deps, rep, offer.caller_room)}

    @router.post("/offers/{offer_id}/decline")
    def decline(offer_id: str, rep: SignedIn) -> dict[str, Any]:
        return {"offer": _offer_view(deps, answer(offer_id, rep, accept=False))}


def _join(deps: ConsoleDeps, rep: Rep, room: str) -> dict[str, Any]:
    return {
        "url": deps.livekit.url,
        "room": room,
        "identity": rep_identity(rep),
        "token": deps.livekit.token(rep, room),
    }


def _call_routes(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/offers/{offer_id}/hang-up")
    async def hang_up(offer_id: str, rep: SignedIn) -> dict[str, Any]:
        offer = await run_in_threadpool(_own_offer, deps, rep, offer_id)
        if not offer.in_call:
            raise HTTPException(409, "this call is not in progress")
        await deps.livekit.end_room(offer.caller_room)
        await run_in_threadpool(deps.offers.end_call, offer.id)
        ended = await run_in_threadpool(_own_offer, deps, rep, offer_id)
        return {"offer": _offer_view(deps, ended)}

    @router.post("/offers/{offer_id}/notes")
    async def notes(offer_id: str, body: NotesIn, rep: SignedIn) -> dict[str, Any]:
        """Saved here first (nothing is lost), then written to the CRM."""
        await run_in_threadpool(_own_offer, deps, rep, offer_id)
        try:
            offer = await run_in_threadpool(
                lambda: deps.offers.note(
                    offer_id, rep_id=rep.id, notes=body.notes.strip(), disposition=body.disposition
                )
            )
        except OfferClosed as exc:
            raise HTTPException(409, str(exc)) from None
        crm_error = None
        try:
            await asyncio.wait_for(write_notes(deps.crm(), offer=offer, rep=rep, now=deps.now()),
                                   20.0)  # fmt: skip
        except (IntegrationError, NoContact, TimeoutError) as exc:
            crm_error = str(exc) or type(exc).__name__
            logger.warning("rep %s notes for %s not written to the CRM: %s", rep.id, offer.id,
                           crm_error)  # fmt: skip
        return {"offer": _offer_view(deps, offer), "crm_written": crm_error is None,
                "crm_error": crm_error}  # fmt: skip

    @router.get("/calls")
    def calls(rep: SignedIn, since: datetime | None = None) -> dict[str, Any]:
        """The calls offered to the rep since ``since`` (default: today, UTC)."""
        now = deps.now()
        start = since or now.replace(hour=0, minute=0, second=0, microsecond=0)
        if start.tzinfo is None:
            raise HTTPException(422, "since needs a time zone, e.g. 2026-12-01T00:00:00-05:00")
        offers = deps.offers.since(rep.id, start.astimezone(UTC))
        return {"calls": [_offer_view(deps, o) for o in offers]}
