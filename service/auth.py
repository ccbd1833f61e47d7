"""Who is calling: every ``/v1`` request carries a credential that resolves to an owner.

Two credentials, one owner:

- ``Authorization: Bearer <token>`` — the SDK, the CLI, CI, curl.
- a session cookie — for browser pages (``EventSource`` and ``<img>`` cannot send
  headers). ``POST /v1/session`` with a Bearer token sets it. The cookie holds
  the token's *id*, signed with the server's secret, never the token; the
  token's record is read on every request, so revoking the token ends its
  sessions at once. Unsafe methods (POST, DELETE, ...) with a cookie also need
  ``X-CSRF-Token``: an HMAC of the token id that only the session's own page
  was given.

Bearer look-ups are cached per API process for ``TOKEN_CACHE_S`` seconds, so a
revoked token keeps working for at most that long in a process that saw it
just before (expiry is checked on every request, cached or not).

Without a credential, or with a wrong, revoked or expired one: 401 with
``WWW-Authenticate: Bearer``. Paths outside ``/v1`` (``/healthz``,
``/openapi.json``) need none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from flask_smorest import abort
from itsdangerous import BadSignature, URLSafeTimedSerializer

from core.tokens import ADMIN, Token, TokenStore, hash_token

PROTECTED_PREFIX = "/v1/"
SESSION_COOKIE = "trainrx_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600
TOKEN_CACHE_S = 2.0
_CACHE_MAX = 10_000
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SECRET_FILE = "secret-key"
MIN_SECRET_CHARS = 32
PLACEHOLDER_PREFIX = "change-me"  # .env.example's placeholders


@dataclass(frozen=True)
class Principal:
    """The caller: an owner, their role, and the token (and how it was presented)."""

    owner: str
    role: str
    token_id: str
    via: str  # "bearer" | "session"

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def scope(self) -> str | None:
        """The owner to filter reads by: admins see every owner's resources by id."""
        return None if self.is_admin else self.owner


def current_principal() -> Principal:
    return g.principal


def listed_owner(principal: Principal, requested: str | None) -> str:
    """Whose resources a listing shows: your own; an admin may name another owner."""
    if requested is None or requested == principal.owner:
        return principal.owner
    if not principal.is_admin:
        abort(403, message="Only admins may list another owner's resources (?owner=).")
    return requested


class _TokenCache:
    """token hash -> (record or None, fetched at); short-lived, bounded."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[Token | None, float]] = {}
        self._lock = threading.Lock()

    def lookup(self, store: TokenStore, token: str) -> Token | None:
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is None or now - hit[1] > self.ttl_s:
            found = store.find(token, usable_only=False)
            with self._lock:
                if len(self._entries) >= _CACHE_MAX:
                    self._entries.clear()
                self._entries[digest] = (found, now)
        else:
            found = hit[0]
        return found if found is not None and found.usable() else None


def check_explicit_secret(secret: str) -> None:
    """A TRAINRX_SECRET_KEY set by hand must be a real secret: whoever knows it can forge
    session cookies, so .env.example's placeholder or a short word stops the API at start-up."""
    if not secret:
        return  # unset: load_or_create_secret makes a random one
    placeholder = secret.startswith(PLACEHOLDER_PREFIX)
    if placeholder or len(secret) < MIN_SECRET_CHARS:
        why = "is the example's placeholder" if placeholder else f"has {len(secret)} characters"
        raise ValueError(f"TRAINRX_SECRET_KEY {why}: set a random one of {MIN_SECRET_CHARS} or more characters "
                         "(python -c 'import secrets; print(secrets.token_urlsafe(32))'), or unset it to have one "
                         "made under TRAINRX_DATA_DIR")


def load_or_create_secret(data_dir: Path) -> str:
    """The server's signing secret: TRAINRX_SECRET_KEY, else one made once under the data dir."""
    path = Path(data_dir) / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32)
    try:
        with open(path, "x", opener=lambda p, flags: __import__("os").open(p, flags, 0o600)) as f:
            f.write(secret)
        return secret
    except FileExistsError:  # another process made it first
        return path.read_text().strip()


def csrf_token(secret: str, token_id: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{token_id}".encode(), hashlib.sha256).hexdigest()


def _unauthorized(message: str, error: str | None = None) -> None:
    challenge = 'Bearer realm="trainrx"' + (f', error="{error}"' if error else "")
    abort(401, message=message, headers={"WWW-Authenticate": challenge})


class Auth:
    def __init__(self, app: Flask, tokens: TokenStore, secret: str, cache_s: float = TOKEN_CACHE_S) -> None:
        self.tokens = tokens
        self.secret = secret
        self.cache = _TokenCache(cache_s)
        self.sessions = URLSafeTimedSerializer(secret, salt="trainrx-session")
        app.extensions["trainrx_auth"] = self
        app.before_request(self.authenticate)

    def authenticate(self) -> None:
        if not request.path.startswith(PROTECTED_PREFIX) or request.method == "OPTIONS":
            return
        header = request.headers.get("Authorization")
        if header is not None:
            g.principal = self._from_bearer(header)
            return
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            g.principal = self._from_session(cookie)
            return
        _unauthorized("This endpoint needs a credential: send Authorization: Bearer <token> "
                      "(GET /v1/me tells whose it is).")

    def _from_bearer(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            _unauthorized("The Authorization header must be 'Bearer <token>'.", "invalid_request")
        found = self.cache.lookup(self.tokens, token) if len(token) <= 512 else None
        if found is None:
            _unauthorized("The token is not valid: unknown, revoked or expired.", "invalid_token")
        return Principal(found.owner, found.role, found.id, "bearer")

    def _from_session(self, cookie: str) -> Principal:
        try:
            token_id = self.sessions.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            _unauthorized("The session is not valid or has expired; sign in again (POST /v1/session).",
                          "invalid_token")
        found = self._usable(token_id)
        if found is None:
            _unauthorized("The session's token is revoked or expired; sign in again.", "invalid_token")
        if request.method not in SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), csrf_token(self.secret, found.id).encode()):
                abort(403, message=f"A request made with the session cookie must carry the {CSRF_HEADER} header "
                                   "that POST /v1/session returned.")
        return Principal(found.owner, found.role, found.id, "session")

    def _usable(self, token_id: object) -> Token | None:
        """The token record, read afresh (revocation counts at once), if it may still be used."""
        found = self.tokens.get(token_id) if isinstance(token_id, str) else None
        return found if found is not None and found.usable() else None

    def page_session(self) -> tuple[Principal, str] | None:
        """For the dashboard's pages (GET only): the session's caller and its CSRF token, or None
        when there is no valid session (the page then sends the browser to the login page)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            found = self._usable(self.sessions.loads(cookie, max_age=SESSION_MAX_AGE_S))
        except BadSignature:
            return None
        if found is None:
            return None
        return Principal(found.owner, found.role, found.id, "session"), csrf_token(self.secret, found.id)

    def start_session(self, response: Response, principal: Principal) -> str:
        """Set the session cookie for the caller's token; returns the CSRF token."""
        response.set_cookie(SESSION_COOKIE, self.sessions.dumps(principal.token_id), max_age=SESSION_MAX_AGE_S,
                            httponly=True, samesite="Strict", secure=request.is_secure, path="/")
        return csrf_token(self.secret, principal.token_id)

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")


def auth() -> Auth:
    return current_app.extensions["trainrx_auth"]
