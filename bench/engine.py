"""The engine against a careful hand-written PyTorch loop, side by side in one run.

    .venv/bin/python bench/engine.py [--quick] [--repeats 5] [--epochs 40] [--threads N]
                                     [--device cpu|cuda] [--no-scaling] [--no-workers]

Figures (issue 12), each a ratio measured A/B interleaved in this one run (the order of A and B
alternates between repetitions), median of the repetitions with the min-max of the per-repetition
ratios:

- ``train_s`` of the engine (digits, 64->512->512->10, batch 64, Adam, probes on) / the hand loop
  below (resident tensors, a random permutation per epoch, evaluation of the train and validation
  splits after every epoch): bar <= 1.0, goal <= 0.8;
- the engine with probes on / off: bar <= 1.05, goal <= 1.02.

Then how the cost grows with dataset size, width and depth (engine and hand loop, seconds per
epoch), and how throughput (trainings per minute) grows with 1, 2 and 4 training processes run
in parallel, each with one torch thread.

Both loops train on the same resident tensors with the same thread count; neither takes a host
sync inside the step. The hand loop is the bar: what a user would write by hand who knows not to
call ``.item()`` per step.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from core.datasets import BUILTIN_DATASETS, load_builtin  # noqa: E402
from core.settings import Limits  # noqa: E402
from core.spec import normalise  # noqa: E402
from workers.engine.config import JobConfig  # noqa: E402
from workers.engine.data import DeviceData, prepare  # noqa: E402
from workers.engine.loop import run  # noqa: E402

HEADLINE = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [512, 512]}, "batch_size": 64,
            "optimizer": {"name": "adam"}, "diagnose": True}


def request(epochs: int, **changes) -> dict:
    raw = {**HEADLINE, "epochs": epochs, **changes}
    return normalise(raw, limits=Limits(), resolver=None)


def device_data(req: dict, device: torch.device) -> tuple[JobConfig, DeviceData]:
    config = JobConfig.from_request(req)
    name = req["dataset"]["name"]
    return config, prepare(load_builtin(name), config.dataset, BUILTIN_DATASETS[name].classes, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def engine_s(config: JobConfig, data: DeviceData) -> float:
    """The engine's own ``train_s`` (what a job reports), device work included."""
    return run(config, data).train_s


def hand_model(features: int, widths: list[int], outputs: int) -> nn.Module:
    layers, fan_in = [], features
    for width in widths:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, outputs))


@torch.inference_mode()
def hand_evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    loss, correct = F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(1) == y).sum()
    model.train()
    values = torch.stack([loss, correct.to(loss.dtype)]).tolist()  # one sync
    return values[0] / len(y), values[1] / len(y)


def hand_s(config: JobConfig, data: DeviceData, autocast: torch.dtype | None = None) -> float:
    """A careful hand-written loop over the same resident tensors; its wall time, device work included."""
    device = data.x_train.device
    torch.manual_seed(config.seed)
    model = hand_model(data.features, list(config.architecture.hidden_layers), data.outputs).to(device)
    spec = config.optimizer
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate, betas=spec.betas, eps=spec.eps)
    x, y, n, batch = data.x_train, data.y_train, data.x_train.shape[0], config.batch_size
    _sync(device)
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        hand_evaluate(model, data.x_train, data.y_train)
        hand_evaluate(model, data.x_val, data.y_val)
    _sync(device)
    return time.perf_counter() - start


def interleaved(a, b, repeats: int) -> tuple[list[float], list[float]]:
    """``repeats`` timings of each, A/B then B/A alternately, after one warm-up of each."""
    a(), b()
    times_a, times_b = [], []
    for rep in range(repeats):
        pair = [(a, times_a), (b, times_b)]
        for fn, out in (pair if rep % 2 == 0 else pair[::-1]):
            out.append(fn())
        print(f"  repetition {rep + 1}/{repeats}: {times_a[-1]:.2f} s / {times_b[-1]:.2f} s", file=sys.stderr,
              flush=True)
    return times_a, times_b


def figure(name: str, times_a: list[float], times_b: list[float], bar: str, goal: str) -> dict:
    ratios = [x / y for x, y in zip(times_a, times_b)]
    return {"figure": name, "a": statistics.median(times_a), "b": statistics.median(times_b),
            "ratio": statistics.median(ratios), "lo": min(ratios), "hi": max(ratios), "bar": bar, "goal": goal}


def print_table(rows: list[dict], a_name: str = "trainrx", b_name: str = "reference") -> None:
    print(f"| figure | {a_name} | {b_name} | ratio (median) | ratio min-max | bar | goal |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['figure']} | {r['a']:.3f} s | {r['b']:.3f} s | **{r['ratio']:.2f}x** | "
              f"{r['lo']:.2f}-{r['hi']:.2f} | {r['bar']} | {r['goal']} |")
    sys.stdout.flush()


def headline(epochs: int, repeats: int, device: torch.device) -> list[dict]:
    config, data = device_data(request(epochs), device)
    off_config, _ = device_data(request(epochs, diagnose=False), device)
    engine, hand = interleaved(lambda: engine_s(config, data), lambda: hand_s(config, data), repeats)
    on, off = interleaved(lambda: engine_s(config, data), lambda: engine_s(off_config, data), repeats)
    return [figure(f"`train_s`, digits 64-512-512-10, batch 64, Adam, {epochs} epochs, probes on "
                   "/ hand-written loop", engine, hand, "<= 1.0", "<= 0.8"),
            figure(f"engine probes on / off (same job; 'reference' = probes off)", on, off, "<= 1.05", "<= 1.02")]


SCALING = [  # (label, request changes): one axis at a time around a small base
    ("digits 360 rows, 2x512", {"dataset": {"name": "digits", "train_samples": 360}}),
    ("digits 720 rows, 2x512", {"dataset": {"name": "digits", "train_samples": 720}}),
    ("digits all (1437) rows, 2x512", {}),
    ("width 128 (2x128)", {"architecture": {"hidden_layers": [128, 128]}}),
    ("width 1024 (2x1024)", {"architecture": {"hidden_layers": [1024, 1024]}}),
    ("depth 1 (1x512)", {"architecture": {"hidden_layers": [512]}}),
    ("depth 4 (4x512)", {"architecture": {"hidden_layers": [512] * 4}}),
]


def scaling(epochs: int, repeats: int, device: torch.device) -> None:
    print(f"\nScaling ({epochs} epochs, probes on, median of {repeats}, s per epoch):\n")
    print("| configuration | train rows | engine s/epoch | hand s/epoch | engine / hand |")
    print("|---|---|---|---|---|")
    for label, changes in SCALING:
        config, data = device_data(request(epochs, **changes), device)
        engine, hand = interleaved(lambda: engine_s(config, data), lambda: hand_s(config, data), repeats)
        ratios = [e / h for e, h in zip(engine, hand)]
        print(f"| {label} | {data.x_train.shape[0]} | {statistics.median(engine) / epochs:.4f} | "
              f"{statistics.median(hand) / epochs:.4f} | {statistics.median(ratios):.2f} |")
        sys.stdout.flush()


def _worker(args: tuple[int, int]) -> float:
    epochs, trainings = args
    torch.set_num_threads(1)
    config, data = device_data(request(epochs), torch.device("cpu"))
    for _ in range(trainings):
        engine_s(config, data)
    return time.perf_counter()


def workers(epochs: int, trainings: int) -> None:
    """Trainings per minute with 1, 2, 4 processes training at once (one torch thread each):
    the throughput of as many single-threaded workers on this machine."""
    print(f"\nThroughput: processes training in parallel, each {trainings} trainings of the headline job "
          f"({epochs} epochs), one torch thread each; {os.cpu_count()} CPUs:\n")
    print("| processes | trainings | wall s | trainings / min | vs 1 process |")
    print("|---|---|---|---|---|")
    ctx = multiprocessing.get_context("spawn")
    base = None
    for procs in (1, 2, 4):
        with ctx.Pool(procs) as pool:
            pool.map(_worker, [(1, 1)] * procs)  # imports and data, not counted
            start = time.perf_counter()
            pool.map(_worker, [(epochs, trainings)] * procs)
            wall = time.perf_counter() - start
        rate = procs * trainings / wall * 60
        base = base or rate
        print(f"| {procs} | {procs * trainings} | {wall:.2f} | {rate:.1f} | {rate / base:.2f}x |")
        sys.stdout.flush()


def machine(device: torch.device) -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load}; "
            f"python {platform.python_version()}, torch {torch.__version__}, device {device}, "
            f"torch threads {torch.get_num_threads()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repetitions (make bench)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--threads", type=int, help="torch threads for both loops (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-workers", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (10 if args.quick else 40)
    repeats = args.repeats or 5
    device = torch.device(args.device)
    print(f"bench/engine.py: {machine(device)}; {repeats} repetitions, A/B interleaved\n")
    print_table(headline(epochs, repeats, device))
    if not args.no_scaling:
        scaling(max(2, epochs // 4), 3 if args.quick else repeats, device)
    if not args.no_workers and device.type == "cpu":
        workers(max(2, epochs // 4), 1 if args.quick else 2)
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
