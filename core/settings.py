"""Operator configuration, read from the environment with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default, parse, what: str):
    """``name`` from the environment parsed by ``parse``; unset or empty gives ``default``."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {what}, got {raw!r}") from exc


def _int_env(name: str, default: int) -> int:
    return _env(name, default, int, "an integer")


def _float_env(name: str, default: float) -> float:
    return _env(name, default, float, "a number")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Every value is operator-configurable."""

    max_epochs: int = 10_000
    max_batch_size: int = 65_536
    max_hidden_layers: int = 64
    max_width: int = 4096
    max_parameters: int = 20_000_000
    max_runtime_s: int = 3600
    default_runtime_s: int = 3600
    max_upload_bytes: int = 100 * 1024 * 1024
    max_upload_rows: int = 1_000_000
    max_upload_features: int = 10_000
    # The cost of a job as a whole (core/cost.py; docs/requests.md, "Cost limits").
    # 2e14 multiply-accumulates: an hour (the default max_runtime_s) at about 55 GMAC/s, i.e. ~110 GFLOP/s,
    # the low end of what a 2-core CPU reaches in a large matmul; small MLP batches run below that rate,
    # so on such a worker a job over this would hit its time limit anyway.
    max_work: int = 200_000_000_000_000
    # 4 GiB: one job per worker process, leaving room on a small host for the API, Redis and the database.
    max_job_memory_mb: int = 4096
    # ImageNet's 1,000 classes and then some; the split, per-class counts and logits all grow with it.
    max_classes: int = 1000

    @classmethod
    def from_env(cls) -> "Limits":
        cap = _int_env("TRAINRX_MAX_RUNTIME_S", cls.max_runtime_s)
        return cls(
            max_epochs=_int_env("TRAINRX_MAX_EPOCHS", cls.max_epochs),
            max_batch_size=_int_env("TRAINRX_MAX_BATCH_SIZE", cls.max_batch_size),
            max_hidden_layers=_int_env("TRAINRX_MAX_HIDDEN_LAYERS", cls.max_hidden_layers),
            max_width=_int_env("TRAINRX_MAX_WIDTH", cls.max_width),
            max_parameters=_int_env("TRAINRX_MAX_PARAMETERS", cls.max_parameters),
            max_runtime_s=cap,
            default_runtime_s=min(cap, _int_env("TRAINRX_DEFAULT_RUNTIME_S", cap)),
            max_upload_bytes=_int_env("TRAINRX_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            max_upload_rows=_int_env("TRAINRX_MAX_UPLOAD_ROWS", cls.max_upload_rows),
            max_upload_features=_int_env("TRAINRX_MAX_UPLOAD_FEATURES", cls.max_upload_features),
            max_work=_int_env("TRAINRX_MAX_WORK", cls.max_work),
            max_job_memory_mb=_int_env("TRAINRX_MAX_JOB_MEMORY_MB", cls.max_job_memory_mb),
            max_classes=_int_env("TRAINRX_MAX_CLASSES", cls.max_classes),
        )


RATE_LIMIT_OFF = ("", "off", "none", "0")


@dataclass(frozen=True)
class Quotas:
    """What one owner may hold or do at a time; past each, a 429 with ``Retry-After``
    (service/quotas.py, docs/events.md). Every value is operator-configurable."""

    # Queued + running jobs: a team's CI fanning out a few dozen checks fits; a loop submitting
    # without waiting stops at 20 instead of filling the queue for everyone else.
    max_active_jobs_per_owner: int = 20
    # Requests per owner across every /v1 endpoint ("N/second|minute|hour", ";" joins several; None: off).
    # 600/minute is 10 a second sustained: ten SDK waits polling at their 1 s default, or a dashboard
    # refreshing a few panels, fit with room to spare; a runaway loop is cut to that rate.
    rate_limit: str | None = "600/minute"
    # What an owner's uploads may take on disk (as stored: float32 features, int64 labels):
    # ten uploads at the 100 MiB upload limit.
    max_upload_mb_per_owner: int = 1024
    # Open event streams per owner, counted across API processes in Redis: one per job followed
    # is plenty for a person or a CI run; the 2,000 streams of one client in the audit are not.
    max_streams_per_owner: int = 20
    # Open event streams per API process: half of gunicorn's worker_connections (1000), so ordinary
    # requests and /healthz always find a connection.
    max_streams: int = 500
    # A stream ends after this long (minus up to 10 % jitter); clients reconnect with Last-Event-ID.
    # Bounds how long a slot held by a crashed API process stays counted.
    stream_max_s: int = 300
    # Child jobs of one sweep (combinations x seeds): a 4 x 4 grid over 3 seeds fits; a sweep that
    # would hold the queue for hours does not. Its children also count against the active-jobs cap.
    max_sweep_size: int = 64

    @classmethod
    def from_env(cls) -> "Quotas":
        raw_rate = os.environ.get("TRAINRX_RATE_LIMIT")
        rate = cls.rate_limit if raw_rate is None else raw_rate.strip()
        quotas = cls(
            max_active_jobs_per_owner=_int_env("TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER", cls.max_active_jobs_per_owner),
            rate_limit=None if rate is None or rate.lower() in RATE_LIMIT_OFF else rate,
            max_upload_mb_per_owner=_int_env("TRAINRX_MAX_UPLOAD_MB_PER_OWNER", cls.max_upload_mb_per_owner),
            max_streams_per_owner=_int_env("TRAINRX_MAX_STREAMS_PER_OWNER", cls.max_streams_per_owner),
            max_streams=_int_env("TRAINRX_MAX_STREAMS", cls.max_streams),
            stream_max_s=_int_env("TRAINRX_STREAM_MAX_S", cls.stream_max_s),
            max_sweep_size=_int_env("TRAINRX_MAX_SWEEP_SIZE", cls.max_sweep_size),
        )
        for name, value in (("TRAINRX_MAX_ACTIVE_JOBS_PER_OWNER", quotas.max_active_jobs_per_owner),
                            ("TRAINRX_MAX_UPLOAD_MB_PER_OWNER", quotas.max_upload_mb_per_owner),
                            ("TRAINRX_MAX_STREAMS_PER_OWNER", quotas.max_streams_per_owner),
                            ("TRAINRX_MAX_STREAMS", quotas.max_streams),
                            ("TRAINRX_STREAM_MAX_S", quotas.stream_max_s),
                            ("TRAINRX_MAX_SWEEP_SIZE", quotas.max_sweep_size)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        return quotas

    @property
    def max_upload_bytes_per_owner(self) -> int:
        return self.max_upload_mb_per_owner * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Where the service keeps its state and how it reaches its parts.

    ``redis_url`` and ``database_url`` may be empty: then the embedded defaults
    apply (an embedded Redis owned by ``make run``'s stack, SQLite under
    ``data_dir``).
    """

    data_dir: Path
    database_url: str
    redis_url: str
    default_queue: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    quotas: Quotas = field(default_factory=Quotas)
    retention_days: int | None = None  # None: finished jobs and uploads are kept until deleted
    retention_interval_s: int = 3600
    secret_key: str = ""  # signs session cookies; empty: one is made once under data_dir
    export_timeout_s: int = 120  # the .pt2 and ONNX exports together, after training; not in max_runtime_s
    # Recovery (core/job_runs.py, workers/recovery.py): a running job whose heartbeat is older than
    # the grace lost its worker; the sweep looks every interval; checkpoints every N epochs or T seconds.
    heartbeat_grace_s: float = 60.0
    recovery_interval_s: float = 10.0
    checkpoint_every_epochs: int = 10
    checkpoint_every_s: float = 60.0
    # Where files live (core/storage.py): "local" under data_dir, or "database" for hosts that share no disk.
    storage: str = "local"

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(os.environ.get("TRAINRX_DATA_DIR") or "./var").resolve()
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'trainrx.db'}"
        queue = os.environ.get("TRAINRX_DEFAULT_QUEUE") or "cpu"
        if queue not in ("cpu", "gpu"):  # core.queueing.QUEUES (which imports this module)
            raise ValueError(f"TRAINRX_DEFAULT_QUEUE must be 'cpu' or 'gpu', got {queue!r}")
        storage = os.environ.get("TRAINRX_STORAGE") or "local"
        if storage not in ("local", "database"):  # core.storage.BACKENDS (which needs the database layer)
            raise ValueError(f"TRAINRX_STORAGE must be 'local' or 'database', got {storage!r}")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=os.environ.get("REDIS_URL", ""),
            default_queue=queue,
            limits=Limits.from_env(),
            quotas=Quotas.from_env(),
            retention_days=_retention_days(),
            retention_interval_s=max(1, _int_env("TRAINRX_RETENTION_INTERVAL_S", cls.retention_interval_s)),
            secret_key=os.environ.get("TRAINRX_SECRET_KEY", ""),
            export_timeout_s=max(1, _int_env("TRAINRX_EXPORT_TIMEOUT_S", cls.export_timeout_s)),
            heartbeat_grace_s=max(1.0, _float_env("TRAINRX_HEARTBEAT_GRACE_S", cls.heartbeat_grace_s)),
            recovery_interval_s=max(0.2, _float_env("TRAINRX_RECOVERY_INTERVAL_S", cls.recovery_interval_s)),
            checkpoint_every_epochs=max(0, _int_env("TRAINRX_CHECKPOINT_EVERY_EPOCHS", cls.checkpoint_every_epochs)),
            checkpoint_every_s=max(0.0, _float_env("TRAINRX_CHECKPOINT_EVERY_S", cls.checkpoint_every_s)),
            storage=storage,
        )

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "datasets"


def _retention_days() -> int | None:
    """TRAINRX_RETENTION_DAYS: unset, empty or 0 keeps everything."""
    days = _int_env("TRAINRX_RETENTION_DAYS", 0)
    if days < 0:
        raise ValueError(f"TRAINRX_RETENTION_DAYS must be 0 (off) or a number of days, got {days}")
    return days or None
