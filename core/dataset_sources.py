"""Where a job's data comes from: a built-in dataset (``dataset.name``) or an upload (``dataset.id``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from core.datasets import BUILTIN_DATASETS, CLASSIFICATION, DatasetArrays, load_builtin
from core.settings import Settings
from core.uploads import UploadStore


@dataclass(frozen=True)
class DatasetSource:
    arrays: DatasetArrays
    classes: int
    info: dict  # what the job's `data` says of the source: name, and id for an upload
    label: str  # how the job's log names it
    task: str = CLASSIFICATION  # regression: ``classes`` is 0 and ``arrays.y`` float32 targets
    input_shape: tuple[int, ...] | None = None  # as stored; a request's dataset.input_shape overrides it


def open_dataset(spec: dict, settings: Settings, engine: Engine, *, owner: str) -> DatasetSource:
    """Load a normalised request's dataset (an upload only when ``owner`` has it); raises
    core.uploads.UploadMissing for a deleted upload."""
    if spec.get("id") is not None:
        uploads = UploadStore(engine, settings.uploads_dir)
        row, arrays = uploads.load(spec["id"], owner=owner)
        uploads.touch(spec["id"])
        shape = row.get("input_shape")
        return DatasetSource(arrays, row["classes"], {"name": row["name"], "id": row["id"]},
                             f"upload {row['id']} ({row['name']})", row.get("task") or CLASSIFICATION,
                             None if shape is None else tuple(shape))
    meta = BUILTIN_DATASETS[spec["name"]]
    return DatasetSource(load_builtin(meta.name, settings.cache_dir), meta.classes, {"name": meta.name}, meta.name,
                         meta.task, meta.input_shape)
