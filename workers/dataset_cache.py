"""Each dataset once per worker process: the arrays a job trains on, kept for the next job.

A built-in dataset is the same arrays for every job (its loader reads or builds them:
tens of milliseconds to seconds); an upload is immutable once stored (a new upload is a
new id), so its id with its stored size and creation time names its content. The cache
holds at most ``TRAINRX_DATASET_CACHE_MB`` (256) of arrays, least recently used out
first; a dataset larger than that is loaded for each job, as before. An upload is still
looked up for every job (one indexed read): a deleted one fails the job as
``dataset_unavailable`` and retention still sees it used.

The arrays are shared between jobs: ``workers.engine.data.prepare`` indexes them into
new arrays and tensors and never writes to them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from sqlalchemy.engine import Engine

from core.dataset_sources import DatasetSource, open_dataset
from core.settings import Settings
from core.storage import open_storage
from core.uploads import UploadStore

DEFAULT_CACHE_MB = 256


def _nbytes(source: DatasetSource) -> int:
    arrays = source.arrays
    return sum(int(a.nbytes) for a in (arrays.x, arrays.y, arrays.x_test, arrays.y_test) if a is not None)


class DatasetCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, tuple[DatasetSource, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def open(self, spec: dict, settings: Settings, engine: Engine, *, owner: str) -> DatasetSource:
        """``core.dataset_sources.open_dataset``, from memory when this process loaded it before."""
        if spec.get("id") is None:
            key: tuple = ("builtin", spec["name"], str(settings.cache_dir))
        else:
            uploads = UploadStore(engine, open_storage(settings, engine))
            row = uploads.get(spec["id"], owner=owner)
            if row is None:  # deleted (or not the owner's): open_dataset raises UploadMissing for it
                return open_dataset(spec, settings, engine, owner=owner)
            key = ("upload", row["id"], row["stored_bytes"], row["created_at"].isoformat())
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
        if entry is not None:
            if key[0] == "upload":
                uploads.touch(spec["id"])
            return entry[0]
        source = open_dataset(spec, settings, engine, owner=owner)
        self._keep(key, source)
        return source

    def _keep(self, key: tuple, source: DatasetSource) -> None:
        size = _nbytes(source)
        with self._lock:
            self.misses += 1
            if size > self.max_bytes:
                return
            self._entries[key] = (source, size)
            self._entries.move_to_end(key)
            while self.bytes > self.max_bytes:
                self._entries.popitem(last=False)


def cache_from_env() -> DatasetCache:
    """TRAINRX_DATASET_CACHE_MB (0 turns the cache off)."""
    raw = os.environ.get("TRAINRX_DATASET_CACHE_MB", "").strip()
    megabytes = float(raw) if raw else DEFAULT_CACHE_MB
    return DatasetCache(max(0, int(megabytes * 1024 * 1024)))
