"""Verified remedies: run a finished job's top suggested patches as child jobs, judge each child
with core/remedy_outcome.py (the judge the bench uses too), and name the best verified fix.

Torch-free and Flask-free: the API opens a remedy and starts its first children
(``POST /v1/jobs/{id}/remedies``); the worker that ran a child moves the remedy on when the child
ends, and the periodic recovery sweep moves on every running remedy, so a remedy still advances
after a crash or after a child was cancelled through the API while queued
(workers/remedy_advancer.py registers both in workers/parents.py).

An attempt's ``status``: ``pending`` (not started yet: waiting for a free slot of ``parallel``
or of the owner's active-jobs quota), ``started`` (its child is queued or running; the resource
shows the child's own status), then the child's final status once judged (``succeeded``,
``failed``, ``cancelled``), or ``invalid`` (the patched request does not validate any more) or
``skipped`` (another attempt fixed the problem first and ``stop_when_fixed`` is on).

Every decision is taken from a fresh read and written with a conditional update
(core/remedy_store.py); a child is made under an idempotency key naming its remedy and attempt,
so advancers racing each other make one child per attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from celery import Celery
from marshmallow import ValidationError

from core.child_jobs import start_child
from core.job_status import CANCELLED, FAILED, FINISHED, SUCCEEDED, utcnow
from core.jobstore import JobStore, UploadGone
from core.remedy_outcome import (HEALTHY, OVERFITTING, TRAINING_PROBLEM, candidate_patches, expectation_met,
                                 is_fixed, outcome)
from core.remedy_store import DONE, RemedyStore
from core.settings import Limits
from core.spec import DatasetResolver, merge_patch, normalise

log = logging.getLogger("trainrx.remedies")

PENDING, STARTED, INVALID, SKIPPED = "pending", "started", "invalid", "skipped"
SETTLED = (SUCCEEDED, FAILED, CANCELLED, INVALID, SKIPPED)
ADVANCE_TRIES = 5  # re-reads after losing a race to another advancer; the sweep catches anything left


class RemedyRefused(Exception):
    """The job cannot be remedied (the API answers 409 with this message)."""


@dataclass
class RemedyContext:
    """What opening and advancing remedies needs, on the API's side or a worker's."""

    store: JobStore
    remedies: RemedyStore
    celery: Celery
    limits: Limits
    max_active_jobs: int  # the owner's active-jobs quota, which children count in
    default_parallel: int  # children at once, for a remedy started by auto_remedy
    resolver_for: Callable[[str], DatasetResolver]  # an owner's upload resolver (patched requests are validated)
    publish_status: Callable[[dict], None]  # tell live event streams about a child cancelled here


def refusal(job: dict) -> str | None:
    """Why ``job`` cannot be remedied, or None."""
    if job["status"] not in FINISHED:
        return (f"The job is {job['status']}; a remedy starts from its final diagnosis: wait until it has "
                "finished.")
    if not job["request"].get("diagnose", True):
        return "The job ran with diagnose: false, so it has no diagnosis to take remedies from."
    verdict = (job["diagnosis"] or {}).get("verdict")
    if verdict is None:
        return "The job has no diagnosis verdict (it ended before its first epoch), so there is nothing to remedy."
    if verdict == HEALTHY:
        return "The job is healthy: its diagnosis found nothing to remedy."
    if verdict not in (TRAINING_PROBLEM, OVERFITTING):
        return f"The job's verdict {verdict!r} is not one a remedy can fix."
    return None


def child_request(parent: dict, patch: dict, limits: Limits, resolver: DatasetResolver) -> dict:
    """The parent's request with ``patch`` merged, normalised with the operator's limits; a child
    never inherits ``auto_remedy``. Raises ValidationError when the patched request is invalid."""
    return normalise(merge_patch(parent["request"], {**patch, "auto_remedy": None}), limits=limits,
                     resolver=resolver)


def open_remedy(ctx: RemedyContext, parent: dict, *, max_attempts: int, parallel: int,
                stop_when_fixed: bool = True) -> tuple[dict, bool]:
    """The parent's remedy, opened now with its first children started (created True), or the one
    it already has (False). Raises RemedyRefused naming why the job cannot be remedied."""
    existing = ctx.remedies.for_job(parent["id"], owner=None)
    if existing is not None:
        return existing, False
    reason = refusal(parent)
    if reason:
        raise RemedyRefused(reason)
    candidates = candidate_patches(parent["diagnosis"], limit=max_attempts)
    if not candidates:
        raise RemedyRefused("The diagnosis suggests no patch that could count as a fix (patches touching targets "
                            "or diagnose never do), so there is nothing to try.")
    resolver = ctx.resolver_for(parent["owner"])
    attempts = []
    for candidate in candidates:
        attempt = {"patch": candidate["patch"], "why": candidate.get("why"), "finding": candidate.get("finding"),
                   "expect": candidate.get("expect"), "job_id": None, "status": PENDING, "after": None,
                   "fixed": None, "expectation_met": None, "error": None}
        try:
            attempt["request"] = child_request(parent, candidate["patch"], ctx.limits, resolver)
        except ValidationError as exc:
            attempt.update(status=INVALID, error={"message": "The patched request is invalid.",
                                                  "errors": exc.messages})
        attempts.append(attempt)
    remedy, created = ctx.remedies.create(
        parent, max_attempts=max_attempts, options={"parallel": parallel, "stop_when_fixed": stop_when_fixed},
        before=outcome(parent["summary"], parent["diagnosis"]), attempts=attempts)
    if created:
        advance(ctx, remedy["id"])
        remedy = ctx.remedies.get(remedy["id"]) or remedy
    return remedy, created


def advance(ctx: RemedyContext, remedy_id: str) -> bool:
    """Judge the children that ended, start the next attempts, stop when fixed, finish when every
    attempt is settled. Safe to repeat and to race. Returns whether it changed the remedy."""
    for _ in range(ADVANCE_TRIES):
        remedy = ctx.remedies.get(remedy_id)
        if remedy is None or remedy["status"] == DONE:
            return False
        decided = _decide(ctx, remedy)
        if decided is None:
            return False
        values, to_cancel = decided
        if ctx.remedies.update_if(remedy_id, remedy["seq"], **values):
            for job_id in to_cancel:
                if ctx.store.request_cancel(job_id, owner=None) is not None:
                    ctx.publish_status(ctx.store.get(job_id, owner=None))
            return True
    log.info("remedy %s: lost %d races in a row; the next advance moves it on", remedy_id, ADVANCE_TRIES)
    return False


def _decide(ctx: RemedyContext, remedy: dict) -> tuple[dict, list[str]] | None:
    """The remedy's next state (the values to write, and the children to cancel once written), or
    None when nothing changes."""
    attempts = [dict(a) for a in remedy["attempts"]]
    children = ctx.store.remedy_children(remedy["id"])
    changed = False
    for attempt in attempts:
        if attempt["status"] != STARTED:
            continue
        child = children.get(attempt["job_id"])
        if child is None:  # discarded by a racing advancer over the quota: try it again
            attempt.update(status=PENDING, job_id=None)
            changed = True
        elif child["status"] in FINISHED:
            _judge(ctx, attempt, child, remedy["before"])
            changed = True
    to_cancel: list[str] = []
    if remedy["options"].get("stop_when_fixed", True) and any(a["fixed"] for a in attempts):
        for attempt in attempts:
            if attempt["status"] == PENDING:
                attempt["status"] = SKIPPED
                changed = True
            elif attempt["status"] == STARTED:
                attempt["status"] = CANCELLED
                to_cancel.append(attempt["job_id"])
                changed = True
    else:
        changed = _start_next(ctx, remedy, attempts) or changed
    settled = all(a["status"] in SETTLED for a in attempts)  # also when none could run (all invalid)
    if not changed and not settled:
        return None
    values = {"attempts": attempts, "best": best_attempt(remedy["before"], attempts, children)}
    if settled:
        values.update(status=DONE, finished_at=utcnow())
    return values, to_cancel


def _start_next(ctx: RemedyContext, remedy: dict, attempts: list[dict]) -> bool:
    room = remedy["options"].get("parallel", 1) - sum(1 for a in attempts if a["status"] == STARTED)
    parent = ctx.store.get(remedy["job_id"], owner=None)
    started = False
    for index, attempt in enumerate(attempts):
        if room <= 0 or parent is None:
            break
        if attempt["status"] != PENDING:
            continue
        try:
            child = start_child(ctx.store, ctx.celery, attempt["request"], parent=parent, remedy_id=remedy["id"],
                                key=f"trainrx-remedy-{remedy['id']}-{index}", max_active=ctx.max_active_jobs)
        except UploadGone as exc:
            attempt.update(status=INVALID, error={"message": str(exc)})
            started = True
            continue
        if child is None:  # the owner's quota is full: wait for the next advance
            break
        attempt.update(status=STARTED, job_id=child["id"])
        room -= 1
        started = True
    if parent is None:  # the parent was deleted: what was not started never will be
        for attempt in attempts:
            if attempt["status"] == PENDING:
                attempt.update(status=SKIPPED, error={"message": "The parent job was deleted."})
                started = True
    return started


def _judge(ctx: RemedyContext, attempt: dict, child: dict, before: dict) -> None:
    after = outcome(child["summary"], child["diagnosis"]) if child["summary"] is not None else None
    fixed = None
    if child["status"] != CANCELLED:  # a cancelled child was not let finish: it is not judged
        fixed = after is not None and is_fixed(before, after)
    met = expectation_met(attempt.get("expect"), ctx.store.epochs(child["id"])) if after is not None else None
    attempt.update(status=child["status"], after=after, fixed=fixed, expectation_met=met)


def target_metric(before: dict, after: dict) -> float | None:
    """How good a fixed attempt is on what its finding was about: the training score for a
    training problem, the validation score (else minus the validation loss) for overfitting."""
    split = "train" if before.get("verdict") == TRAINING_PROBLEM else "val"
    for key in (f"{split}_accuracy", f"{split}_r2"):
        if after.get(key) is not None:
            return after[key]
    if split == "val" and after.get("val_loss") is not None:
        return -after["val_loss"]
    return None


def best_attempt(before: dict, attempts: list[dict], children: dict[str, dict]) -> dict | None:
    """The fixed attempt with the best target metric (ties: the earliest), with its child's full
    normalised request."""
    best, best_value = None, None
    for attempt in attempts:
        if not attempt.get("fixed"):
            continue
        value = target_metric(before, attempt["after"] or {})
        if best is None or (value is not None and (best_value is None or value > best_value)):
            best, best_value = attempt, value
    if best is None:
        return None
    child = children.get(best["job_id"])
    return {"job_id": best["job_id"], "patch": best["patch"],
            "request": child["request"] if child is not None else best.get("request")}


def advance_all(ctx: RemedyContext) -> int:
    """Move on every running remedy that needs it, and open the auto_remedy of jobs whose worker
    ended before it could (the periodic sweep); returns how many moved."""
    moved = 0
    for job in ctx.store.auto_remedies_due():
        try:
            moved += open_auto_remedy(ctx, job)
        except Exception:
            log.exception("job %s: opening its auto_remedy failed; the next sweep retries", job["id"])
    for remedy_id in ctx.remedies.running_ids():
        try:
            moved += advance(ctx, remedy_id)
        except Exception:  # one broken remedy must not hold up the others
            log.exception("remedy %s: advancing failed; the next sweep retries", remedy_id)
    return moved


def job_ended(ctx: RemedyContext, job: dict) -> None:
    """``job`` ended on a worker: move on the remedy it is an attempt of, and open its own remedy
    when it asked for one (``auto_remedy``)."""
    if job.get("remedy_id"):
        advance(ctx, job["remedy_id"])
    if job.get("auto_remedy_pending") and job["status"] in FINISHED:
        open_auto_remedy(ctx, job)


def open_auto_remedy(ctx: RemedyContext, job: dict) -> bool:
    """Open the remedy a finished job asked for with ``auto_remedy``, when its final verdict is
    not healthy (a cancelled job gets none: someone stopped it). Decided once: a refusal is final."""
    auto = job["request"].get("auto_remedy") or {}
    try:
        if job["status"] == CANCELLED:
            raise RemedyRefused("the job was cancelled")
        _, created = open_remedy(ctx, job, max_attempts=auto.get("max_attempts", 3), parallel=ctx.default_parallel)
        return created
    except RemedyRefused as exc:
        log.info("job %s: no automatic remedy: %s", job["id"], exc)
        ctx.store.auto_remedy_decided(job["id"])
        return False
