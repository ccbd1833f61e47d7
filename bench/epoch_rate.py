"""Does an epoch cost the same at epoch 10,000 as at epoch 1?

Runs one long job (moons, 64 training samples: one step per epoch, so the per-epoch
bookkeeping dominates) on a real worker process with its own embedded Redis and
SQLite, polls the job's progress, and prints the epochs/s of the first and the
last tenth of the run side by side, and their ratio.

    .venv/bin/python bench/epoch_rate.py [--epochs 10000] [--diagnose/--no-diagnose]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.db import make_engine  # noqa: E402
from core.embedded_redis import EmbeddedRedis  # noqa: E402
from core.jobstore import JobStore  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.queueing import make_celery, publish_job  # noqa: E402
from core.settings import Limits, Settings  # noqa: E402
from core.spec import normalise  # noqa: E402


def rate(samples: list[tuple[float, int]], lo: int, hi: int) -> float:
    """Epochs per second between the first samples at or past epochs ``lo`` and ``hi``."""
    t0 = next(t for t, e in samples if e >= lo)
    e0 = next(e for t, e in samples if e >= lo)
    t1 = next(t for t, e in samples if e >= hi)
    e1 = next(e for t, e in samples if e >= hi)
    return (e1 - e0) / (t1 - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10_000)
    parser.add_argument("--diagnose", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="trainrx-epochs-"))
    redis = EmbeddedRedis(root / "redis")
    settings = Settings(data_dir=root, database_url=f"sqlite:///{root / 'trainrx.db'}", redis_url=redis.start(),
                        limits=Limits())
    engine = make_engine(settings.database_url)
    upgrade(engine)
    store = JobStore(engine)
    env = dict(os.environ, TRAINRX_DATA_DIR=str(root), DATABASE_URL=settings.database_url,
               REDIS_URL=settings.redis_url, PYTHONPATH=str(ROOT), TRAINRX_TORCH_THREADS="1",
               TRAINRX_CHECKPOINT_EVERY_S="60", TRAINRX_CHECKPOINT_EVERY_EPOCHS="0")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "cpu",
                               "--pool", "threads", "--concurrency", "1", "-n", "bench@%h", "--without-gossip",
                               "--without-mingle", "-l", "WARNING"], cwd=ROOT, env=env,
                              stdout=open(root / "worker.log", "w"), stderr=subprocess.STDOUT)
    try:
        request = normalise({"dataset": {"name": "moons", "train_samples": 64}, "architecture": {"hidden_layers": [8]},
                             "epochs": args.epochs, "batch_size": 64, "diagnose": args.diagnose},
                            limits=settings.limits, resolver=None)
        job, _ = store.create(request, "cpu", owner="bench")
        publish_job(make_celery(settings), job["id"], "cpu")
        samples: list[tuple[float, int]] = []
        while True:
            row = store.get(job["id"], owner=None)
            samples.append((time.monotonic(), row["progress_epoch"]))
            if row["status"] not in ("queued", "running"):
                break
            time.sleep(0.25)
        tenth = args.epochs // 10
        first, last = rate(samples, 1, tenth), rate(samples, args.epochs - tenth, args.epochs)
        print(f"job {row['status']}, {args.epochs} epochs, probes {'on' if args.diagnose else 'off'}")
        print(f"{'epochs':>16} {'epochs/s':>10}")
        print(f"{f'1-{tenth}':>16} {first:10.1f}")
        print(f"{f'{args.epochs - tenth}-{args.epochs}':>16} {last:10.1f}")
        print(f"last / first: {last / first:.2f}")
        return 0 if row["status"] == "succeeded" else 1
    finally:
        worker.terminate()
        worker.wait(30)
        engine.dispose()
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
