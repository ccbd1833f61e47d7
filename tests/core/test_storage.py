"""The storage backends (core/storage.py) keep the same promises: a file reads back as
written, a replaced file is whole (old or new, never a mix), a delete takes exactly what
it names. Each runs on the local disk, on SQLite, and on PostgreSQL in CI's second pass."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from core import migrate
from core.artifacts import WEIGHTS_FILE, ArtifactStore
from core.db import file_chunks, make_engine
from core.settings import Settings
from core.storage import DatabaseStorage, LocalStorage, Storage, open_storage
from core.upload_parsing import ParsedDataset
from core.uploads import DELETED, UploadMissing, UploadStore

CHUNK = 7  # small chunks, so that every file here spans several


@pytest.fixture(params=["local", "sqlite", "postgresql"])
def files(request, tmp_path) -> Storage:
    if request.param == "local":
        yield LocalStorage(tmp_path / "data")
        return
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'files.db'}")
        migrate.upgrade(engine)
    else:
        if not (os.environ.get("DATABASE_URL") or "").startswith("postgres"):
            pytest.skip("PostgreSQL runs in CI's second pass (DATABASE_URL=postgresql://...)")
        engine = make_engine(request.getfixturevalue("settings").database_url)  # migrated by the session
    # Every test writes under its own folder, so tests sharing the PostgreSQL database stay apart.
    yield DatabaseStorage(engine, chunk_bytes=CHUNK).under(f"t{os.urandom(6).hex()}")
    engine.dispose()


class FailingSource(io.RawIOBase):
    """Gives ``good`` bytes, then fails: a writer that dies part way through."""

    def __init__(self, good: bytes) -> None:
        self.left = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.left.read(len(buffer))
        if not data:
            raise OSError("the source went away")
        buffer[:len(data)] = data
        return len(data)


def test_a_file_reads_back_as_written_and_a_replacement_leaves_nothing_of_the_old(files):
    big = os.urandom(10 * CHUNK + 3)
    assert files.write_bytes("job/weights.safetensors", big) == len(big)
    assert files.exists("job/weights.safetensors") and files.read_bytes("job/weights.safetensors") == big
    files.write_bytes("job/weights.safetensors", b"short")
    assert files.read_bytes("job/weights.safetensors") == b"short"
    files.write_bytes("job/empty", b"")
    assert files.exists("job/empty") and files.read_bytes("job/empty") == b""
    assert not files.exists("job/other") and files.read_bytes("job/other") is None
    assert files.open("job/other") is None and files.sendable("job/other") is None


def test_files_stream_through_file_objects(files, tmp_path):
    source = tmp_path / "model.pt2"
    source.write_bytes(os.urandom(5 * CHUNK + 1))
    with open(source, "rb") as f:
        assert files.write("job/model.pt2", f) == source.stat().st_size
    with files.open("job/model.pt2") as f:
        assert f.read() == source.read_bytes()
    sendable = files.sendable("job/model.pt2")
    if isinstance(sendable, Path):  # the local disk: flask.send_file gets the path
        assert sendable.read_bytes() == source.read_bytes()
    else:
        with sendable:
            assert sendable.read() == source.read_bytes()


def test_a_write_that_fails_part_way_leaves_the_old_file_whole(files):
    files.write_bytes("job/checkpoint.pt", b"the old state")
    with pytest.raises(OSError, match="went away"):
        files.write("job/checkpoint.pt", io.BufferedReader(FailingSource(os.urandom(3 * CHUNK)), buffer_size=CHUNK))
    assert files.read_bytes("job/checkpoint.pt") == b"the old state"


def test_two_writers_of_one_key_at_once_both_succeed_and_one_file_wins_whole(files):
    """Two first views of a finished job's plot both cache it: on PostgreSQL the second
    writer's chunk 0 used to hit the primary key (a 500)."""
    for round_ in range(10):  # a fresh key each round (the first write races hardest), then a replacement
        key, payloads = f"job/plot-{round_ % 5}.png", [os.urandom(12 * CHUNK + 1), os.urandom(9 * CHUNK)]
        start, errors = threading.Barrier(2), []

        def write(data: bytes) -> None:
            start.wait()
            try:
                files.write_bytes(key, data)
            except Exception as exc:  # noqa: BLE001 - reported below with the payload's writer
                errors.append(exc)

        writers = [threading.Thread(target=write, args=(data,)) for data in payloads]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert errors == []
        assert files.read_bytes(key) in payloads


def test_deletes_take_exactly_what_they_name(files):
    for key in ("job_1/a", "job_1/b", "jobx1/a", "job_10/a"):
        files.write_bytes(key, key.encode())
    files.delete("job_1/a")
    files.delete("job_1/never-written")
    assert not files.exists("job_1/a") and files.exists("job_1/b")
    files.delete_folder("job_1")  # "_" is a LIKE wildcard on a database: it must not reach jobx1
    assert not files.exists("job_1/b")
    assert [files.read_bytes(k) for k in ("jobx1/a", "job_10/a")] == [b"jobx1/a", b"job_10/a"]


def test_names_lists_the_files_directly_under_a_folder(files):
    for key in ("job_1/a", "job_1/b", "job_1/sub/c", "job_10/d"):
        files.write_bytes(key, b"")
    assert files.names("job_1") == ["a", "b"]  # "_" is a LIKE wildcard on a database: not job_10's
    assert files.names("never") == []
    files.delete_folder("job_1")
    assert files.names("job_1") == []


def test_a_view_under_a_folder_is_the_same_store(files):
    files.under("artifacts").write_bytes("job/w", b"w")
    assert files.read_bytes("artifacts/job/w") == b"w"
    assert files.under("artifacts").under("job").read_bytes("w") == b"w"


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a//b", "a/../b", "a/.hidden", "a b", "a\\b"])
def test_a_key_is_plain_relative_segments(files, key):
    with pytest.raises(ValueError, match="not a storage key"):
        files.write_bytes(key, b"x")


def test_the_database_keeps_a_file_as_chunks_of_the_set_size(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'files.db'}")
    migrate.upgrade(engine)
    DatabaseStorage(engine, chunk_bytes=CHUNK).write_bytes("f", b"x" * (3 * CHUNK + 1))
    with engine.connect() as conn:
        sizes = list(conn.execute(select(func.length(file_chunks.c.data)).order_by(file_chunks.c.seq)).scalars())
    assert sizes == [CHUNK, CHUNK, CHUNK, 1]
    engine.dispose()


def test_uploads_and_job_files_go_through_the_database_store(store):
    files = open_storage(Settings(data_dir=Path("/nonexistent"), database_url="", redis_url="", storage="database"),
                         store.engine)
    uploads = UploadStore(store.engine, files)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype(np.float32), np.arange(40) % 2
    row = uploads.create(ParsedDataset(x=x, y=y, format="npz", feature_names=None), owner="ann", name="d",
                         filename="d.npz", upload_bytes=100)
    assert row["stored_bytes"] > x.nbytes + y.nbytes  # the .npy headers come on top
    _, arrays = uploads.load(row["id"], owner="ann")
    assert (arrays.x == x).all() and (arrays.y == y).all() and arrays.y.dtype == np.int64
    assert uploads.delete(row["id"], owner="ann") == DELETED
    assert not files.exists(f"datasets/{row['id']}/x.npy")

    artifacts = ArtifactStore(files)
    artifacts.write_bytes("j" * 32, WEIGHTS_FILE, b"weights")
    assert files.read_bytes(f"artifacts/{'j' * 32}/{WEIGHTS_FILE}") == b"weights"
    artifacts.delete_job("j" * 32)
    assert artifacts.read_bytes("j" * 32, WEIGHTS_FILE) is None


def test_an_upload_whose_files_are_gone_is_missing_to_a_job(store):
    files = DatabaseStorage(store.engine)
    uploads = UploadStore(store.engine, files)
    x, y = np.zeros((20, 2), np.float32), np.arange(20) % 2
    row = uploads.create(ParsedDataset(x=x, y=y, format="npz", feature_names=None), owner="ann", name=None,
                         filename="d.npz", upload_bytes=10)
    files.delete(f"datasets/{row['id']}/y.npy")
    with pytest.raises(UploadMissing):
        uploads.load(row["id"], owner="ann")


def test_the_backend_is_chosen_by_name(tmp_path, monkeypatch):
    engine = make_engine("sqlite://")
    settings = Settings(data_dir=tmp_path, database_url="", redis_url="")
    assert isinstance(open_storage(settings, engine), LocalStorage)  # the default
    monkeypatch.setenv("TRAINRX_STORAGE", "database")
    assert Settings.from_env().storage == "database"
    monkeypatch.setenv("TRAINRX_STORAGE", "s3")
    with pytest.raises(ValueError, match="TRAINRX_STORAGE must be 'local' or 'database', got 's3'"):
        Settings.from_env()
    engine.dispose()

