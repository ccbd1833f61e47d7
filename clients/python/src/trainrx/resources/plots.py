"""``client.plots``: a job's plots as PNG, several jobs compared, and a job's HTML report."""

from __future__ import annotations

from typing import Iterable

from trainrx._client import _NOT_GIVEN, Client, TimeoutTypes

# The plots of one job (GET /v1/jobs/{id}/plots/{kind}.png).
PLOT_KINDS = ("curves", "gradients", "activations", "steps")


def _size(width: int | None, height: int | None, dpi: int | None) -> dict:
    return {"width": width, "height": height, "dpi": dpi}


class Plots:
    def __init__(self, client: Client) -> None:
        self._client = client

    def job(self, job_id: str, kind: str = "curves", *, width: int | None = None, height: int | None = None,
            dpi: int | None = None, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> bytes:
        """One plot of a job as PNG bytes: ``curves``, ``gradients``, ``activations`` or
        ``steps``; ``width``/``height`` in pixels (the server caps them: 422 above)."""
        return self._client.request("GET", f"/v1/jobs/{job_id}/plots/{kind}.png", params=_size(width, height, dpi),
                                    headers={"Accept": "image/png"}, timeout=timeout,
                                    max_retries=max_retries).content

    def compare(self, job_ids: Iterable[str], *, metric: str | None = None, width: int | None = None,
                height: int | None = None, dpi: int | None = None, timeout: TimeoutTypes = _NOT_GIVEN,
                max_retries: int | None = None) -> bytes:
        """One per-epoch metric (default ``val_accuracy``) of several jobs overlaid, as PNG bytes."""
        params = {"jobs": ",".join(job_ids), "metric": metric, **_size(width, height, dpi)}
        return self._client.request("GET", "/v1/compare.png", params=params, headers={"Accept": "image/png"},
                                    timeout=timeout, max_retries=max_retries).content

    def report(self, job_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> str:
        """The job's report: one self-contained HTML page (plots inlined, works offline)."""
        return self._client.request("GET", f"/v1/jobs/{job_id}/report", headers={"Accept": "text/html"},
                                    timeout=timeout, max_retries=max_retries).text
