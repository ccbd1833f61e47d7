"""``trainrx check --remedy``: when a check fails, run the job's verified remedies, wait, and
say which patch fixed it (ready to paste into the spec) and what its child reached."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from trainrx._client import Client
from trainrx._constants import DEFAULT_WAIT_TIMEOUT
from trainrx.errors import APIError, ConflictError, WaitTimeoutError
from trainrx.types import Remedy, RemedyOutcome

# What a child reached next to its parent, in this order, where the job has them.
COMPARED = ("verdict", "train_accuracy", "val_accuracy", "train_r2", "val_r2", "train_loss", "val_loss")


@dataclass
class RemedyReport:
    """The text printed (and written to the JUnit report) and the properties it records."""

    text: str
    properties: dict[str, Any] = field(default_factory=dict)


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def compare(after: RemedyOutcome | None, before: RemedyOutcome | None) -> str:
    """``train_accuracy 0.9500 (parent 0.1000), ...`` for the metrics the child has."""
    parts = []
    for key in COMPARED:
        now = getattr(after, key, None) if after is not None else None
        if now is None:
            continue
        then = getattr(before, key, None) if before is not None else None
        parts.append(f"{key} {_value(now)} (parent {_value(then)})")
    return ", ".join(parts)


def describe(remedy: Remedy) -> RemedyReport:
    tried = [a for a in remedy.attempts if a.job_id]
    properties: dict[str, Any] = {"remedy_id": remedy.id, "remedy_attempts": len(tried)}
    if remedy.best is None:
        lines = [f"No verified remedy: {len(tried)} patch(es) re-trained, none fixed the problem."]
        lines += [f"  tried {json.dumps(a.patch, sort_keys=True)}: {a.status}"
                  + (f", reached {compare(a.after, a.before)}" if a.after is not None else "") for a in tried]
        return RemedyReport("\n".join(lines), properties)
    best = next(a for a in remedy.attempts if a.job_id == remedy.best.job_id)
    patch = json.dumps(remedy.best.patch, sort_keys=True)
    properties.update(remedy_fixed_by=remedy.best.job_id, remedy_patch=patch)
    lines = [f"Verified remedy: job {remedy.best.job_id} fixed it ({best.finding or 'the diagnosis'}).",
             f"  reached {compare(best.after, best.before)}",
             "  paste into the spec (a JSON merge patch):",
             f"  {patch}"]
    return RemedyReport("\n".join(lines), properties)


def run_remedy(client: Client, job_id: str, *, max_attempts: int, timeout: float) -> RemedyReport:
    """Start (or find) the job's remedy and wait for it; never raises for the service's answers:
    the check's own result stands, the report says what happened."""
    try:
        client.remedies.create(job_id, max_attempts=max_attempts)
        return describe(client.remedies.wait(job_id, timeout=timeout))
    except ConflictError as exc:
        return RemedyReport(f"No remedy run: {exc.message}")
    except WaitTimeoutError as exc:
        return RemedyReport(f"No verified remedy yet: {exc} It goes on: `trainrx remedy {job_id}` shows it.",
                            {"remedy_id": getattr(exc.job, "id", None)})
    except APIError as exc:
        return RemedyReport(f"No remedy run: {type(exc).__name__}: {exc}")


@click.command()
@click.argument("job_id")
@click.option("--attempts", "max_attempts", type=click.IntRange(1, 5), default=3, show_default=True,
              help="How many of the diagnosis' patches to try (a job's remedy is made once; later calls show it).")
@click.option("--wait/--no-wait", default=True, help="Wait until every attempt is settled.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_WAIT_TIMEOUT,
              show_default=True, help="Seconds to wait for the remedy.")
@click.option("--json", "as_json", is_flag=True, help="Print the remedy resource as JSON.")
@click.pass_context
def remedy(ctx: click.Context, job_id: str, max_attempts: int, wait: bool, timeout: float, as_json: bool) -> None:
    """Re-train JOB_ID with its diagnosis' top patches and say which one verifiably fixed it."""
    client: Client = ctx.find_object(Client)  # type: ignore[assignment]
    found = client.remedies.create(job_id, max_attempts=max_attempts)
    if wait:
        found = client.remedies.wait(job_id, timeout=timeout)
    if as_json:
        click.echo(json.dumps(found.raw, indent=2, default=str))
    elif found.done:
        click.echo(describe(found).text)
    else:
        click.echo(f"remedy {found.id}: {found.status}; " + ", ".join(f"{a.status}" for a in found.attempts))
