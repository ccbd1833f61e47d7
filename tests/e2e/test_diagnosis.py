"""The diagnosis end to end: known cases through the API and a real worker, live
diagnosis, probe curves, and acting on a suggestion with resubmit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.spec import merge_patch
from tests.conftest import run_job, submit, wait_for

ROOT = Path(__file__).resolve().parents[2]


def load_cases() -> list[dict]:
    """The cases shipped with the tests, and any newer ones in ../shared (which win by name)."""
    cases = {c["name"]: c for c in json.loads((ROOT / "tests/data/diagnosis-cases.json").read_text())["cases"]}
    shared = ROOT.parent / "shared" / "diagnosis-cases.json"
    if shared.exists():
        cases.update({c["name"]: c for c in json.loads(shared.read_text())["cases"]})
    return list(cases.values())


@pytest.mark.parametrize("case", load_cases(), ids=lambda c: c["name"])
def test_known_cases_get_the_right_diagnosis(live, case):
    job = run_job(live, case["request"])
    assert job["status"] == "succeeded", job
    diagnosis = live.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    expect = case["expect"]
    assert diagnosis["final"] is True
    assert diagnosis["verdict"] == expect["verdict"], diagnosis
    serious = {f["code"] for f in diagnosis["findings"] if f["severity"] in ("error", "warning")}
    every = {f["code"] for f in diagnosis["findings"]}
    assert set(expect["codes_include"]) <= serious, diagnosis
    assert not set(expect["codes_exclude"]) & every, diagnosis
    touched = {key for f in diagnosis["findings"] for s in f["suggestions"] for key in s["patch"]}
    for alternatives in expect.get("patch_touches", []):
        assert set(alternatives.split("|")) & touched, (alternatives, touched)
    for f in diagnosis["findings"]:
        assert f["explanation"] and isinstance(f["evidence"], dict)
        assert all(not isinstance(v, (dict, list)) for v in f["evidence"].values())
        if f["severity"] != "info":
            assert "threshold" in f["evidence"] or f["code"] == "class_imbalance"


def test_probe_curves_are_per_epoch_and_steps_are_sampled_separately(live):
    job = run_job(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [32, 32]},
                         "activation": "tanh", "epochs": 3})
    c = live.get(f"/v1/jobs/{job['id']}/curves").get_json()
    n = len(c["epoch"])
    assert n == 3
    for key in ("grad_norm", "grad_norm_max", "weight_norm", "update_ratio"):
        assert list(c[key]) == ["hidden1", "hidden2", "output"] and all(len(v) == n for v in c[key].values())
    for key in ("saturated_fraction", "activation_variance"):
        assert list(c[key]) == ["hidden1", "hidden2"] and all(len(v) == n for v in c[key].values())
    assert "dead_fraction" not in c  # tanh has no dead units
    assert len(c["grad_ratio"]) == n and c["nonfinite"] == [False] * n
    steps = c["steps"]
    assert set(steps) == {"step", "epoch", "loss", "grad_norm"}
    assert len({len(v) for v in steps.values()}) == 1
    assert steps["step"][:5] == [1, 2, 3, 4, 5]  # the first steps are all sampled
    assert set(c["initial"]) == {"activation_variance", "saturated_fraction"}


def test_with_probes_off_the_probe_keys_are_absent(live):
    job = run_job(live, {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}, "epochs": 2,
                         "diagnose": False})
    c = live.get(f"/v1/jobs/{job['id']}/curves").get_json()
    assert set(c) == {"job_id", "status", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                      "learning_rate", "grad_norm", "train_batch_loss", "penalty"}  # the last two: always on
    assert c["penalty"] == [0.0, 0.0] and all(v > 0 for v in c["train_batch_loss"])
    diagnosis = live.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    assert diagnosis["final"] and diagnosis["verdict"] in ("healthy", "training_problem", "overfitting")


def test_the_diagnosis_is_available_while_the_job_runs(live):
    job = submit(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [32]}, "epochs": 10_000})
    wait_for(live, job["id"], 120, statuses=("running",))
    while live.get(job["links"]["self"]).get_json()["progress"]["epoch"] < 1:
        pass
    so_far = live.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    assert so_far["final"] is False and so_far["status"] == "running"
    assert so_far["verdict"] in ("healthy", "training_problem", "overfitting")
    live.post(f"/v1/jobs/{job['id']}/cancel")
    wait_for(live, job["id"], 60)


def test_resubmit_applies_a_suggested_patch_and_links_the_parent(live):
    case = next(c for c in load_cases() if c["name"] == "tiny-learning-rate-digits")
    parent = run_job(live, case["request"])
    diagnosis = live.get(f"/v1/jobs/{parent['id']}/diagnosis").get_json()
    patch = next(s["patch"] for f in diagnosis["findings"] for s in f["suggestions"] if "optimizer" in s["patch"])
    resp = live.post(f"/v1/jobs/{parent['id']}/resubmit", json={"patch": patch})
    assert resp.status_code == 202
    child = resp.get_json()
    assert child["links"]["parent"] == f"/v1/jobs/{parent['id']}"
    assert resp.headers["Location"] == child["links"]["self"]
    expected = merge_patch(parent["request"], patch)
    assert {k: v for k, v in child["request"]["optimizer"].items() if k in expected["optimizer"]} == \
        expected["optimizer"]
    done = wait_for(live, child["id"])
    assert done["summary"]["train_accuracy"] > parent["summary"]["train_accuracy"] + 0.3


def test_resubmit_with_an_invalid_patch_names_the_bad_fields(live, client):
    parent = submit(client, {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]},
                             "device": "cuda"})
    bad = client.post(f"/v1/jobs/{parent['id']}/resubmit", json={"patch": {"optimizer": {"name": "adam",
                                                                                        "momentum": 0.9}}})
    assert bad.status_code == 422 and bad.get_json()["errors"] == {"optimizer": {"momentum": ["Unknown field."]}}
    assert client.post(f"/v1/jobs/{parent['id']}/resubmit", json={}).status_code == 422
    assert client.post(f"/v1/jobs/{'c' * 32}/resubmit", json={"patch": {}}).status_code == 404
    client.post(f"/v1/jobs/{parent['id']}/cancel")
