"""``client.tokens``: your API tokens (admins: anyone's). A CI pipeline can make a
short-lived token for a run and revoke it at the end."""

from __future__ import annotations

from trainrx._client import _NOT_GIVEN, Client, TimeoutTypes
from trainrx.types import Token, build


class Tokens:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, *, label: str | None = None, expires_in_days: int | None = None, owner: str | None = None,
               role: str | None = None, timeout: TimeoutTypes = _NOT_GIVEN,
               max_retries: int | None = None) -> Token:
        """A new token; ``token.token`` holds it, this once. Users may only make ``user`` tokens
        for themselves; ``owner`` and ``role`` are for admins.

        Not retried on its own (a POST without an Idempotency-Key): a retry could make two tokens."""
        body = {k: v for k, v in (("label", label), ("expires_in_days", expires_in_days), ("owner", owner),
                                  ("role", role)) if v is not None}
        response = self._client.request("POST", "/v1/tokens", json=body, timeout=timeout,
                                        max_retries=0 if max_retries is None else max_retries)
        return build(Token, response.json())

    def list(self, *, owner: str | None = None, timeout: TimeoutTypes = _NOT_GIVEN,
             max_retries: int | None = None) -> list[Token]:
        """Your tokens that are not revoked (never the tokens themselves)."""
        params = {"owner": owner} if owner else None
        page = self._client.get_json("/v1/tokens", params=params, timeout=timeout, max_retries=max_retries)
        return [build(Token, item) for item in page["items"]]

    def revoke(self, token_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> None:
        self._client.request("DELETE", f"/v1/tokens/{token_id}", timeout=timeout, max_retries=max_retries)
