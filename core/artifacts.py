"""Where a job's files live: its weights and its exported models (.pt2, ONNX).

A local directory for now; an S3-compatible store can implement the same
four methods. The file names and the job's ``artifacts`` keys are a contract
between the worker that writes them and the API that serves them: they are
defined here, once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.pt2"
ONNX_FILE = "model.onnx"
# While a job runs: its last checkpoint (workers/engine/checkpoint.py) and which epoch and run it is of.
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_META_FILE = "checkpoint.json"
# Keys of a job's ``artifacts``: what was written, and why an export is missing.
WEIGHTS_KEY, MODEL_KEY, ONNX_KEY = "weights", "model", "onnx"
MODEL_ERROR_KEY, ONNX_ERROR_KEY = "model_error", "onnx_error"


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, job_id: str, name: str) -> Path:
        return self.root / job_id / name

    def write_bytes(self, job_id: str, name: str, data: bytes) -> Path:
        """Write atomically: a reader never sees half a file."""
        target = self.path(job_id, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def exists(self, job_id: str, name: str) -> bool:
        return self.path(job_id, name).is_file()

    def read_bytes(self, job_id: str, name: str) -> bytes | None:
        try:
            return self.path(job_id, name).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, job_id: str, name: str) -> None:
        self.path(job_id, name).unlink(missing_ok=True)

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)
