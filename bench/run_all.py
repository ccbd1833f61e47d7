"""`make bench`: the issue-12 table's CPU benchmarks, one after another, in a few minutes.

    .venv/bin/python bench/run_all.py [--only engine,api]

Each script prints its own rows of the table (figure, trainrx, reference, ratio, min-max, bar,
goal). A script listed here that is not in this checkout is named and skipped, so that the list
can hold the benchmarks of work not merged yet; one that fails makes the whole run fail.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

SCRIPTS = {  # name -> the script and its quick arguments, in the order they run
    "engine": ["engine.py", "--quick"],
    "job_overhead": ["job_overhead.py", "--quick"],
    "api": ["api.py", "--quick"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(SCRIPTS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(SCRIPTS)}")
    failed = []
    for name in names:
        script, *script_args = SCRIPTS[name]
        path = BENCH / script
        if not path.exists():
            print(f"== {name}: bench/{script} is not in this checkout; skipped\n", flush=True)
            continue
        print(f"== {name}: bench/{script} {' '.join(script_args)}", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, str(path), *script_args], cwd=BENCH.parent)
        print(f"== {name}: exit {rc} after {time.monotonic() - started:.0f} s\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
