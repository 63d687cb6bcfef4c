"""Google's OAuth2 token endpoint for service accounts, as the fake calendar serves it.

A service account's key is minted here with a real RSA key, its JWT assertion is verified
as Google does (RS256 signature, audience, expiry, domain-wide delegation of ``sub``), and
the access tokens issued are what the calendar API later accepts as ``Bearer`` tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.oauth2.service_account import (  # type: ignore[attr-defined]  # private constant
    _GOOGLE_OAUTH2_TOKEN_ENDPOINT as _GOOGLE_TOKEN_AUDIENCE,
)

from integrations.google_calendar import CALENDAR_SCOPE  # the scope the real client asks for
from tests.fakes.google_http import Reply, google_error

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth signs for Google's audience whatever token_uri the key names; Google accepts it.
# Taken from the library itself, so the fake names no vendor host of its own.
_TOKEN_AUDIENCES = (_GOOGLE_TOKEN_AUDIENCE,)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """An access token the token endpoint issued, and to whom."""

    token: str
    client_email: str
    subject: str | None  # the delegated user (JWT ``sub``), None without delegation
    scopes: tuple[str, ...]


def make_service_account_key(
    *, client_email: str, token_uri: str, private_key: rsa.RSAPrivateKey | None = None
) -> tuple[dict[str, str], rsa.RSAPublicKey]:
    """A real service-account key file's content and its public half.

    A fresh RSA key is generated unless ``private_key`` is given (generating costs ~0.1 s).
    """
    key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": hashlib.sha256(pem.encode()).hexdigest()[:40],
        "private_key": pem,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }
    return info, key.public_key()


class ServiceAccounts:
    """The service accounts Google trusts, and the access tokens issued to them.

    Not locked: the fake calls it under its own lock.
    """

    def __init__(self) -> None:
        self.grants: list[TokenGrant] = []
        self._accounts: dict[str, tuple[rsa.RSAPublicKey, frozenset[str] | None]] = {}
        self._tokens: dict[str, TokenGrant] = {}

    def register(
        self,
        client_email: str,
        public_key: rsa.RSAPublicKey,
        *,
        delegation_allowed_for: Iterable[str] | None = None,
    ) -> None:
        """Trust JWTs signed by ``public_key``; ``delegation_allowed_for`` limits ``sub``."""
        allowed = None if delegation_allowed_for is None else frozenset(delegation_allowed_for)
        self._accounts[client_email] = (public_key, allowed)

    def check_bearer(self, authorization: str) -> Reply | None:
        """The error to answer a calendar request with, or None if its token may call it."""
        grant = self._tokens.get(authorization.removeprefix("Bearer "))
        if grant is None:
            return google_error(401, "authError", "Invalid Credentials")
        if CALENDAR_SCOPE not in grant.scopes:
            return google_error(403, "insufficientPermissions", "Insufficient Permission")
        return None

    def issue_token(self, form: dict[str, str], *, token_uri: str) -> Reply:
        """Answer a token request at ``token_uri``."""
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return Reply(400, {"error": "unsupported_grant_type"})
        try:
            claims = self._verified_claims(form.get("assertion", ""), token_uri=token_uri)
        except ValueError as err:
            return Reply(400, {"error": "invalid_grant", "error_description": str(err)})
        _, allowed = self._accounts[claims["iss"]]
        subject = claims.get("sub")
        if subject is not None and allowed is not None and subject not in allowed:
            description = "Client is unauthorized to retrieve access tokens using this method."
            return Reply(401, {"error": "unauthorized_client", "error_description": description})
        grant = TokenGrant(
            token=f"ya29.fake-{len(self._tokens) + 1}",
            client_email=claims["iss"],
            subject=subject,
            scopes=tuple(str(claims.get("scope", "")).split()),
        )
        self._tokens[grant.token] = grant
        self.grants.append(grant)
        return Reply(200, {"access_token": grant.token, "expires_in": 3600, "token_type": "Bearer"})

    def _verified_claims(self, assertion: str, *, token_uri: str) -> dict[str, Any]:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header, claims = _b64json(header_b64), _b64json(claims_b64)
            signature = _b64decode(signature_b64)
        except (ValueError, json.JSONDecodeError):
            raise ValueError("Invalid JWT.") from None
        account = self._accounts.get(claims.get("iss", ""))
        if header.get("alg") != "RS256" or account is None:
            raise ValueError("Invalid JWT Signature.")
        try:
            account[0].verify(
                signature,
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        if (
            claims.get("aud") not in (*_TOKEN_AUDIENCES, token_uri)
            or float(claims.get("exp", 0)) < time.time()
        ):
            raise ValueError("Invalid JWT: Token must be a short-lived token.")
        return claims


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64json(text: str) -> dict[str, Any]:
    value = json.loads(_b64decode(text))
    if not isinstance(value, dict):
        raise ValueError("JWT part is not an object")
    return value
