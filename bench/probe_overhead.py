"""Probe overhead: the same training with probes on and off, side by side.

    .venv/bin/python bench/probe_overhead.py [--repeats 5] [--device cpu|cuda]

Runs each configuration with "diagnose": true and false, interleaved, and
reports the median training time of each and their ratio. The target is a
ratio within 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.datasets import BUILTIN_DATASETS, load_builtin  # noqa: E402
from core.settings import Limits  # noqa: E402
from core.spec import normalise  # noqa: E402
from workers.engine.config import JobConfig  # noqa: E402
from workers.engine.data import prepare  # noqa: E402
from workers.engine.loop import run  # noqa: E402

CONFIGS = {
    "digits 2x256 relu adam, 10 epochs": {"dataset": {"name": "digits"},
                                          "architecture": {"hidden_layers": [256, 256]}, "epochs": 10},
    "mnist1d 2x128 relu adam, 10 epochs": {"dataset": {"name": "mnist1d"},
                                           "architecture": {"hidden_layers": [128, 128]}, "epochs": 10},
    "digits 8x100 sigmoid sgd, 10 epochs": {"dataset": {"name": "digits"},
                                            "architecture": {"hidden_layers": [100] * 8},
                                            "activation": "sigmoid", "optimizer": {"name": "sgd",
                                                                                   "learning_rate": 0.1},
                                            "epochs": 10},
    "spirals 3x64 relu adam bs 32, 20 epochs": {"dataset": {"name": "spirals"},
                                                "architecture": {"hidden_layers": [64] * 3},
                                                "batch_size": 32, "epochs": 20},
}


def timed(request: dict, device: torch.device) -> float:
    meta = BUILTIN_DATASETS[request["dataset"]["name"]]
    config = JobConfig.from_request(request)
    data = prepare(load_builtin(meta.name), config.dataset, meta.classes, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(config, data)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"{args.repeats} repeats (interleaved)\n")
    print(f"{'configuration':42s} {'probes off':>11s} {'probes on':>11s} {'on/off':>8s}")
    for name, raw in CONFIGS.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        for diagnose in (True, False):  # warm-up, not counted
            timed(normalise({**raw, "diagnose": diagnose}, limits=Limits(), resolver=None), device)
        for _ in range(args.repeats):
            for diagnose in (False, True):
                times[diagnose].append(timed(normalise({**raw, "diagnose": diagnose}, limits=Limits(), resolver=None),
                                              device))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:42s} {off:10.3f}s {on:10.3f}s {on / off:8.3f}")


if __name__ == "__main__":
    main()
