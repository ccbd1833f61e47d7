"""A job's files: its weights, its exported models (.pt2, ONNX) and, while it runs,
its last checkpoint — kept under ``artifacts/<job id>/`` of the storage
(core/storage.py: the data directory, or the database).

The file names and the job's ``artifacts`` keys are a contract between the worker
that writes them and the API that serves them: they are defined here, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from core.storage import Storage

ARTIFACTS_FOLDER = "artifacts"
WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.pt2"
ONNX_FILE = "model.onnx"
# While a job runs: its last checkpoint (workers/engine/checkpoint.py), in a file of its own per run
# and epoch, and the meta file that names it with its epoch and run (workers/job_hooks.py).
CHECKPOINT_META_FILE = "checkpoint.json"
CHECKPOINT_FILE = "checkpoint.pt"  # where workers before per-epoch files kept it (a meta file naming no file)


def checkpoint_file(run: int, epoch: int) -> str:
    return f"checkpoint-{run}-{epoch}.pt"
# Keys of a job's ``artifacts``: what was written, and why an export is missing.
WEIGHTS_KEY, MODEL_KEY, ONNX_KEY = "weights", "model", "onnx"
MODEL_ERROR_KEY, ONNX_ERROR_KEY = "model_error", "onnx_error"


class ArtifactStore:
    def __init__(self, storage: Storage) -> None:
        self.files = storage.under(ARTIFACTS_FOLDER)

    def write_bytes(self, job_id: str, name: str, data: bytes) -> None:
        """Atomically: a reader never sees half a file."""
        self.files.write_bytes(f"{job_id}/{name}", data)

    def exists(self, job_id: str, name: str) -> bool:
        return self.files.exists(f"{job_id}/{name}")

    def names(self, job_id: str) -> list[str]:
        """The names of the job's files (none before it wrote any, or once it is deleted)."""
        return self.files.names(job_id)

    def read_bytes(self, job_id: str, name: str) -> bytes | None:
        return self.files.read_bytes(f"{job_id}/{name}")

    def sendable(self, job_id: str, name: str) -> Path | BinaryIO | None:
        """For ``flask.send_file``: a local path, or a file object to close; None if missing."""
        return self.files.sendable(f"{job_id}/{name}")

    def delete(self, job_id: str, name: str) -> None:
        self.files.delete(f"{job_id}/{name}")

    def delete_job(self, job_id: str) -> None:
        self.files.delete_folder(job_id)
