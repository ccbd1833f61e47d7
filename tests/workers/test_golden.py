"""Every existing request trains exactly as before: the runs recorded in
``tests/data/golden_curves.json`` on the engine before the issue-10 refactor are reproduced bit
for bit on CPU (floats compared with ==, weights by SHA-256). See ``tests/workers/golden.py``."""

from __future__ import annotations

import json

import pytest
import torch

from tests.workers.golden import FIXTURE, RECORDED_THREADS, run_case

GOLDEN = json.loads(FIXTURE.read_text())


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
    got, expected = run_case(case["request"], case["data"]), case["run"]
    for key in expected:  # one key at a time, so that a failure says which part moved
        assert got[key] == expected[key], key
    assert got.keys() == expected.keys()
