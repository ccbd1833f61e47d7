"""Where trainrx keeps its files — weights, exported models, checkpoints, uploaded
arrays — behind one small interface, so that worker hosts need no shared filesystem.

``TRAINRX_STORAGE`` chooses the backend:

* ``local`` (the default): plain files under ``$TRAINRX_DATA_DIR`` (``artifacts/<job
  id>/``, ``datasets/<id>/``), each written atomically. The API and every worker must
  share that directory: one machine, or a shared volume.
* ``database``: the files live in the job database itself, cut into chunks of
  ``CHUNK_BYTES`` in the ``file_chunks`` table (``bytea`` on PostgreSQL, ``BLOB`` on
  SQLite). Every host that reaches the database reaches the files, and nothing else
  needs to run. docs/deploy.md says why this backend was chosen.

A key is a relative path of plain segments (``artifacts/<job id>/weights.safetensors``);
:meth:`Storage.under` gives a view below a folder. Files stream through in chunks, so a
large model is never held in memory twice: a write reads its source a chunk at a time
inside one transaction (a reader sees the old file or the new one, whole), and a read
streams the chunks of one ``SELECT`` (one snapshot) into a file object.
"""

from __future__ import annotations

import copy
import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Engine

from core.db import file_chunks
from core.settings import Settings

LOCAL, DATABASE = "local", "database"
BACKENDS = (LOCAL, DATABASE)
CHUNK_BYTES = 1024 * 1024  # a chunk row; also the copy buffer of the local backend
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class Storage:
    """The operations every backend offers; ``prefix`` is the folder this view stands in."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def under(self, folder: str) -> "Storage":
        """The same store, seen from ``folder`` (keys are relative to it)."""
        view = copy.copy(self)
        view.prefix = self._key(folder) + "/"
        return view

    def _key(self, key: str) -> str:
        if not key or not all(_SEGMENT.match(part) for part in key.split("/")):
            raise ValueError(f"not a storage key: {key!r}")
        return self.prefix + key

    # --- what each backend implements -----------------------------------------

    def write(self, key: str, source: BinaryIO) -> int:
        """Store everything ``source`` has left to read under ``key``, replacing what was
        there atomically; returns the number of bytes."""
        raise NotImplementedError

    def copy_to(self, key: str, target: BinaryIO) -> bool:
        """Write the file's bytes into ``target``; False when there is no such file."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove one file; a missing one is not an error."""
        raise NotImplementedError

    def delete_folder(self, folder: str) -> None:
        """Remove every file under ``folder``."""
        raise NotImplementedError

    def names(self, folder: str) -> list[str]:
        """The names of the files directly under ``folder`` (none when there is no such folder)."""
        raise NotImplementedError

    def local_path(self, key: str) -> Path | None:
        """The file on this machine's disk, when the backend keeps it there (None otherwise)."""
        return None

    # --- built on the above ---------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> int:
        return self.write(key, io.BytesIO(data))  # BytesIO shares the buffer: no copy

    def read_bytes(self, key: str) -> bytes | None:
        buffer = io.BytesIO()
        return buffer.getvalue() if self.copy_to(key, buffer) else None

    def open(self, key: str) -> BinaryIO | None:
        """A binary file object to read the file from (close it), or None. Off the local
        disk it is a temporary file: the chunks go to disk, not to memory."""
        path = self.local_path(key)
        if path is not None:
            try:
                return open(path, "rb")
            except FileNotFoundError:
                return None
        spool = tempfile.TemporaryFile()
        if not self.copy_to(key, spool):
            spool.close()
            return None
        spool.seek(0)
        return spool

    def sendable(self, key: str) -> Path | BinaryIO | None:
        """What ``flask.send_file`` takes: the local path (it then answers ranges and
        conditional requests), else an open file object; None when there is no such file."""
        path = self.local_path(key)
        if path is not None:
            return path if path.is_file() else None
        return self.open(key)


class LocalStorage(Storage):
    """Files under ``root`` (``$TRAINRX_DATA_DIR``), each written to a temporary name and
    renamed into place, so a reader never sees half a file."""

    def __init__(self, root: Path, prefix: str = "") -> None:
        super().__init__(prefix)
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / self._key(key)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def write(self, key: str, source: BinaryIO) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(source, f, CHUNK_BYTES)
                size = f.tell()
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def copy_to(self, key: str, target: BinaryIO) -> bool:
        try:
            with open(self._path(key), "rb") as f:
                shutil.copyfileobj(f, target, CHUNK_BYTES)
        except FileNotFoundError:
            return False
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_folder(self, folder: str) -> None:
        shutil.rmtree(self._path(folder), ignore_errors=True)

    def names(self, folder: str) -> list[str]:
        try:  # not the temporary files of writes in progress (".name.xxxx")
            return sorted(p.name for p in self._path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
        except FileNotFoundError:
            return []


class DatabaseStorage(Storage):
    """Files as rows of ``file_chunks`` (key, seq, data) in the job database."""

    def __init__(self, engine: Engine, prefix: str = "", chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__(prefix)
        self.engine, self.chunk_bytes = engine, chunk_bytes

    def write(self, key: str, source: BinaryIO) -> int:
        full, size, seq = self._key(key), 0, 0
        with self.engine.begin() as conn:  # one transaction: readers see the old file or the new one
            if conn.dialect.name == "postgresql":
                # Writers of one key take turns: else two first writes both insert chunk 0 and the
                # second fails on the primary key. (SQLite's database lock already serialises writers.)
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": full})
            conn.execute(delete(file_chunks).where(file_chunks.c.key == full))
            while True:
                chunk = source.read(self.chunk_bytes)
                if not chunk and seq:
                    break
                conn.execute(insert(file_chunks).values(key=full, seq=seq, data=bytes(chunk)))
                size, seq = size + len(chunk), seq + 1
                if not chunk:  # an empty file is one empty chunk, so that it exists
                    break
        return size

    def copy_to(self, key: str, target: BinaryIO) -> bool:
        query = select(file_chunks.c.data).where(file_chunks.c.key == self._key(key)).order_by(file_chunks.c.seq)
        found = False
        with self.engine.connect() as conn:
            # A server-side cursor on PostgreSQL: a few chunks in memory at a time.
            for data in conn.execution_options(yield_per=4).execute(query).scalars():
                target.write(data)
                found = True
        return found

    def exists(self, key: str) -> bool:
        query = select(file_chunks.c.seq).where(file_chunks.c.key == self._key(key), file_chunks.c.seq == 0)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(file_chunks).where(file_chunks.c.key == self._key(key)))

    def delete_folder(self, folder: str) -> None:
        prefix = self._key(folder) + "/"
        with self.engine.begin() as conn:
            conn.execute(delete(file_chunks).where(file_chunks.c.key.startswith(prefix, autoescape=True)))

    def names(self, folder: str) -> list[str]:
        prefix = self._key(folder) + "/"
        query = select(file_chunks.c.key).where(file_chunks.c.key.startswith(prefix, autoescape=True),
                                                file_chunks.c.seq == 0)
        with self.engine.connect() as conn:
            keys = conn.execute(query).scalars().all()
        return sorted(key[len(prefix):] for key in keys if "/" not in key[len(prefix):])


def open_storage(settings: Settings, engine: Engine) -> Storage:
    """The store ``TRAINRX_STORAGE`` names: under the data directory, or in the database
    that ``engine`` reaches (the job database)."""
    if settings.storage == LOCAL:
        return LocalStorage(settings.data_dir)
    if settings.storage == DATABASE:
        return DatabaseStorage(engine)
    raise ValueError(f"TRAINRX_STORAGE must be one of {', '.join(BACKENDS)}, got {settings.storage!r}")
