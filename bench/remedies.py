"""The remedy bar (issue 11): how often the diagnosis' first patch, and the best of its first
three, fix an unhealthy run.

Trains each case in-process exactly as a worker would (the engine, then the diagnosis:
``workers.local.train_and_diagnose``, as the engine tests do), takes
``core.remedy_outcome.candidate_patches(diagnosis, attempts)``, applies each patch to the
normalised request (``merge_patch`` + ``normalise``), re-trains, and judges with the same
functions the remedies service uses (``outcome``, ``is_fixed``, ``expectation_met``).

Sets: ``tune`` and ``held_out`` are the halves of bench/remedy_cases.json (made-up runs,
committed before the rules were tuned); ``held_out_2`` is a fresh set of made-up runs committed
after ``held_out`` had been seen (which made it tuning data) and before the rules changed again;
``public`` is tests/data/diagnosis-cases.json (the
shared public cases). A run that turns out healthy is listed as "not unhealthy" and left out
of the rates.

    .venv/bin/python bench/remedies.py --set tune|held_out|held_out_2|public|all [--attempts 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.remedy_outcome import candidate_patches, expectation_met, is_fixed, outcome, rates  # noqa: E402
from core.settings import Limits  # noqa: E402
from core.spec import merge_patch, normalise  # noqa: E402

GRID = ROOT / "bench" / "remedy_cases.json"
PUBLIC = ROOT / "tests" / "data" / "diagnosis-cases.json"
HEALTHY = "healthy"
GRID_SETS = ("tune", "held_out", "held_out_2")


def cases(which: str) -> list[dict]:
    """``{"set", "name", "request", "verdict"}`` per case of the chosen set(s)."""
    out = []
    if which in (*GRID_SETS, "all"):
        out += [{"set": c["set"], "name": c["name"], "request": c["request"], "verdict": c["verdict"]}
                for c in json.loads(GRID.read_text())["cases"] if which in (c["set"], "all")]
    if which in ("public", "all"):
        out += [{"set": "public", "name": c["name"], "request": c["request"], "verdict": c["expect"]["verdict"]}
                for c in json.loads(PUBLIC.read_text())["cases"]]
    return out


def train(request: dict) -> dict:
    """One training and its diagnosis, as the worker runs them; returns what the judge reads."""
    import torch

    from workers.local import train_and_diagnose

    torch.set_num_threads(1)
    started = time.monotonic()
    _, result, diagnosis = train_and_diagnose(request)
    return {"diagnosis": diagnosis, "rows": result.rows, "outcome": outcome(result.summary, diagnosis),
            "seconds": round(time.monotonic() - started, 2)}


def _normalised(raw: dict) -> dict:
    return normalise(raw, limits=Limits(), resolver=None)


def bench(selected: list[dict], attempts: int, workers: int) -> list[dict]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        requests = [_normalised(c["request"]) for c in selected]
        parents = list(pool.map(train, requests))
        children = []  # (case index, suggestion, patched request)
        for i, (request, parent) in enumerate(zip(requests, parents)):
            if parent["outcome"]["verdict"] == HEALTHY:
                continue
            for suggestion in candidate_patches(parent["diagnosis"], attempts):
                children.append((i, suggestion, _normalised(merge_patch(request, suggestion["patch"]))))
        trained = list(pool.map(train, [patched for _, _, patched in children]))
    results = []
    for i, (case, parent) in enumerate(zip(selected, parents)):
        before = parent["outcome"]
        tried = []
        for (j, suggestion, _), child in zip(children, trained):
            if j != i:
                continue
            tried.append({"patch": suggestion["patch"], "finding": suggestion["finding"],
                          "expect": suggestion.get("expect"), "after": child["outcome"],
                          "fixed": is_fixed(before, child["outcome"]),
                          "expectation_met": expectation_met(suggestion.get("expect"), child["rows"])})
        results.append({"set": case["set"], "name": case["name"], "expected_verdict": case["verdict"],
                        "verdict": before["verdict"], "before": before,
                        "findings": [f["code"] for f in parent["diagnosis"]["findings"]],
                        "caused_by": {f["code"]: f["caused_by"] for f in parent["diagnosis"]["findings"]
                                      if f.get("caused_by")},
                        "unhealthy": before["verdict"] != HEALTHY, "attempts": tried})
    return results


def _fit(o: dict) -> str:
    for key in ("train_accuracy", "train_r2"):
        if o.get(key) is not None:
            return f"{key.split('_')[1][:3]} {o[key]:.2f}/{o.get(key.replace('train', 'val')) or float('nan'):.2f}"
    return "non-finite"


def report(results: list[dict], attempts: int) -> dict:
    summary = {}
    for name in dict.fromkeys(r["set"] for r in results):
        rows = [r for r in results if r["set"] == name]
        print(f"\n== {name} ==")
        print(f"{'case':38} {'verdict':17} {'fit tr/val':15} attempts (patch -> fixed)")
        for r in rows:
            if not r["unhealthy"]:
                print(f"{r['name']:38} {'not unhealthy':17} {_fit(r['before']):15} (left out of the rates)")
                continue
            tries = "; ".join(f"{json.dumps(a['patch'], separators=(',', ':'))} -> "
                              f"{'FIXED' if a['fixed'] else 'no'} ({a['after']['verdict']}, {_fit(a['after'])})"
                              for a in r["attempts"]) or "(no patch)"
            print(f"{r['name']:38} {r['verdict']:17} {_fit(r['before']):15} {tries}")
        counted = [{"fixed": [a["fixed"] for a in r["attempts"]]} for r in rows if r["unhealthy"]]
        summary[name] = {**rates(counted), "not_unhealthy": [r["name"] for r in rows if not r["unhealthy"]]}
        s = summary[name]
        print(f"-- {name}: first patch fixed {s['first_fixed']}/{s['runs']} ({s['first_rate'] or 0:.0%}), "
              f"best of {attempts} fixed {s['best_fixed']}/{s['runs']} ({s['best_rate'] or 0:.0%}); "
              f"not unhealthy (excluded): {', '.join(s['not_unhealthy']) or 'none'}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="tune", choices=[*GRID_SETS, "public", "all"])
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", help="comma-separated case names (for looking at one case)")
    parser.add_argument("--json", help="write every result to this file")
    args = parser.parse_args()
    selected = cases(args.set)
    if args.only:
        selected = [c for c in selected if c["name"] in args.only.split(",")]
    started = time.monotonic()
    results = bench(selected, args.attempts, args.workers)
    summary = report(results, args.attempts)
    print(f"\n{len(selected)} cases, {time.monotonic() - started:.0f} s, {platform.machine()} "
          f"{platform.python_version()}, {args.workers} processes")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "results": results}, indent=1))


if __name__ == "__main__":
    main()
