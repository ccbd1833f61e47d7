"""``client.datasets``: the built-in datasets and your own uploads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from trainrx._client import _NOT_GIVEN, Client, TimeoutTypes
from trainrx.types import Dataset, Task, build


class Datasets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> list[Dataset]:
        page = self._client.get_json("/v1/datasets", timeout=timeout, max_retries=max_retries)
        return [build(Dataset, item) for item in page["items"]]

    def get(self, dataset_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN,
            max_retries: int | None = None) -> Dataset:
        return build(Dataset, self._client.get_json(f"/v1/datasets/{dataset_id}", timeout=timeout,
                                                    max_retries=max_retries))

    def upload(self, path: str | os.PathLike[str], *, name: str | None = None, task: Task | None = None,
               input_shape: Sequence[int] | None = None, timeout: TimeoutTypes = _NOT_GIVEN,
               max_retries: int | None = None) -> Dataset:
        """Upload a ``.npz`` (arrays ``X`` and ``y``) or ``.csv`` (a ``label`` column)
        file; a job then trains on it with ``"dataset": {"id": dataset.id}``.

        ``task="regression"`` keeps ``y`` as numeric targets (the default,
        classification, wants labels 0..k-1; it is never guessed from the
        values). ``input_shape`` (``[C, L]`` or ``[C, H, W]``, product = features)
        lets a cnn see each row as a signal or an image.

        Not retried on its own (a POST without an Idempotency-Key): a retry
        could store the data twice.
        """
        source = Path(path)
        form = {"name": name, "task": task,
                "input_shape": None if input_shape is None else json.dumps([int(n) for n in input_shape])}
        data = {key: value for key, value in form.items() if value is not None} or None
        with source.open("rb") as f:
            response = self._client.request(
                "POST", "/v1/datasets", files={"file": (source.name, f, "application/octet-stream")}, data=data,
                timeout=timeout, max_retries=max_retries)
        return build(Dataset, response.json())

    def delete(self, dataset_id: str, *, timeout: TimeoutTypes = _NOT_GIVEN, max_retries: int | None = None) -> None:
        self._client.request("DELETE", f"/v1/datasets/{dataset_id}", timeout=timeout, max_retries=max_retries)
