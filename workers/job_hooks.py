"""Connects the training engine to one run of one job: heartbeat, cancel, shutdown,
progress, logs and checkpoints — every write fenced by the run (core/job_runs.py)."""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from functools import lru_cache, partial

from core import stop_reasons
from core.artifacts import CHECKPOINT_FILE, CHECKPOINT_META_FILE, ArtifactStore, checkpoint_file
from core.events import JobEvents
from core.jobstore import JobStore, Superseded
from core.log_redaction import redact
from core.settings import Settings
from core.storage import open_storage
from core.uploads import UploadStore
from workers.celery_app import shutting_down
from workers import metrics
from workers.diagnosis import diagnose
from workers.engine.config import JobConfig

log = logging.getLogger("trainrx.worker")
HEARTBEAT_EVERY_S = 2.0
DIAGNOSE_EVERY_EPOCH_UNTIL = 50  # epochs; after that, the running diagnosis is refreshed every few seconds
DIAGNOSE_EVERY_S = 2.0


def epoch_steps(steps: dict | None, epoch: int) -> dict | None:
    """The sampled steps of ``epoch`` only (the lists are in step order, so epochs ascend)."""
    if not steps or not steps.get("epoch"):
        return None
    start = bisect.bisect_left(steps["epoch"], epoch)
    return {key: values[start:] for key, values in steps.items()}


class JobHooks:
    """The engine's ``Hooks`` for one run: ``stop_reason``, ``on_epoch``, ``log``,
    ``checkpoint_due`` and ``checkpoint``."""

    def __init__(self, store: JobStore, artifacts: ArtifactStore, job: dict, settings: Settings) -> None:
        self.store, self.artifacts = store, artifacts
        self.job_id, self.run, self.request = job["id"], int(job["run"]), job["request"]
        self.queue, self.redis_url = job["queue"], settings.redis_url  # for the cluster's epoch counts
        self.config: JobConfig | None = None  # the typed request; the runner sets it before the run
        # The diagnosis checks its suggested patches as the API will check the owner's resubmit.
        self.limits = settings.limits
        uploads = UploadStore(store.engine, open_storage(settings, store.engine))
        self.resolver = lru_cache(maxsize=4)(partial(uploads.shape, owner=job["owner"]))
        self.every_epochs, self.every_s = settings.checkpoint_every_epochs, settings.checkpoint_every_s
        self.rows: list[dict] = []
        self.data_info: dict | None = None
        self.events: JobEvents | None = None  # live events (core/events.py); set once the job runs
        self.cancelled = threading.Event()
        self.superseded = threading.Event()  # another run took the job over: stop, write nothing more
        self._last_checkpoint = (0, time.monotonic())
        self._checkpoint_file: str | None = None  # the file the meta file names now
        self._diagnosed = 0.0
        self._stop_beat = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"heartbeat-{self.job_id}", daemon=True)

    def __enter__(self) -> "JobHooks":
        self._beat.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_beat.set()
        self._beat.join(timeout=5)

    def _heartbeat(self) -> None:
        while not self._stop_beat.wait(HEARTBEAT_EVERY_S):
            try:
                beat = self.store.heartbeat(self.job_id, self.run)
            except Exception:  # the database may blip; the next beat tries again
                log.exception("heartbeat for job %s failed", self.job_id)
                continue
            if beat.cancel_requested:
                self.cancelled.set()
            if not beat.current:
                log.warning("job %s: run %d is no longer current; stopping it", self.job_id, self.run)
                self.superseded.set()

    # --- the engine's hooks -------------------------------------------------

    def stop_reason(self) -> str | None:
        if self.superseded.is_set():
            raise Superseded(f"job {self.job_id}: run {self.run} was superseded")
        if self.cancelled.is_set():
            return stop_reasons.CANCELLED
        if shutting_down.is_set():
            return stop_reasons.SHUTDOWN
        return None

    def resumed(self, rows: list[dict]) -> None:
        """The run resumed from a checkpoint: these epochs are in the database already."""
        self.rows = list(rows)
        self._last_checkpoint = (len(rows), time.monotonic())

    def on_epoch(self, row: dict, summary: dict, probes) -> None:
        """Record the epoch. Its cost stays flat over a long run: only this epoch's sampled
        steps are written, and the diagnosis so far (which reads the whole history) is
        refreshed every epoch at first, then at most every DIAGNOSE_EVERY_S seconds."""
        self.rows.append(row)
        steps, initial = (probes.steps, probes.initial) if probes else (None, None)
        so_far = None
        if len(self.rows) <= DIAGNOSE_EVERY_EPOCH_UNTIL or time.monotonic() - self._diagnosed >= DIAGNOSE_EVERY_S:
            so_far = self.diagnose(self.rows, summary, None, steps=steps, initial=initial, final=False)
            self._diagnosed = time.monotonic()
        self.store.record_epoch(self.job_id, self.run, row, summary, steps=epoch_steps(steps, row["epoch"]),
                                initial_probes=initial if len(self.rows) == 1 else None, diagnosis=so_far)
        if self.events is not None:
            self.events.epoch(row)
        metrics.epoch_finished(self.redis_url, self.queue)

    def checkpoint_due(self, epoch: int) -> bool:
        last_epoch, last_time = self._last_checkpoint
        by_epochs = self.every_epochs > 0 and epoch - last_epoch >= self.every_epochs
        by_time = self.every_s > 0 and time.monotonic() - last_time >= self.every_s
        return by_epochs or by_time

    def checkpoint(self, epoch: int, blob: bytes) -> None:
        """Keep the state after ``epoch``: in a file of its own first, then the meta file names
        it (with the epoch, run and size), then the previous state goes. Whatever moment the
        worker is lost at (a host cut off between two writes), the meta file names a whole state."""
        if not self.store.heartbeat(self.job_id, self.run).current:
            raise Superseded(f"job {self.job_id}: run {self.run} was superseded")
        name = checkpoint_file(self.run, epoch)
        self.artifacts.write_bytes(self.job_id, name, blob)
        self.artifacts.write_bytes(self.job_id, CHECKPOINT_META_FILE, json.dumps(
            {"epoch": epoch, "run": self.run, "bytes": len(blob), "file": name}).encode())
        previous, self._checkpoint_file = self._checkpoint_file, name
        if previous not in (None, name):
            self.artifacts.delete(self.job_id, previous)
        self._last_checkpoint = (epoch, time.monotonic())

    def log(self, line: str) -> None:
        """To the operator's log as is; to the job's own log (its user reads it) redacted."""
        log.info("job %s: %s", self.job_id, line)
        try:
            self.store.log(self.job_id, redact(line), run=self.run)
        except Superseded:
            self.superseded.set()

    # --- for the runner -----------------------------------------------------

    def diagnose(self, rows: list[dict], summary: dict | None, stop_reason: str | None, **kwargs) -> dict:
        config = self.config if self.config is not None else self.request  # the runner sets the typed one
        return diagnose(config, rows, summary, stop_reason, self.data_info, limits=self.limits,
                        resolver=self.resolver, **kwargs)

    def saved_checkpoint(self) -> tuple[int, bytes] | None:
        """The last checkpoint a run of this job saved, as (epoch, state), or None."""
        meta = self.artifacts.read_bytes(self.job_id, CHECKPOINT_META_FILE)
        if meta is None:
            return None
        try:
            info = json.loads(meta)
            epoch, name = int(info["epoch"]), str(info.get("file") or CHECKPOINT_FILE)
            blob = self.artifacts.read_bytes(self.job_id, name)
        except (ValueError, KeyError, TypeError):  # a damaged meta file, or one naming no valid file
            return None
        if blob is None or len(blob) != info.get("bytes") or epoch <= 0:
            return None
        self._checkpoint_file = name  # this run's first checkpoint replaces it
        return epoch, blob

    def drop_checkpoint(self) -> None:
        self.artifacts.delete(self.job_id, CHECKPOINT_META_FILE)
        for name in {self._checkpoint_file, CHECKPOINT_FILE} - {None}:
            self.artifacts.delete(self.job_id, name)
