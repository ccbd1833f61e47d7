"""One Celery worker process per GPU: ``python -m workers.gpu_workers --queue gpu``
(the compose file's worker-gpu service).

Worker *i* sees only GPU *i* (``CUDA_VISIBLE_DEVICES=i``) and runs one job at a
time, named ``gpu<i>@<host>``. SIGTERM and SIGINT go to every worker (each hands
its running job back to the queue, as a lone worker does); when one worker dies,
the others are stopped too and the exit code is its, so that the container's
restart policy starts the set again.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def worker_command(index: int, queue: str, loglevel: str = "INFO") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue, "--pool", "threads",
            "--concurrency", "1", "-n", f"gpu{index}@%h", "--without-gossip", "--without-mingle",
            "--loglevel", loglevel]


def worker_env(index: int) -> dict:
    return dict(os.environ, CUDA_VISIBLE_DEVICES=str(index))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.gpu_workers", description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default="gpu")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    count = gpu_count()
    if count == 0:
        print("trainrx: no GPU is visible to this container; is the NVIDIA container toolkit installed?",
              file=sys.stderr)
        return 1
    procs = [subprocess.Popen(worker_command(i, args.queue, args.loglevel), env=worker_env(i)) for i in range(count)]

    def forward(signum, frame) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(proc.poll() is None for proc in procs):
        time.sleep(1)
    first = next(proc for proc in procs if proc.poll() is not None)
    forward(signal.SIGTERM, None)
    for proc in procs:
        proc.wait()
    return first.returncode


if __name__ == "__main__":
    sys.exit(main())
