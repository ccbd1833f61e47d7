"""How the CLI shows jobs, curves and diagnoses to a person."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from trainrx.types import Curves, Diagnosis, Finding, Job, Summary


def number(value: Any, spec: str = ".4f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format(value, spec) if isinstance(value, float) else str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def marks() -> tuple[str, str]:
    """✓/✗ where the terminal can print them, else PASS/FAIL."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
        return "✓", "✗"
    except (UnicodeEncodeError, LookupError):
        return "PASS", "FAIL"


def fit_metrics(summary: Summary) -> tuple[str, ...]:
    """What a job measures its fit by: accuracy, or R² and MAE for a regression job."""
    return ("r2", "mae") if summary.train_accuracy is None and summary.train_r2 is not None else ("accuracy",)


def job_text(job: Job) -> str:
    lines = [f"job      {job.id}" + (f"  ({job.name})" if job.name else ""),
             f"status   {job.status}",
             f"progress epoch {job.progress.epoch}/{job.progress.epochs}"]
    if job.created_at:
        lines.append(f"created  {job.created_at.isoformat(timespec='seconds')}")
    if job.finished_at:
        lines.append(f"finished {job.finished_at.isoformat(timespec='seconds')}")
    if job.summary is not None:
        s = job.summary
        metrics = fit_metrics(s)
        lines.append("summary  " + "  ".join(f"{split}_{m} {number(s.get(f'{split}_{m}'))}" for split in
                                             ("train", "val") for m in ("loss", *metrics)))
        extra = [f"best_epoch {number(s.best_epoch)}", f"epochs_run {number(s.epochs_run)}"]
        if s.test_loss is not None:
            extra += [f"test_{m} {number(s.get(f'test_{m}'))}" for m in ("loss", *metrics)]
        if s.stopped_early:
            extra.append("stopped early")
        lines.append("         " + "  ".join(extra))
    if job.error is not None:
        lines.append(f"error    {job.error.type}: {job.error.message}")
    if job.timings is not None and job.timings.total_s is not None:
        lines.append(f"time     {job.timings.total_s:.1f} s")
    return "\n".join(lines)


def jobs_table(jobs: Iterable[Job]) -> str:
    def val_score(job: Job) -> str:  # validation accuracy, or R² (shown as such) for a regression job
        s = job.summary
        if s is not None and s.val_accuracy is None and s.val_r2 is not None:
            return f"R² {number(s.val_r2)}"
        return number(s.val_accuracy if s else None)

    rows = [(j.id, j.name or "", j.status, f"{j.progress.epoch}/{j.progress.epochs}", val_score(j),
             j.created_at.isoformat(timespec="seconds") if j.created_at else "") for j in jobs]
    return table(["id", "name", "status", "epochs", "val_acc", "created"], rows)


CURVE_COLUMNS = {"train_loss": "train_loss", "train_accuracy": "train_acc", "train_r2": "train_r2",
                 "train_mae": "train_mae", "val_loss": "val_loss", "val_accuracy": "val_acc", "val_r2": "val_r2",
                 "val_mae": "val_mae"}


def curves_table(curves: Curves) -> str:
    rows = curves.rows()
    # The metrics the job has; with no epoch yet, the classification columns.
    keys = [k for k in CURVE_COLUMNS if k in rows[0]] if rows else ["train_loss", "train_accuracy", "val_loss",
                                                                      "val_accuracy"]
    table_rows = [(r["epoch"], *(number(r[k]) for k in keys), number(r.get("learning_rate"), ".3g")) for r in rows]
    return table(["epoch", *(CURVE_COLUMNS[k] for k in keys), "lr"], table_rows)


def finding_text(finding: Finding, indent: str = "  ") -> list[str]:
    where = f" (epoch {finding.epoch})" if finding.epoch is not None else ""
    cause = f", caused by {finding.caused_by}" if finding.caused_by else ""
    lines = [f"{indent}[{finding.severity or 'info'}] {finding.code}{where}{cause}"]
    if finding.explanation:
        lines.append(f"{indent}  {finding.explanation}")
    if finding.evidence:
        lines.append(f"{indent}  evidence: " + ", ".join(f"{k}={number(v, '.4g')}" for k, v in
                                                          finding.evidence.items()))
    for suggestion in finding.suggestions:
        patch = json.dumps(suggestion.patch, separators=(", ", ": "))
        lines.append(f"{indent}  suggested patch: {patch}" + (f" — {suggestion.why}" if suggestion.why else ""))
        if suggestion.expect:
            lines.append(f"{indent}    expect: {suggestion.expect}")
    return lines


def diagnosis_text(diagnosis: Diagnosis, limit: int | None = None) -> str:
    state = "" if diagnosis.final else " (so far; the job is still running)"
    lines = [f"verdict: {diagnosis.verdict or 'none yet'}{state}"]
    findings = diagnosis.findings if limit is None else diagnosis.findings[:limit]
    if not findings:
        lines.append("  no findings")
    for finding in findings:
        lines += finding_text(finding)
    if limit is not None and len(diagnosis.findings) > limit:
        lines.append(f"  ... {len(diagnosis.findings) - limit} more (trainrx diagnosis {diagnosis.job_id})")
    return "\n".join(lines)
