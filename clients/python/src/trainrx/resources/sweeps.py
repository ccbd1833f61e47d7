"""``client.sweeps``: run one request over a grid of values, random draws and seeds, and read
the results table and the comparison diagnosis."""

from __future__ import annotations

import uuid
from typing import Any, Iterator, Mapping, Sequence

from trainrx import _constants as C
from trainrx._client import _NOT_GIVEN, Client, TimeoutTypes
from trainrx._specs import SpecLike, load_spec
from trainrx._polling import poll_until
from trainrx.types import Sweep, build


class Sweeps:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, *, base: SpecLike, grid: Mapping[str, Sequence[Any]] | None = None,
               random: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None,
               max_parallel: int | None = None, name: str | None = None, idempotency_key: str | None = None,
               timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Sweep:
        """Start a sweep. ``base`` is a request dict or a YAML/JSON file; ``grid`` maps dotted paths
        (``"optimizer.learning_rate"``) to the values to try; ``random`` is ``{"n", "seed", "space":
        {path: {"log_uniform": [lo, hi]} | {"uniform": ...} | {"int_uniform": ...} | {"choice": [...]}}}``;
        every combination runs once per seed in ``seeds``.

        An ``Idempotency-Key`` is always sent (a fresh one unless given), which makes the POST safe
        to retry: a repeat returns the first sweep."""
        body: dict[str, Any] = {"base": load_spec(base)}
        for key, value in (("name", name), ("grid", grid), ("random", random), ("seeds", seeds),
                           ("max_parallel", max_parallel)):
            if value is not None:
                body[key] = dict(value) if isinstance(value, Mapping) else list(value) if isinstance(value, tuple) else value
        response = self._client.request("POST", "/v1/sweeps", json=body,
                                        headers={C.IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex},
                                        timeout=timeout, max_retries=max_retries)
        return build(Sweep, response.json())

    def get(self, sweep_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Sweep:
        return build(Sweep, self._client.get_json(f"/v1/sweeps/{sweep_id}", timeout=timeout,
                                                  max_retries=max_retries))

    def list(self, *, page_size: int = 20, limit: int | None = None, timeout: TimeoutTypes = _NOT_GIVEN,
             max_retries: int | None = None) -> Iterator[Sweep]:
        """Your sweeps, newest first, fetched page by page as you iterate (at most ``limit``).
        Listed sweeps carry no children, results or comparison: ``get`` one for those."""
        cursor: str | None = None
        yielded = 0
        while True:
            page = self._client.get_json("/v1/sweeps", params={"limit": page_size, "cursor": cursor},
                                         timeout=timeout, max_retries=max_retries)
            for item in page["items"]:
                if limit is not None and yielded >= limit:
                    return
                yield build(Sweep, item)
                yielded += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def wait(self, sweep_id: str, *, timeout: float | None = C.DEFAULT_WAIT_TIMEOUT,
             poll_interval: float = C.DEFAULT_POLL_INTERVAL) -> Sweep:
        """Poll until the sweep is no longer running (done or cancelled) and return it. Raises
        ``WaitTimeoutError`` after ``timeout`` seconds (None: no limit); the sweep goes on."""
        return poll_until(lambda: self.get(sweep_id), lambda sweep: sweep.finished, timeout=timeout,
                          poll_interval=poll_interval, resource_id=sweep_id, what="Sweep")

    def results(self, sweep_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN,
                max_retries: int | None = None) -> list[dict]:
        """The results table: one dict per combination (mean ± std over its seeds)."""
        return self.get(sweep_id, timeout=timeout, max_retries=max_retries).results

    def cancel(self, sweep_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Sweep:
        """Cancel the sweep and every unfinished child; creates no more. Safe to repeat."""
        response = self._client.request("POST", f"/v1/sweeps/{sweep_id}/cancel", timeout=timeout,
                                        max_retries=max_retries)
        return build(Sweep, response.json())
