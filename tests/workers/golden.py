"""Golden curves: existing requests whose whole run (curves rows, summaries, probes, log lines and
the final weights) was recorded on the engine as it stood before the issue-10 refactor (one network
definition, typed config, CNNs, regression). ``tests/workers/test_golden.py`` holds the engine to
them bit for bit on CPU.

The fixture is data, not code: ``tests/data/golden_curves.json``. Re-recording it would make the
test pass by definition, so it is never done to fix a failure; ``python -m tests.workers.golden``
only writes it when the file is absent.

Each request is a normalised request as ``core.spec.normalise`` returned it then, so it lacks the
keys added since (``architecture.type``, ``dataset.task``, ``loss``...): the engine must read such
a request exactly as before, like a job queued before an upgrade.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from core.datasets import BUILTIN_DATASETS, DatasetArrays, load_builtin
from core.settings import Limits
from core.spec import normalise
from workers.engine import loop
from workers.engine.config import JobConfig
from workers.engine.data import prepare

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "golden_curves.json"
# The same runs recorded on other CPUs: float kernels (vector width, BLAS code paths) round
# differently from one CPU kind to another, so "bit for bit" holds per CPU kind only.
MACHINE_FIXTURES = FIXTURE.parent / "golden_curves_by_cpu"
RECORDED_THREADS = 2  # torch's intra-op threads when the fixture was recorded (the 2-core machines' default)


def _request(**fields) -> dict:
    return normalise(fields, limits=Limits(), resolver=None)


def _as_upload(request: dict, scale: str) -> dict:
    """The request as it would read for an upload of the same rows (what normalise gives for
    ``dataset.id``): upload jobs may scale their inputs, built-ins may not."""
    dataset = {key: value for key, value in request["dataset"].items() if key != "name"}
    return {**request, "dataset": {"id": "golden-upload", **dataset, "scale": scale}}


# name -> (request, data): data names a built-in, optionally its rows in raw units like an upload's
# ("affine": x * 7 - 3, preprocessing none) and a test set cut from its last rows.
CASES: dict[str, tuple[dict, dict]] = {
    "sigmoid-sgd-moons": (
        _request(dataset={"name": "moons", "train_samples": 200}, architecture={"hidden_layers": [8, 8]},
                 activation="sigmoid", optimizer={"name": "sgd", "learning_rate": 0.5}, batch_size=16,
                 epochs=3),
        {"builtin": "moons"}),
    "tanh-momentum-l1-no-probes": (
        _request(dataset={"name": "moons", "train_samples": 200}, architecture={"hidden_layers": [16]},
                 activation="tanh", optimizer={"name": "momentum", "learning_rate": 0.05, "momentum": 0.9},
                 regularization={"l1": 0.001}, batch_size=32, epochs=3, diagnose=False),
        {"builtin": "moons"}),
    "relu-batchnorm-adam-spirals": (
        _request(dataset={"name": "spirals"}, architecture={"hidden_layers": [16, 16], "batch_norm": True},
                 activation="relu", optimizer={"name": "adam", "learning_rate": 0.01}, batch_size=33, epochs=3),
        {"builtin": "spirals"}),
    "leaky-residual-dropout-nesterov": (
        _request(dataset={"name": "spirals", "validation_split": 0.3, "split_seed": 4},
                 architecture={"hidden_layers": [12, 12, 12], "residual": True, "init": "kaiming_uniform"},
                 activation={"name": "leaky_relu", "negative_slope": 0.1}, regularization={"dropout": 0.2},
                 optimizer={"name": "nesterov", "learning_rate": 0.05, "momentum": 0.8}, batch_size=64,
                 epochs=3, seed=3),
        {"builtin": "spirals"}),
    "prelu-batchnorm-residual-rmsprop-l2-digits": (
        _request(dataset={"name": "digits", "train_samples": 300},
                 architecture={"hidden_layers": [32, 32], "batch_norm": True, "residual": True},
                 activation="prelu", regularization={"l2": 0.01},
                 optimizer={"name": "rmsprop", "learning_rate": 0.001}, batch_size=32, epochs=3),
        {"builtin": "digits"}),
    "maxout-adagrad-xavier-digits": (
        _request(dataset={"name": "digits", "train_samples": 250},
                 architecture={"hidden_layers": [16, 8], "init": "xavier_uniform"},
                 activation={"name": "maxout", "pieces": 3}, optimizer={"name": "adagrad", "learning_rate": 0.05},
                 batch_size=25, epochs=3),
        {"builtin": "digits"}),
    "early-stopping-restore-best": (
        _request(dataset={"name": "moons", "train_samples": 200}, architecture={"hidden_layers": [8, 8]},
                 optimizer={"name": "adam", "learning_rate": 0.2}, patience=2, epochs=30, batch_size=16,
                 early_stopping={"monitor": "val_loss", "restore_best": True}),
        {"builtin": "moons"}),
    "gelu-adamw-early-stopping-on-accuracy": (
        _request(dataset={"name": "digits", "train_samples": 200}, architecture={"hidden_layers": [24]},
                 activation="gelu", optimizer={"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.05},
                 patience=1, epochs=12, batch_size=20,
                 early_stopping={"monitor": "val_accuracy", "restore_best": False, "min_delta": 0.01}),
        {"builtin": "digits"}),
    "upload-standard-elu-kaiming-test-set": (
        _as_upload(_request(dataset={"name": "moons"}, architecture={"hidden_layers": [10, 10],
                                                                     "init": "kaiming_normal"},
                            activation="elu", optimizer={"name": "adam", "learning_rate": 0.01}, batch_size=50,
                            epochs=3, regularization={"dropout": 0.1, "l2": 0.001}), "standard"),
        {"builtin": "moons", "affine": True, "test_rows": 100}),
    "upload-minmax-selu-orthogonal": (
        _as_upload(_request(dataset={"name": "spirals", "train_samples": 400},
                            architecture={"hidden_layers": [16, 16], "init": "orthogonal"}, activation="selu",
                            optimizer={"name": "sgd", "learning_rate": 0.1}, batch_size=40, epochs=3), "minmax"),
        {"builtin": "spirals", "affine": True}),
    "silu-batchnorm-batch-of-one-left-over": (
        _request(dataset={"name": "moons", "train_samples": 161}, architecture={"hidden_layers": [6],
                                                                                "batch_norm": True},
                 activation="silu", optimizer={"name": "momentum", "learning_rate": 0.1, "momentum": 0.5},
                 batch_size=32, epochs=2),
        {"builtin": "moons"}),
    "diverging-elu-sgd": (
        _request(dataset={"name": "digits", "train_samples": 300}, architecture={"hidden_layers": [64, 64]},
                 activation="elu", optimizer={"name": "sgd", "learning_rate": 100.0}, epochs=5),
        {"builtin": "digits"}),
}


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> DatasetArrays:
    return load_builtin(name)


def arrays_for(data: dict) -> tuple[DatasetArrays, int]:
    """The rows a case trains on, and its class count."""
    arrays = _builtin(data["builtin"])
    if data.get("affine"):  # raw units, as an upload would bring them
        arrays = dataclasses.replace(arrays, x=(arrays.x * np.float32(7.0) - np.float32(3.0)).astype(np.float32),
                                     preprocessing={"method": "none"})
    cut = data.get("test_rows")
    if cut:
        arrays = dataclasses.replace(arrays, x=arrays.x[:-cut], y=arrays.y[:-cut],
                                     x_test=arrays.x[-cut:], y_test=arrays.y[-cut:])
    return arrays, BUILTIN_DATASETS[data["builtin"]].classes


def weights_digest(model: torch.nn.Module) -> dict[str, str]:
    """SHA-256 of every tensor of the state dict, by name."""
    return {key: hashlib.sha256(value.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for key, value in model.state_dict().items()}


def record(result, hooks) -> dict:
    """What a run is compared on: everything it reports, and the weights it returns."""
    probes = result.probes
    return {
        "rows": result.rows, "summary": result.summary, "stop_reason": result.stop_reason,
        "epoch_summaries": hooks.summaries, "log": hooks.lines,
        "steps": probes.steps if probes else None, "initial": probes.initial if probes else None,
        "weights": weights_digest(result.model),
    }


class Recording(loop.NoHooks):
    def __init__(self) -> None:
        self.summaries: list[dict] = []
        self.lines: list[str] = []

    def on_epoch(self, row: dict, summary: dict, probes) -> None:
        self.summaries.append(summary)

    def log(self, line: str) -> None:
        self.lines.append(line)


def run_case(request: dict, data: dict) -> dict:
    arrays, classes = arrays_for(data)
    hooks = Recording()
    config = JobConfig.from_request(request)
    result = loop.run(config, prepare(arrays, config.dataset, classes, torch.device("cpu")), hooks)
    return json.loads(json.dumps(record(result, hooks), allow_nan=False))



def cpu_kind() -> str:
    """What decides the last bits of a CPU run: architecture, vendor, torch's vector ISA, torch."""
    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("vendor_id", "CPU implementer")):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{platform.machine()}-{vendor}-{capability}-torch{torch.__version__}".replace("/", "_")


def machine_fixture(kind: str | None = None) -> Path:
    return MACHINE_FIXTURES / f"{kind or cpu_kind()}.json"


def _record_this_cpu() -> None:
    """Record the fixture's runs for this CPU kind, from the engine checked out now. Only for an
    engine known to reproduce the original recording bit for bit (on the CPU that made it): say
    which commit in ``--engine-commit``. Never over an existing file."""
    commit = sys.argv[sys.argv.index("--engine-commit") + 1]
    path = machine_fixture()
    if path.exists():
        sys.exit(f"{path} exists; a recording is never rewritten")
    torch.set_num_threads(RECORDED_THREADS)
    golden = json.loads(FIXTURE.read_text())
    runs = {name: run_case(case["request"], case["data"]) for name, case in golden.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cpu_kind": cpu_kind(), "engine_commit": commit, "runs": runs}, indent=1,
                               sort_keys=True, allow_nan=False) + "\n")
    print(f"wrote {path}: {len(runs)} runs")


def _main() -> None:
    if "--this-cpu" in sys.argv:
        return _record_this_cpu()
    if FIXTURE.exists():
        sys.exit(f"{FIXTURE} exists; it is the record of the pre-refactor engine and is never rewritten")
    torch.set_num_threads(RECORDED_THREADS)
    recorded = {name: {"request": request, "data": data, "run": run_case(request, data)}
                for name, (request, data) in CASES.items()}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(recorded, indent=1, sort_keys=True, allow_nan=False) + "\n")
    print(f"wrote {FIXTURE}: {len(recorded)} runs")


if __name__ == "__main__":
    _main()
