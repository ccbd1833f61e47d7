"""Resuming from a checkpoint: on CPU, a run resumed after epoch k ends bit-equal to the run
that was never interrupted, and a checkpoint that is not this request's, or not whole, is refused."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from core.datasets import BUILTIN_DATASETS, load_builtin
from core.settings import Limits
from core.spec import normalise
from core.stop_reasons import EARLY_STOPPED
from workers.engine import checkpoint, loop
from workers.engine.checkpoint import CheckpointCorrupt, CheckpointError, CheckpointMismatch
from workers.engine.config import JobConfig
from workers.engine.data import prepare


def spec(**overrides) -> JobConfig:
    base = {"dataset": {"name": "moons", "train_samples": 200}, "architecture": {"hidden_layers": [8, 8]},
            "batch_size": 16, "epochs": 6}
    base.update(overrides)
    return JobConfig.from_request(normalise(base, limits=Limits(), resolver=None))


@functools.lru_cache(maxsize=None)
def _arrays(name: str):
    return load_builtin(name)


def data_for(request: JobConfig, test_samples: int = 0):
    """The request's data; with ``test_samples``, its last samples set apart as a test set
    (mnist1d has one of its own, but takes seconds to make)."""
    meta = BUILTIN_DATASETS[request.dataset.name]
    arrays = _arrays(meta.name)
    if test_samples:
        arrays = dataclasses.replace(arrays, x=arrays.x[:-test_samples], y=arrays.y[:-test_samples],
                                     x_test=arrays.x[-test_samples:], y_test=arrays.y[-test_samples:])
    return prepare(arrays, request.dataset, meta.classes, torch.device("cpu"))


class Recorder(loop.NoHooks):
    """Asks for a checkpoint after every epoch and keeps them all, with the epochs it was told of."""

    def __init__(self) -> None:
        self.blobs: dict[int, bytes] = {}
        self.epochs: list[int] = []

    def on_epoch(self, row: dict, summary: dict, probes) -> None:
        self.epochs.append(row["epoch"])

    def checkpoint_due(self, epoch: int) -> bool:
        return True

    def checkpoint(self, epoch: int, blob: bytes) -> None:
        self.blobs[epoch] = blob


def assert_same_run(resumed: loop.RunResult, whole: loop.RunResult) -> None:
    expected, got = whole.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    assert resumed.rows == whole.rows
    assert resumed.summary == whole.summary
    assert resumed.stop_reason == whole.stop_reason
    assert (resumed.probes is None) == (whole.probes is None)
    if whole.probes:
        assert resumed.probes.steps == whole.probes.steps
        assert resumed.probes.initial == whole.probes.initial


CONFIGURATIONS = {
    "adam": spec(optimizer={"name": "adam", "learning_rate": 0.01}),
    "dropout-batch-norm-momentum": spec(
        architecture={"hidden_layers": [16, 16], "batch_norm": True}, regularization={"dropout": 0.3, "l2": 0.001},
        optimizer={"name": "momentum", "learning_rate": 0.05, "momentum": 0.9}, batch_size=15),
    "early-stopping-restore-best": spec(
        optimizer={"name": "adam", "learning_rate": 0.2}, patience=2, epochs=30,
        early_stopping={"monitor": "val_loss", "restore_best": True}),
    "no-probes-digits": spec(dataset={"name": "digits", "train_samples": 300, "validation_split": 0.3},
                             architecture={"hidden_layers": [32]}, activation="tanh", diagnose=False,
                             optimizer={"name": "rmsprop", "learning_rate": 0.001}, epochs=4),
    "test-set": spec(epochs=4, architecture={"hidden_layers": [16]}, activation="gelu"),
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_a_resumed_run_ends_bit_equal_to_the_uninterrupted_one(name):
    request = CONFIGURATIONS[name]
    data = data_for(request, test_samples=100 if name == "test-set" else 0)
    recorder = Recorder()
    whole = loop.run(request, data, recorder)
    assert whole.resumed_from is None
    assert ("test_loss" in whole.summary) == (name == "test-set")
    # Taking checkpoints changes nothing.
    assert whole.rows == loop.run(request, data).rows
    last = whole.rows[-1]["epoch"]
    if name.startswith("early-stopping"):
        assert whole.stop_reason == EARLY_STOPPED and last < request.epochs
        assert whole.summary["returned_epoch"] < last
    # A checkpoint after every recorded epoch but the last, where the run ends anyway.
    assert sorted(recorder.blobs) == list(range(1, last))
    for k in sorted({1, last // 2, last - 1}):
        hooks = Recorder()
        resumed = loop.run(request, data, hooks, resume=recorder.blobs[k])
        assert resumed.resumed_from == k
        assert hooks.epochs == list(range(k + 1, last + 1))  # epochs 1..k are not reported again
        assert_same_run(resumed, whole)


def test_a_resumed_run_can_be_resumed_again():
    request = CONFIGURATIONS["dropout-batch-norm-momentum"]
    data = data_for(request)
    first, second = Recorder(), Recorder()
    whole = loop.run(request, data)
    loop.run(request, data, first)
    loop.run(request, data, second, resume=first.blobs[2])
    assert sorted(second.blobs) == [3, 4, 5]
    assert_same_run(loop.run(request, data, resume=second.blobs[4]), whole)


def test_training_time_carries_over_and_counts_against_the_budget():
    budget = 1000
    request = spec(max_runtime_s=budget)
    data = data_for(request)
    ticks = iter(range(0, 10_000))
    recorder = Recorder()
    loop.run(request, data, recorder, clock=lambda: next(ticks))
    spent = checkpoint.read(recorder.blobs[2], request)["train_s"]
    assert spent > 0
    # Without a deadline, the budget left is max_runtime_s less the checkpoint's training time.
    ticks = iter(range(0, 10_000))
    resumed = loop.run(request, data, clock=lambda: next(ticks), resume=recorder.blobs[2])
    assert resumed.train_s > spent
    clock = iter([0.0] + [budget - spent + 1.0] * 10_000)
    late = loop.run(request, data, clock=lambda: next(clock), resume=recorder.blobs[2])
    assert late.stop_reason == loop.TIME_LIMIT and len(late.rows) == 2


@pytest.fixture(scope="module")
def blob() -> bytes:
    recorder = Recorder()
    loop.run(spec(epochs=2), data_for(spec()), recorder)
    return recorder.blobs[1]


def test_a_checkpoint_of_another_request_is_refused(blob):
    other = spec(epochs=2, seed=1)
    with pytest.raises(CheckpointMismatch, match="another request"):
        loop.run(other, data_for(other), resume=blob)
    assert issubclass(CheckpointMismatch, ValueError)
    assert loop.run(spec(epochs=2), data_for(spec()), resume=blob).resumed_from == 1


def test_a_checkpoint_of_another_format_version_is_refused(blob, monkeypatch):
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", checkpoint.FORMAT_VERSION + 1)
    with pytest.raises(CheckpointMismatch, match="format version"):
        checkpoint.read(blob, spec(epochs=2))


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "empty", "not a checkpoint", "not bytes"])
def test_a_damaged_checkpoint_is_refused_with_a_clear_error(blob, damage):
    if damage == "flipped byte":  # inside the weights, which torch.load alone would read as they are
        middle = len(blob) // 2
        bad = blob[:middle] + bytes([blob[middle] ^ 0xFF]) + blob[middle + 1:]
    else:
        bad = {"truncated": blob[:len(blob) // 3], "empty": b"", "not a checkpoint": b"PK\x03\x04" + blob,
               "not bytes": "a string"}[damage]
    request = spec(epochs=2)
    with pytest.raises(CheckpointCorrupt) as caught:
        loop.run(request, data_for(request), resume=bad)
    assert isinstance(caught.value, CheckpointError) and isinstance(caught.value, ValueError)
    assert "checkpoint" in str(caught.value)


def test_a_checkpoint_loads_without_unpickling_objects(blob):
    contents = checkpoint.read(blob, spec(epochs=2))
    assert contents["epoch"] == 1 and contents["format"] == checkpoint.FORMAT_VERSION
    assert contents["rng"]["torch"].dtype == torch.uint8 and contents["rng"]["shuffle"].dtype == torch.uint8


@pytest.mark.parametrize("request_", [
    {"dataset": {"name": "digits", "train_samples": 100},
     "architecture": {"type": "cnn", "conv_layers": [3, {"channels": 3, "pool": "max"}], "hidden_layers": [],
                      "batch_norm": True, "residual": True}, "regularization": {"dropout": 0.1}, "epochs": 3,
     "batch_size": 32},
    {"dataset": {"name": "diabetes"}, "architecture": {"hidden_layers": [8]}, "loss": "huber", "epochs": 3,
     "optimizer": {"name": "adam", "learning_rate": 0.01}, "patience": 5, "early_stopping": {"monitor": "val_r2"}},
], ids=["cnn", "regression"])
def test_cnn_and_regression_runs_resume_bit_equal(request_):
    from tests.workers.model_requests import config_for, data_for as model_data_for

    config = config_for(request_)
    data = model_data_for(config)
    recorder = Recorder()
    whole = loop.run(config, data, recorder)
    assert_same_run(loop.run(config, data, resume=recorder.blobs[1]), whole)
