"""A sweep as GET /v1/sweeps/{id} shows it: its children, the results table (one row per
combination, mean and sample std over its seeds) and the comparison diagnosis.

Computed on every read from the plan and the children's rows: the table is never stale, and a
deleted child simply drops out of it. Pure Python.
"""

from __future__ import annotations

import statistics
from collections import Counter
from core.jobstore import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from core.sweep_comparison import compare

PENDING, DELETED, NOT_CREATED = "pending", "deleted", "not_created"
COUNTED = (PENDING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


def metric_keys(task: str) -> tuple[str, ...]:
    score = "r2" if task == "regression" else "accuracy"
    return "train_loss", "val_loss", f"train_{score}", f"val_{score}"


def stats(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for one value; null for none)."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def resource(sweep: dict) -> dict:
    """The sweep row (with its plan) as the API returns it, with ``children`` read from its jobs
    (``sweep["jobs"]``: the rows SweepStore.children returns)."""
    plan, running = sweep["plan"], sweep["status"] == "running"
    by_index = {job["sweep_index"]: job for job in sweep["jobs"]}
    counts = dict.fromkeys(COUNTED, 0)
    children = []
    for child in plan:
        job = by_index.get(child["index"])
        if job is not None:
            status = job["status"]
        elif child["index"] >= sweep["next_index"]:
            status = PENDING if running else NOT_CREATED
        else:
            status = DELETED
        if status in counts:
            counts[status] += 1
        children.append({"index": child["index"], "job_id": job["id"] if job else None, "values": child["values"],
                         "seed": child["seed"], "status": status})
    rows, requests = results(plan, by_index)
    return {**{k: sweep[k] for k in ("id", "name", "status", "size", "max_parallel", "created_at", "finished_at",
                                     "spec", "owner")},
            "counts": counts, "children": children, "results": rows, "comparison": compare(rows, requests)}


def results(plan: list[dict], by_index: dict[int, dict]) -> tuple[list[dict], list[dict]]:
    """One row per combination, and each combination's request (its first seed's)."""
    groups: dict[int, list[dict]] = {}
    for child in plan:
        groups.setdefault(child["combination"], []).append(child)
    rows, requests = [], []
    for members in groups.values():
        request = members[0]["request"]
        keys = metric_keys(request["dataset"].get("task", "classification"))
        jobs = [by_index[c["index"]] for c in members if c["index"] in by_index]
        done = [job for job in jobs if job["status"] == SUCCEEDED]
        summaries = [job["summary"] or {} for job in done]
        verdicts = Counter(v for job in done if (v := (job["diagnosis"] or {}).get("verdict")))
        rows.append({
            "combination": members[0]["combination"],
            "values": members[0]["values"],
            "seeds": [c["seed"] for c in members],
            "job_ids": [job["id"] for job in jobs],
            "finished": len(done),
            "metrics": {key: stats([s.get(key) for s in summaries]) for key in keys},
            "verdicts": dict(verdicts),
            "verdict": verdicts.most_common(1)[0][0] if verdicts else None,
            "best_epoch": stats([s.get("best_epoch") for s in summaries]),
            "time_s": stats([(job["timings"] or {}).get("train_s") for job in done]),
        })
        requests.append(request)
    return rows, requests

