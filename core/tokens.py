"""API tokens: who a caller is. The only code that reads or writes the ``tokens`` table.

A token is ``trx_`` followed by 43 URL-safe characters (32 random bytes). Only its
SHA-256 is stored: a leaked database gives no usable token, and because the
token is random, a plain hash is enough (there is nothing to guess). A token is
shown once, by :meth:`TokenStore.create`.
"""

from __future__ import annotations

import hashlib
import os
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.db import tokens
from core.jobstore import as_utc, utcnow

ADMIN, USER = "admin", "user"
ROLES = (ADMIN, USER)
PREFIX = "trx_"
TOKEN_BYTES = 32
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
OWNER_RULE = "1-64 characters: letters, digits and . _ @ -, starting with a letter or digit"
_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class Token:
    """A token's record (never the token itself)."""

    id: str
    owner: str
    role: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    token_hash: str

    def usable(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self) -> dict:
        return {"id": self.id, "owner": self.owner, "role": self.role, "label": self.label,
                "created_at": self.created_at, "expires_at": self.expires_at, "revoked_at": self.revoked_at}


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, owner: str, role: str = USER, *, label: str | None = None,
               expires_in_days: float | None = None, token: str | None = None) -> tuple[Token, str]:
        """A new token for ``owner``; returns its record and the token (shown once).
        ``token`` adopts a given value (the operator's bootstrap token)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not OWNER_PATTERN.match(owner):
            raise ValueError(f"owner must be {OWNER_RULE}")
        token = token or new_token()
        now = utcnow()
        row = {"id": uuid.uuid4().hex, "token_hash": hash_token(token), "owner": owner, "role": role,
               "label": label, "created_at": now, "revoked_at": None,
               "expires_at": now + timedelta(days=expires_in_days) if expires_in_days else None}
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(**row))
        return self._token(row), token

    def ensure(self, token: str, owner: str, role: str, label: str) -> tuple[Token, bool]:
        """The record of ``token``, created if missing (idempotent, race-safe). Returns (record, created)."""
        found = self.find(token, usable_only=False)
        if found is not None:
            return found, False
        try:
            return self.create(owner, role, label=label, token=token)[0], True
        except IntegrityError:  # another process made it meanwhile
            return self.find(token, usable_only=False), False

    def find(self, token: str, *, usable_only: bool = True) -> Token | None:
        """The record of a presented token, or None (unknown, revoked or expired)."""
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).mappings().first()
        if row is None or not hmac.compare_digest(row["token_hash"], digest):
            return None
        found = self._token(row)
        return found if found.usable() or not usable_only else None

    def get(self, token_id: str, owner: str | None = None) -> Token | None:
        """A token's record by id; with ``owner``, only that owner's."""
        if not isinstance(token_id, str) or not _ID_PATTERN.match(token_id):
            return None
        query = select(tokens).where(tokens.c.id == token_id)
        if owner is not None:
            query = query.where(tokens.c.owner == owner)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return self._token(row) if row else None

    def list(self, owner: str | None = None, *, include_revoked: bool = False) -> list[Token]:
        """Tokens newest first; ``owner`` None lists everyone's (admins)."""
        query = select(tokens).order_by(tokens.c.created_at.desc(), tokens.c.id.desc())
        if owner is not None:
            query = query.where(tokens.c.owner == owner)
        if not include_revoked:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [self._token(r) for r in conn.execute(query).mappings()]

    def revoke(self, token_id: str, owner: str | None = None) -> bool:
        """Revoke a token (its record stays); False when there is no such usable token (of ``owner``)."""
        condition = [tokens.c.id == token_id, tokens.c.revoked_at.is_(None)]
        if owner is not None:
            condition.append(tokens.c.owner == owner)
        if not isinstance(token_id, str) or not _ID_PATTERN.match(token_id):
            return False
        with self.engine.begin() as conn:
            return conn.execute(update(tokens).where(*condition).values(revoked_at=utcnow())).rowcount == 1

    @staticmethod
    def _token(row) -> Token:
        return Token(id=row["id"], owner=row["owner"], role=row["role"], label=row["label"],
                     created_at=as_utc(row["created_at"]), expires_at=as_utc(row["expires_at"]),
                     revoked_at=as_utc(row["revoked_at"]), token_hash=row["token_hash"])


BOOTSTRAP_ENV = "TRAINRX_BOOTSTRAP_TOKEN"
DEV_TOKEN_FILE = "dev-token"
BOOTSTRAP_OWNER = "admin"
MIN_TOKEN_CHARS = 32


def bootstrap_admin_token(store: TokenStore, data_dir: Path, given: str | None) -> tuple[str, str]:
    """The admin token ``make run`` prints: ``TRAINRX_BOOTSTRAP_TOKEN`` when set (created if
    missing), else the one in ``$TRAINRX_DATA_DIR/dev-token``, made once (mode 0600).
    Returns (token, where it came from)."""
    if given:
        if len(given) < MIN_TOKEN_CHARS:
            raise ValueError(f"{BOOTSTRAP_ENV} must be at least {MIN_TOKEN_CHARS} characters of random text "
                             "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        token, where = given, BOOTSTRAP_ENV
    else:
        path = Path(data_dir) / DEV_TOKEN_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(new_token() + "\n")
        token, where = path.read_text().strip(), str(path)
    record, _ = store.ensure(token, BOOTSTRAP_OWNER, ADMIN, "bootstrap")
    if not record.usable():
        raise ValueError(f"the bootstrap token from {where} was revoked or has expired; set another one")
    return token, where
