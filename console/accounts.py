"""Reps' sign-in to the console: an invite link sets the password, a password opens a session.

Passwords are stored only as scrypt hashes (a slow, memory-hard KDF, with a salt per rep);
invite and session tokens only as their SHA-256, so a copy of the store lets no one in. Every
token expires: invites after ``invite_ttl``, sessions after ``session_ttl``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from transfer.roster import Rep, Roster, Store, UnknownRep

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS console_accounts (
        rep_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS console_invites (
        token_hash TEXT PRIMARY KEY, rep_id TEXT NOT NULL, created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL, used_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS console_sessions (
        token_hash TEXT PRIMARY KEY, rep_id TEXT NOT NULL, created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL)""",
)
MIN_PASSWORD, MAX_PASSWORD = 10, 200
# scrypt cost: 2**14 x 8 x 1 is 16 MiB and some tens of milliseconds a try.
_N, _R, _P = 2**14, 8, 1


class SignInError(ValueError):
    """Why a sign-in, an invite or a session was refused, in words for the rep."""


class InviteInvalid(SignInError):
    pass


class SessionInvalid(SignInError):
    pass


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        again = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                               r=int(r), p=int(p), dklen=32)  # fmt: skip
    except ValueError:
        return False
    return hmac.compare_digest(again, base64.b64decode(digest))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_UNKNOWN_HASH = hash_password("no such rep", salt=b"\0" * 16)


@dataclass(frozen=True)
class Invite:
    rep: Rep
    token: str  # shown once, in the link
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    rep: Rep
    token: str  # the cookie's value
    expires_at: datetime


class Accounts:
    def __init__(
        self,
        store: Store,
        roster: Roster,
        *,
        now: Callable[[], datetime] | None = None,
        invite_ttl: timedelta = timedelta(hours=72),
        session_ttl: timedelta = timedelta(hours=8),
    ) -> None:
        self._store = store
        self._roster = roster
        self._now = now or (lambda: datetime.now(UTC))
        self.invite_ttl = invite_ttl
        self.session_ttl = session_ttl
        with store.transaction() as tx:
            for statement in SCHEMA:
                tx.run(statement)

    def invite(self, rep_key: str) -> Invite:
        """A new invite for the rep (by email or id); earlier unused invites stop working."""
        rep = self._roster.find(rep_key)
        token = secrets.token_urlsafe(32)
        now = self._now()
        expires = now + self.invite_ttl
        with self._store.transaction() as tx:
            tx.run("DELETE FROM console_invites WHERE rep_id = ? AND used_at IS NULL", (rep.id,))
            tx.run(
                "INSERT INTO console_invites (token_hash, rep_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_token_hash(token), rep.id, now.isoformat(), expires.isoformat()),
            )
        return Invite(rep=rep, token=token, expires_at=expires)

    def invited(self, token: str) -> Rep:
        """The rep an invite is for, while it can still be used."""
        with self._store.transaction() as tx:
            rows = tx.rows(
                "SELECT rep_id, expires_at, used_at FROM console_invites WHERE token_hash = ?",
                (_token_hash(token),),
            )
        if not rows:
            raise InviteInvalid("this invite link is not valid; ask your manager for a new one")
        rep_id, expires_at, used_at = rows[0]
        if used_at is not None:
            raise InviteInvalid("this invite link was already used; sign in with your password")
        if datetime.fromisoformat(expires_at) < self._now():
            raise InviteInvalid("this invite link has expired; ask your manager for a new one")
        try:
            return self._roster.get(rep_id)
        except UnknownRep:
            raise InviteInvalid("this rep is no longer on the roster") from None

    def set_password(self, token: str, password: str) -> Session:
        """Use the invite: the password is set and the rep signed in."""
        rep = self.invited(token)
        _check_password(password)
        now = self._now().isoformat()
        hashed = hash_password(password)
        with self._store.transaction() as tx:
            used = tx.run(
                "UPDATE console_invites SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                (now, _token_hash(token)),
            )
            if not used:  # another tab used it a moment ago
                raise InviteInvalid("this invite link was already used; sign in with your password")
            if not tx.run(
                "UPDATE console_accounts SET password_hash = ?, updated_at = ? WHERE rep_id = ?",
                (hashed, now, rep.id),
            ):
                tx.run(
                    "INSERT INTO console_accounts (rep_id, password_hash, updated_at) "
                    "VALUES (?, ?, ?)",
                    (rep.id, hashed, now),
                )
        return self._open_session(rep)

    def sign_in(self, email: str, password: str) -> Session:
        try:
            rep: Rep | None = self._roster.find(email)
        except UnknownRep:
            rep = None
        stored = None
        if rep is not None:
            with self._store.transaction() as tx:
                rows = tx.rows(
                    "SELECT password_hash FROM console_accounts WHERE rep_id = ?", (rep.id,)
                )
            stored = rows[0][0] if rows else None
        # Hash even for an unknown email, so timing does not tell who has an account.
        matches = password_matches(password, stored or _UNKNOWN_HASH)
        if rep is None or stored is None or not matches:
            raise SignInError("wrong email or password")
        return self._open_session(rep)

    def session(self, token: str | None) -> Rep:
        """The signed-in rep for a session cookie."""
        if not token:
            raise SessionInvalid("sign in first")
        with self._store.transaction() as tx:
            rows = tx.rows(
                "SELECT rep_id, expires_at FROM console_sessions WHERE token_hash = ?",
                (_token_hash(token),),
            )
        if not rows:
            raise SessionInvalid("you are signed out; sign in again")
        rep_id, expires_at = rows[0]
        if datetime.fromisoformat(expires_at) < self._now():
            self.sign_out(token)
            raise SessionInvalid("your session has expired; sign in again")
        try:
            return self._roster.get(rep_id)
        except UnknownRep:
            raise SessionInvalid("you are no longer on the roster") from None

    def sign_out(self, token: str) -> None:
        with self._store.transaction() as tx:
            tx.run("DELETE FROM console_sessions WHERE token_hash = ?", (_token_hash(token),))

    def _open_session(self, rep: Rep) -> Session:
        token = secrets.token_urlsafe(32)
        now = self._now()
        expires = now + self.session_ttl
        with self._store.transaction() as tx:
            tx.run("DELETE FROM console_sessions WHERE expires_at < ?", (now.isoformat(),))
            tx.run(
                "INSERT INTO console_sessions (token_hash, rep_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_token_hash(token), rep.id, now.isoformat(), expires.isoformat()),
            )
        return Session(rep=rep, token=token, expires_at=expires)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise SignInError(f"choose a password of at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise SignInError(f"a password has at most {MAX_PASSWORD} characters")
