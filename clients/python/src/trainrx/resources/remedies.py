"""``client.remedies``: verified remedies of a finished job (its diagnosis' top patches,
re-trained as child jobs and judged; docs/remedies.md)."""

from __future__ import annotations

from trainrx import _constants as C
from trainrx._client import _NOT_GIVEN, Client, TimeoutTypes
from trainrx._polling import poll_until
from trainrx.types import Remedy, build


class Remedies:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, job_id: str, *, max_attempts: int = 3, parallel: int | None = None,
               stop_when_fixed: bool = True, timeout: TimeoutTypes = _NOT_GIVEN,
               max_retries: int | None = None) -> Remedy:
        """Start the job's verified remedies (or get the ones it already has: the server answers a
        repeat with the first remedy, so this is retried like a GET). ``parallel`` None: the
        server's default. Raises ``ConflictError`` naming why a job cannot be remedied (still
        running, healthy, ``diagnose: false``, no patch to try)."""
        body = {"max_attempts": max_attempts, "stop_when_fixed": stop_when_fixed}
        if parallel is not None:
            body["parallel"] = parallel
        response = self._client.request("POST", f"/v1/jobs/{job_id}/remedies", json=body, timeout=timeout,
                                        max_retries=max_retries, idempotent=True)
        return build(Remedy, response.json())

    def get(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Remedy:
        """The job's remedy as it is now (``NotFoundError`` when it has none)."""
        return build(Remedy, self._client.get_json(f"/v1/jobs/{job_id}/remedies", timeout=timeout,
                                                   max_retries=max_retries))

    def wait(self, job_id: str, *, timeout: float | None = C.DEFAULT_WAIT_TIMEOUT,
             poll_interval: float = C.DEFAULT_POLL_INTERVAL) -> Remedy:
        """Block until the job's remedy is done (every attempt settled) and return it. Raises
        ``WaitTimeoutError`` after ``timeout`` seconds (None: no limit); the remedy goes on."""
        return poll_until(lambda: self.get(job_id), lambda remedy: remedy.done, timeout=timeout,
                          poll_interval=poll_interval, resource_id=job_id, what="The remedy of job")
