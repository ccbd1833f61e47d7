"""A one-line progress display for ``jobs.wait(progress=True)`` and the CLI:
status, epochs, loss and validation accuracy (R² for regression). On a terminal it redraws one
line; in a log (CI) it prints a line per change, at most every few seconds."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from trainrx.types import EndEvent, EpochEvent, Job, StatusEvent

_BAR = 20
_LOG_EVERY_S = 5.0


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


class ProgressDisplay:
    def __init__(self, job_id: str, epochs: int | None = None, file: IO[str] | None = None) -> None:
        self.job_id, self.epochs = job_id, epochs
        self.file = file or sys.stderr
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.status, self.epoch, self.loss, self.val_accuracy = "queued", 0, None, None
        self.val_label = "val_acc"
        self._last_line, self._last_print = "", 0.0

    def on_event(self, event: Any) -> None:
        if isinstance(event, StatusEvent):
            self.status = event.status
            self._draw(force=True)
        elif isinstance(event, EpochEvent):
            self.epoch, self.loss = event.epoch, event.train_loss
            self._validation(event.val_accuracy, event.val_r2)
            self._draw()
        elif isinstance(event, EndEvent):
            self.on_job(event.job)

    def on_job(self, job: Job) -> None:
        changed = job.status != self.status
        self.status = job.status
        self.epochs = job.progress.epochs or self.epochs
        self.epoch = job.progress.epoch
        if job.summary is not None:
            self.loss = job.summary.train_loss
            self._validation(job.summary.val_accuracy, job.summary.val_r2)
        self._draw(force=changed or job.finished)

    def _validation(self, accuracy: float | None, r2: float | None) -> None:
        """The validation accuracy, or a regression job's R²."""
        regression = accuracy is None and r2 is not None
        self.val_label, self.val_accuracy = ("val_r2", r2) if regression else ("val_acc", accuracy)

    def line(self) -> str:
        total = self.epochs or 0
        done = int(_BAR * min(self.epoch / total, 1.0)) if total else 0
        bar = "#" * done + "-" * (_BAR - done)
        of = f"/{total}" if total else ""
        return (f"job {self.job_id[:8]} {self.status:<9} [{bar}] epoch {self.epoch}{of}  "
                f"loss {_fmt(self.loss)}  {self.val_label} {_fmt(self.val_accuracy)}")

    def _draw(self, force: bool = False) -> None:
        line = self.line()
        if line == self._last_line:
            return
        now = time.monotonic()
        if self.tty:
            self.file.write("\r" + line.ljust(len(self._last_line)))
        elif force or now - self._last_print >= _LOG_EVERY_S:
            self.file.write(line + "\n")
        else:
            return
        self.file.flush()
        self._last_line, self._last_print = line, now

    def close(self) -> None:
        if self.tty and self._last_line:
            self.file.write("\n")
            self.file.flush()
        elif not self.tty and self.line() != self._last_line:
            self.file.write(self.line() + "\n")
            self.file.flush()
