"""The service's tables and database engine (SQLite by default, PostgreSQL in production).

The tables here are the models; the schema of a real database is made by the
Alembic migrations in ``core/migrations`` (``make migrate``), and a test keeps
the two equal. Every schema change ships a migration.
"""

from __future__ import annotations

import math

import sqlalchemy.exc
from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, Integer, LargeBinary, MetaData, String,
                        Table, Text, UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine

# Rows made before owners existed belong to this owner (migration 0002).
LEGACY_OWNER = "admin"

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100)),
    Column("owner", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("queue", String(16), nullable=False),
    Column("request", JSON, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("idempotency_key", String(255)),
    Column("parent_id", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("worker", String(255)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("progress_epoch", Integer, nullable=False, default=0),
    Column("summary", JSON),
    Column("timings", JSON),
    Column("error", JSON),
    Column("data_info", JSON),
    Column("diagnosis", JSON),
    Column("steps", JSON),
    Column("initial_probes", JSON),
    Column("artifacts", JSON),
    # Runs and recovery (core/job_runs.py): every start is a new run; every status change
    # bumps status_seq and raises status_high to the progress so far (live event ids).
    Column("run", Integer, nullable=False, server_default="0"),
    Column("status_seq", Integer, nullable=False, server_default="0"),
    Column("status_high", Integer, nullable=False, server_default="0"),
    # The status change that started the current run (its ``running`` event can be replayed).
    Column("run_status_seq", Integer, nullable=False, server_default="0"),
    Column("run_status_high", Integer, nullable=False, server_default="0"),
    Column("runtime_used_s", Float, nullable=False, server_default="0"),
    # The upload it trains on (from the request), so that deleting an upload can check its use atomically.
    Column("dataset_id", String(32), index=True),
    # A sweep's child (core/sweeps.py): its sweep, and which combination x seed of the sweep's plan it runs.
    Column("sweep_id", String(32), index=True),
    Column("sweep_index", Integer),
    # Idempotency keys are per owner: two owners may pick the same key.
    UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
)

# Sweeps (POST /v1/sweeps, core/sweeps.py): a grid x random draws x seeds of one base request, run as
# child jobs created lazily, at most max_parallel unfinished at a time. ``plan`` holds every
# combination's values, seed and validated request; ``next_index`` is the first not yet created.
sweeps = Table(
    "sweeps", metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("name", String(100)),
    Column("status", String(16), nullable=False, index=True),
    Column("spec", JSON, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("size", Integer, nullable=False),
    Column("max_parallel", Integer, nullable=False),
    Column("next_index", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("finished_at", DateTime(timezone=True)),
    # Idempotency-Key of the POST (per owner, as for jobs) and the fingerprint of the body it made.
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    UniqueConstraint("owner", "idempotency_key", name="uq_sweeps_owner_idempotency_key"),
)

# One row per finished epoch: the curves are assembled from these, and live
# event streams replay them.
job_epochs = Table(
    "job_epochs", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("metrics", JSON, nullable=False),
    # The training steps sampled during this epoch (step, loss, grad_norm lists): appended per
    # epoch, so that recording an epoch costs the same at epoch 10,000 as at epoch 1.
    Column("steps", JSON),
)

job_logs = Table(
    "job_logs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("line", Text, nullable=False),
)

# Uploaded datasets (POST /v1/datasets); their arrays are stored files under datasets/<id>/ (core/storage.py).
datasets = Table(
    "datasets", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100)),
    Column("owner", String(64), nullable=False, index=True),
    Column("format", String(8), nullable=False),
    Column("filename", String(255)),
    Column("rows", Integer, nullable=False),
    Column("features", Integer, nullable=False),
    Column("classes", Integer, nullable=False),
    Column("class_counts", JSON, nullable=False),
    Column("feature_names", JSON),
    Column("feature_ranges", JSON, nullable=False),
    # classification (y: int64 labels, classes >= 2) or regression (y: float32 targets, classes 0).
    Column("task", String(16), nullable=False, server_default="classification"),
    Column("input_shape", JSON),  # [C, L] or [C, H, W] for convolutions; null: no spatial shape
    Column("target", JSON),  # regression: the targets' min, max, mean and std
    Column("upload_bytes", BigInteger, nullable=False),
    Column("stored_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_used_at", DateTime(timezone=True)),
)

# API tokens (Authorization: Bearer). Only a SHA-256 of the token is stored; the
# token itself is shown once, when it is created.
tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("role", String(8), nullable=False),
    Column("label", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# Files kept in the database (TRAINRX_STORAGE=database, core/storage.py): each file is its
# chunks, in ``seq`` order, under its storage key (``artifacts/<job id>/weights.safetensors``).
file_chunks = Table(
    "file_chunks", metadata,
    Column("key", String(255), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)


# How long a statement waits for another writer's lock before it fails. Workers wait
# long (a job's write should rather wait than fail); the API passes a short one
# (service/extensions.py): SQLite waits inside C, which freezes a whole gevent process.
DEFAULT_BUSY_TIMEOUT_S = 30.0

# A worker host cut off from the network in the middle of a transaction (between an UPDATE of
# its job's row and the COMMIT) would hold that row's lock for as long as PostgreSQL believes the
# connection alive, hours by default, and the reaper could never take the job over. Keepalives
# (idle s, interval s, count) and a TCP user timeout of their sum (for a connection with data
# left unacknowledged, where keepalives do not apply) end such a session within about 25 s;
# a live peer answers them.
DEAD_PEER_KEEPALIVE = (10, 5, 3)

# SQLite's messages for a lock another connection holds.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
# PostgreSQL SQLSTATEs worth a retry: connection exceptions (class 08), lock_timeout
# (55P03), statement_timeout or a cancel (57014), a server shutting down or starting
# (57P01-57P03), serialization failures and deadlocks (40001, 40P01).
_PG_TRANSIENT = ("08", "55P03", "57014", "57P01", "57P02", "57P03", "40001", "40P01")


def make_engine(url: str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """An engine for ``url``. SQLite gets WAL mode (API and worker both write) and waits
    ``busy_timeout_s`` for a lock; PostgreSQL gets the same bound as ``lock_timeout``,
    and as its connect timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s))
    else:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        connect_args = {}
        if url.startswith("postgresql"):
            # TCP keepalives both ways (see DEAD_PEER_KEEPALIVE): the server ends the session of a host
            # that went off the network, which rolls back its open transaction and frees its row locks.
            idle, interval, count = DEAD_PEER_KEEPALIVE
            user_timeout_ms = (idle + interval * count) * 1000
            connect_args = {"connect_timeout": max(2, math.ceil(busy_timeout_s)),  # libpq: whole seconds, 2 at least
                            "options": f"-c lock_timeout={int(busy_timeout_s * 1000)} -c tcp_keepalives_idle={idle} "
                                       f"-c tcp_keepalives_interval={interval} -c tcp_keepalives_count={count} "
                                       f"-c tcp_user_timeout={user_timeout_ms}",
                            "keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval,
                            "keepalives_count": count, "tcp_user_timeout": user_timeout_ms}
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)
    return engine


def _sqlite_pragmas(busy_timeout_s: float):
    def on_connect(dbapi_connection, connection_record) -> None:  # noqa: ARG001
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being busy or out of reach, which a retry may
    get past (the API answers 503 with ``Retry-After``), rather than a fault in the query."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool had no connection to lend in time
        return True
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)  # psycopg
    if sqlstate:
        return sqlstate.startswith(_PG_TRANSIENT)
    if not isinstance(exc, sqlalchemy.exc.OperationalError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        message = str(exc.orig).lower()
        return any(busy in message for busy in _SQLITE_BUSY)
    return True  # psycopg without an SQLSTATE: the server could not be reached
