"""The tables as ``metadata.create_all`` made them before migrations existed (revision 0001):
the starting point of tests/core/test_migrations.py. A frozen copy, not used by the service."""
from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table, Text

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100)),
    Column("owner", String(64), index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("queue", String(16), nullable=False),
    Column("request", JSON, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("idempotency_key", String(255), unique=True),
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
)

# One row per finished epoch: the curves are assembled from these, and live
# event streams replay them.
job_epochs = Table(
    "job_epochs", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("metrics", JSON, nullable=False),
)

job_logs = Table(
    "job_logs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("line", Text, nullable=False),
)

# Uploaded datasets (POST /v1/datasets); their arrays live under $TRAINRX_DATA_DIR/datasets/<id>/.
datasets = Table(
    "datasets", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100)),
    Column("owner", String(64), index=True),
    Column("format", String(8), nullable=False),
    Column("filename", String(255)),
    Column("rows", Integer, nullable=False),
    Column("features", Integer, nullable=False),
    Column("classes", Integer, nullable=False),
    Column("class_counts", JSON, nullable=False),
    Column("feature_names", JSON),
    Column("feature_ranges", JSON, nullable=False),
    Column("upload_bytes", BigInteger, nullable=False),
    Column("stored_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_used_at", DateTime(timezone=True)),
)
