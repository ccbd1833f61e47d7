"""``client.jobs``: submit, read, follow and fetch the results of training jobs."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import httpx

from trainrx import _constants as C
from trainrx._client import _NOT_GIVEN, Client, TimeoutTypes, _retry_after, backoff_delay
from trainrx._progress import ProgressDisplay
from trainrx._specs import SpecLike, load_spec
from trainrx._sse import iter_sse
from trainrx.errors import (APIConnectionError, APIError, APIStatusError, ConflictError, ModelNotReadyError,
                            WaitTimeoutError)
from trainrx.types import Curves, Diagnosis, EndEvent, Job, JobEvent, build, parse_event

if TYPE_CHECKING:
    import torch


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    # --- submit and read ---------------------------------------------------------

    def create(self, spec: SpecLike, *, idempotency_key: str | None = None, timeout: TimeoutTypes = _NOT_GIVEN,
               max_retries: int | None = None) -> Job:
        """Submit a training job: ``spec`` is a request dict or a YAML/JSON file.

        An ``Idempotency-Key`` is always sent (a fresh one unless given), which
        makes the POST safe to retry: a repeat returns the first job.
        """
        key = idempotency_key or uuid.uuid4().hex
        response = self._client.request("POST", "/v1/jobs", json=load_spec(spec),
                                        headers={C.IDEMPOTENCY_HEADER: key}, timeout=timeout,
                                        max_retries=max_retries)
        return build(Job, response.json())

    def get(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Job:
        return build(Job, self._client.get_json(f"/v1/jobs/{job_id}", timeout=timeout, max_retries=max_retries))

    def list(self, *, status: str | None = None, page_size: int = 20, limit: int | None = None,
             timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Iterator[Job]:
        """Jobs, newest first, fetched page by page as you iterate (at most ``limit``)."""
        cursor: str | None = None
        yielded = 0
        while True:
            page = self._client.get_json("/v1/jobs", params={"status": status, "limit": page_size, "cursor": cursor},
                                         timeout=timeout, max_retries=max_retries)
            for item in page["items"]:
                if limit is not None and yielded >= limit:
                    return
                yield build(Job, item)
                yielded += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Job:
        """Cancel: a queued job at once, a running one at its next step (409 once finished)."""
        response = self._client.request("POST", f"/v1/jobs/{job_id}/cancel", timeout=timeout,
                                        max_retries=max_retries)
        return build(Job, response.json())

    def delete(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> None:
        """Delete a finished job and its artifacts."""
        self._client.request("DELETE", f"/v1/jobs/{job_id}", timeout=timeout, max_retries=max_retries)

    def curves(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Curves:
        return build(Curves, self._client.get_json(f"/v1/jobs/{job_id}/curves", timeout=timeout,
                                                   max_retries=max_retries))

    def diagnosis(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN,
                  max_retries: int | None = None) -> Diagnosis:
        return build(Diagnosis, self._client.get_json(f"/v1/jobs/{job_id}/diagnosis", timeout=timeout,
                                                      max_retries=max_retries))

    def logs(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> str:
        """The job's own log lines, as text (also while it runs)."""
        return self._client.request("GET", f"/v1/jobs/{job_id}/logs", headers={"Accept": "text/plain"},
                                    timeout=timeout, max_retries=max_retries).text

    # --- artifacts ------------------------------------------------------------

    def _download(self, url: str, path: str | os.PathLike[str], timeout: TimeoutTypes,
                  max_retries: int | None) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        response = self._client.request("GET", url, headers={"Accept": "application/octet-stream"},
                                        timeout=timeout, max_retries=max_retries, stream=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            response.close()
        return target

    def download_weights(self, job_id: str, path: str | os.PathLike[str] | None = None, *,
                         timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> Path:
        """Save the trained weights (safetensors; the normalised request is in the
        metadata under ``spec``) to ``path`` (default ``<job id>.safetensors``)."""
        return self._download(f"/v1/jobs/{job_id}/weights", path or f"{job_id}.safetensors", timeout, max_retries)

    def download_model(self, job_id: str, path: str | os.PathLike[str] | None = None, *, format: str = "pt2",
                       wait_timeout: float | None = C.DEFAULT_MODEL_WAIT_TIMEOUT, timeout: TimeoutTypes = _NOT_GIVEN,
                       max_retries: int | None = None) -> Path:
        """Save the exported model to ``path``: ``format="pt2"`` a ``torch.export`` program (default
        ``<job id>.pt2``), ``"onnx"`` the ONNX twin (``<job id>.onnx``).

        The exports follow the job as a task of their own: while the job's ``model.status`` is
        ``pending`` this waits (as the server's ``Retry-After`` says), at most ``wait_timeout``
        seconds (None: no limit), then raises ``ModelNotReadyError``. An export that failed is a
        ``GoneError`` (410) whose message says why; a job that is not finished, or left no weights,
        a ``ConflictError`` (409)."""
        if format not in ("pt2", "onnx"):
            raise ValueError(f"format must be 'pt2' or 'onnx', got {format!r}")
        url = f"/v1/jobs/{job_id}/model" + (".onnx" if format == "onnx" else "")
        target = path or f"{job_id}.{format}"
        deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
        while True:
            try:
                return self._download(url, target, timeout, max_retries)
            except ConflictError as exc:
                pause = _retry_after(exc.response)
                if pause is None:  # not an export under way: the job is not finished, or left no weights
                    raise
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ModelNotReadyError(job_id, wait_timeout or 0.0) from exc
                    pause = min(pause, remaining)
                time.sleep(pause)

    def weights_bytes(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN,
                      max_retries: int | None = None) -> bytes:
        return self._client.request("GET", f"/v1/jobs/{job_id}/weights",
                                    headers={"Accept": "application/octet-stream"}, timeout=timeout,
                                    max_retries=max_retries).content

    def load_model(self, job_id: str, *, device: str = "cpu", timeout: TimeoutTypes = _NOT_GIVEN,
                   max_retries: int | None = None) -> "torch.nn.Module":
        """The trained network, rebuilt from the weights with ``trainrx.network``, the
        module the workers train with (needs ``pip install 'trainrx[torch]'``): a
        ``TrainedModel`` in eval mode whose ``model(x)`` takes raw rows ``[batch,
        features]`` and applies the job's input scaling first, like the exported
        ``.pt2``, returning logits, or for regression predictions in the target's
        units; ``model.network(x)`` takes rows already scaled. Raises
        ``trainrx.network.WeightsFormatError`` for weights of a newer format.

        It needs the weights only, which are written before the job ends: it never waits for
        the exports (``model.status``) that ``download_model`` waits for."""
        from trainrx.torch_model import model_from_weights

        return model_from_weights(self.weights_bytes(job_id, timeout=timeout, max_retries=max_retries),
                                  device=device)

    # --- following a job ---------------------------------------------------------

    def stream(self, job_id: str, *, last_event_id: int | None = None, reconnect: bool = True) -> Iterator[JobEvent]:
        """Live events until the job ends: ``StatusEvent``, ``EpochEvent``s, then
        one ``EndEvent`` with the finished job. A broken connection is resumed
        with ``Last-Event-ID``, so no event is repeated or skipped."""
        return self._events(job_id, last_event_id=last_event_id, reconnect=reconnect, deadline=None)

    def _events(self, job_id: str, *, last_event_id: int | None, reconnect: bool,
                deadline: float | None, timeout_s: float = 0.0) -> Iterator[JobEvent]:
        last, failures, delay = last_event_id, 0, None
        while True:
            read_timeout = C.STREAM_READ_TIMEOUT
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeoutError(job_id, timeout_s)
                read_timeout = min(read_timeout, remaining)
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            timeout = httpx.Timeout(read_timeout, connect=min(C.STREAM_CONNECT_TIMEOUT, read_timeout))
            try:
                response = self._client.request("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                                timeout=timeout, stream=True)
                try:
                    for sse in iter_sse(response.iter_lines()):
                        failures = 0
                        if deadline is not None and time.monotonic() >= deadline:
                            raise WaitTimeoutError(job_id, timeout_s)
                        if sse is None:
                            continue
                        if sse.retry is not None:
                            delay = sse.retry / 1000
                        if not sse.event or sse.id is None:
                            continue
                        last = int(sse.id)
                        event = parse_event(last, sse.event, json.loads(sse.data or "null") or {})
                        if event is not None:
                            yield event
                        if isinstance(event, EndEvent):
                            return
                finally:
                    response.close()
            except (httpx.TimeoutException, httpx.TransportError, APIConnectionError) as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeoutError(job_id, timeout_s) from exc
                failures += 1
                if not reconnect or failures > max(self._client.max_retries, 3):
                    if isinstance(exc, APIError):
                        raise
                    raise APIConnectionError(f"The event stream of job {job_id} broke: {exc}") from exc
            if not reconnect:
                raise APIConnectionError(f"The event stream of job {job_id} ended before the job did.")
            # The server closed the stream (a restart, a proxy) or it broke: resume after `last`.
            time.sleep(delay if delay is not None and failures <= 1 else backoff_delay(failures))

    def wait(self, job_id: str, *, timeout: float | None = C.DEFAULT_WAIT_TIMEOUT, progress: bool = False,
             poll_interval: float = C.DEFAULT_POLL_INTERVAL) -> Job:
        """Block until the job finishes and return it (whatever its final status).

        Follows the live event stream, falling back to polling the job when the
        stream is not available. ``progress=True`` draws epoch, loss and
        validation accuracy on stderr. Raises ``WaitTimeoutError`` after
        ``timeout`` seconds (None: no limit); the job itself goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        display = ProgressDisplay(job_id) if progress else None
        try:
            if display is not None:  # the epoch count for the bar
                display.on_job(self.get(job_id))
            try:
                for event in self._events(job_id, last_event_id=None, reconnect=True, deadline=deadline,
                                          timeout_s=timeout or 0.0):
                    if display is not None:
                        display.on_event(event)
                    if isinstance(event, EndEvent):
                        return event.job
            except APIStatusError as exc:
                if exc.status_code not in (404, 405, 406, 501):
                    raise
            except APIConnectionError:
                pass
            return self._poll(job_id, deadline, timeout or 0.0, poll_interval, display)
        finally:
            if display is not None:
                display.close()

    def _poll(self, job_id: str, deadline: float | None, timeout_s: float, poll_interval: float,
              display: ProgressDisplay | None) -> Job:
        while True:
            job = self.get(job_id)
            if display is not None:
                display.on_job(job)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(job_id, timeout_s, job)
            pause = poll_interval if deadline is None else min(poll_interval, max(deadline - time.monotonic(), 0))
            time.sleep(pause)
