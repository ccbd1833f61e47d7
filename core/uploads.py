"""Uploaded datasets: their rows in the ``datasets`` table and their arrays on disk.

The arrays are stored as two ``.npy`` files (``x.npy`` float32, ``y.npy``
int64 class labels, or float32 targets for a regression upload) under
``$TRAINRX_DATA_DIR/datasets/<id>/``: no pickle, memory-mappable, readable by
any NumPy. A dataset directory appears whole or not at all.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.engine import Engine

from core.datasets import CLASSIFICATION, REGRESSION, DatasetArrays, DatasetShape
from core.db import datasets, jobs
from core.jobstore import QUEUED, RUNNING, as_utc, utcnow
from core.jsonsafe import json_safe
from core.upload_parsing import ParsedDataset

_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
DELETED, IN_USE, MISSING = "deleted", "in_use", "missing"
X_FILE, Y_FILE = "x.npy", "y.npy"


class UploadMissing(Exception):
    """A job names an uploaded dataset that is gone (deleted after the job was queued)."""


class UploadStore:
    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.root = Path(root)

    # --- writing ------------------------------------------------------------

    def create(self, parsed: ParsedDataset, *, owner: str, name: str | None, filename: str | None,
               upload_bytes: int, input_shape: list[int] | None = None) -> dict:
        """Store a parsed upload; ``input_shape`` was checked against its features by the caller."""
        dataset_id = uuid.uuid4().hex
        regression = parsed.task == REGRESSION
        stored = self._write_arrays(dataset_id, parsed.x, parsed.y, np.float32 if regression else np.int64)
        row = {
            "id": dataset_id, "name": json_safe(name or filename), "owner": owner, "format": parsed.format,
            "filename": json_safe(filename), "rows": parsed.rows, "features": parsed.features,
            "classes": 0 if regression else int(parsed.y.max()) + 1, "class_counts": parsed.class_counts(),
            "task": parsed.task, "input_shape": None if input_shape is None else [int(n) for n in input_shape],
            "target": parsed.target_summary() if regression else None,
            "feature_names": json_safe(parsed.feature_names), "feature_ranges": json_safe(parsed.feature_ranges()),
            "upload_bytes": int(upload_bytes), "stored_bytes": stored, "created_at": utcnow(), "last_used_at": None,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(datasets).values(**row))
        except BaseException:
            shutil.rmtree(self.root / dataset_id, ignore_errors=True)
            raise
        return self.get(dataset_id, owner=owner)

    def _write_arrays(self, dataset_id: str, x: np.ndarray, y: np.ndarray, y_dtype: type) -> int:
        """Write both files into a temporary directory, then rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{dataset_id}."))
        try:
            np.save(tmp / X_FILE, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
            np.save(tmp / Y_FILE, np.ascontiguousarray(y, dtype=y_dtype), allow_pickle=False)
            size = sum(f.stat().st_size for f in tmp.iterdir())
            os.replace(tmp, self.root / dataset_id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return size

    def touch(self, dataset_id: str) -> None:
        """A job starts training on it: retention counts from here."""
        with self.engine.begin() as conn:
            conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(last_used_at=utcnow()))

    def delete(self, dataset_id: str, *, owner: str | None, force: bool = False) -> str:
        """Remove an upload's record and arrays unless a queued or running job trains on it.
        Returns DELETED, IN_USE, or MISSING (not there, for ``owner``).

        The in-use check and the delete are one statement, after the upload's row is locked
        (FOR UPDATE on PostgreSQL; SQLite serialises writers), and ``JobStore.create`` locks
        the row it names FOR SHARE: a job and the deletion of its upload cannot both win.
        ``force`` skips the check (tests simulating a vanished upload)."""
        if not isinstance(dataset_id, str) or not _ID_PATTERN.match(dataset_id):
            return MISSING
        condition = [datasets.c.id == dataset_id]
        if owner is not None:
            condition.append(datasets.c.owner == owner)
        with self.engine.begin() as conn:
            if conn.execute(select(datasets.c.id).where(*condition).with_for_update()).first() is None:
                return MISSING
            if not force:
                condition.append(~exists().where(jobs.c.dataset_id == dataset_id,
                                                 jobs.c.status.in_([QUEUED, RUNNING])))
            if conn.execute(delete(datasets).where(*condition)).rowcount != 1:
                return IN_USE
        shutil.rmtree(self.root / dataset_id, ignore_errors=True)
        return DELETED

    # --- reading ------------------------------------------------------------

    def get(self, dataset_id: str, *, owner: str | None) -> dict | None:
        """An upload's record; ``owner`` limits it to that owner's (None: any, for workers and admins)."""
        if not isinstance(dataset_id, str) or not _ID_PATTERN.match(dataset_id):
            return None
        query = select(datasets).where(datasets.c.id == dataset_id)
        if owner is not None:
            query = query.where(datasets.c.owner == owner)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        found = dict(row)
        found["created_at"], found["last_used_at"] = as_utc(found["created_at"]), as_utc(found["last_used_at"])
        return found

    def shape(self, dataset_id: str, *, owner: str | None) -> DatasetShape | None:
        """An upload's shape if ``owner`` has it (None: any owner), else None: the request
        specification's dataset resolver. Another owner's upload does not exist for you."""
        row = self.get(dataset_id, owner=owner)
        if row is None:
            return None
        shape = row.get("input_shape")
        return DatasetShape(rows=int(row["rows"]), features=int(row["features"]), classes=int(row["classes"]),
                            task=row.get("task") or CLASSIFICATION,
                            input_shape=None if shape is None else tuple(int(n) for n in shape))

    def bytes_used(self, owner: str) -> int:
        """What the owner's uploads take on disk (the per-owner storage cap counts this)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(datasets.c.stored_bytes), 0))
                                    .where(datasets.c.owner == owner)).scalar())

    def load(self, dataset_id: str, *, owner: str | None) -> tuple[dict, DatasetArrays]:
        """The row and the arrays, as given (no scaling); raises UploadMissing."""
        row = self.get(dataset_id, owner=owner)
        folder = self.root / dataset_id
        if row is None or not folder.is_dir():
            raise UploadMissing(f"The uploaded dataset {dataset_id} no longer exists (it was deleted after the "
                                "job was submitted).")
        x = np.load(folder / X_FILE, allow_pickle=False)
        y = np.load(folder / Y_FILE, allow_pickle=False)
        if x.shape != (row["rows"], row["features"]) or y.shape != (row["rows"],):
            raise ValueError(f"the stored arrays of dataset {dataset_id} do not match its record "
                             f"(x {x.shape}, y {y.shape}, expected {row['rows']} x {row['features']})")
        preprocessing = {"method": "none", "note": "uploaded data, used as given"}
        return row, DatasetArrays(x, y, None, None, preprocessing)

    def unused_since(self, cutoff: datetime, limit: int = 500) -> list[str]:
        """Uploads neither created nor trained on since ``cutoff``."""
        last = datasets.c.last_used_at
        query = (select(datasets.c.id)
                 .where(datasets.c.created_at < cutoff, (last.is_(None)) | (last < cutoff))
                 .order_by(datasets.c.created_at).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())
