"""Where a job's files live: weights now, exported models and reports later.

A local directory for now; an S3-compatible store can implement the same
four methods.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


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

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)
