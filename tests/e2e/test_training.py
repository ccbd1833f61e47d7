"""Real trainings through the API and a real worker process."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from safetensors.torch import load as load_safetensors

from core.datasets import BUILTIN_DATASETS, load_builtin
from core.spec import ACTIVATIONS, OPTIMIZERS
from tests.conftest import OWNER, run_job, submit, wait_for
from trainrx.network import build_network, network_config, read_weights
from workers.engine.config import DatasetConfig
from workers.engine.data import prepare
from workers.engine.evaluation import evaluate
from workers.engine.objective import Classification

TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8, 8]}, "epochs": 2}


def curves(client, job_id: str) -> dict:
    return client.get(f"/v1/jobs/{job_id}/curves").get_json()


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_trains_for_two_epochs(live, activation):
    job = run_job(live, {**TINY, "activation": activation})
    assert job["status"] == "succeeded", job
    c = curves(live, job["id"])
    assert c["epoch"] == [1, 2] and all(len(c[k]) == 2 for k in ("train_loss", "val_loss", "learning_rate"))
    assert list(c["grad_norm"]) == ["hidden1", "hidden2", "output"]
    assert all(v is not None and v > 0 for v in c["grad_norm"]["output"])


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_trains_for_two_epochs(live, optimizer):
    job = run_job(live, {**TINY, "optimizer": optimizer})
    assert job["status"] == "succeeded", job
    assert job["summary"]["epochs_run"] == 2 and job["progress"] == {"epoch": 2, "epochs": 2}
    assert curves(live, job["id"])["train_loss"][1] < math.log(2) + 0.1


def test_a_finished_job_has_curves_diagnosis_weights_and_timings(live):
    job = run_job(live, {**TINY, "epochs": 3, "name": "complete"})
    assert job["status"] == "succeeded"
    for key in ("started_at", "finished_at"):
        assert job[key]
    assert set(job["timings"]) == {"queued_s", "setup_s", "train_s", "total_s"}
    assert job["data"]["train_samples"] + job["data"]["validation_samples"] == 1000
    assert job["data"]["preprocessing"]["method"] == "none"
    diagnosis = live.get(job["links"]["diagnosis"]).get_json()
    assert diagnosis["final"] is True and diagnosis["verdict"] in ("healthy", "training_problem", "overfitting")
    resp = live.get(job["links"]["weights"])
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"


def rebuild(weights: bytes):
    state, meta = read_weights(weights)
    spec = meta["spec"]
    model = build_network(network_config(meta))
    model.load_state_dict(state)
    model.eval()
    return model, spec, meta


def validation_data(spec: dict):
    meta = BUILTIN_DATASETS[spec["dataset"]["name"]]
    return prepare(load_builtin(meta.name), DatasetConfig.from_request(spec["dataset"]), meta.classes,
                   torch.device("cpu"))


def test_weights_round_trip_into_a_freshly_built_model(live):
    job = run_job(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [32, 32],
                         "batch_norm": True}, "activation": "prelu", "regularization": {"dropout": 0.1},
                         "epochs": 3})
    raw = live.get(job["links"]["weights"]).data
    model, spec, meta = rebuild(raw)
    assert spec == job["request"]
    assert meta["preprocessing"] == {"method": "divide", "value": 16.0,
                                     "note": "pixel intensities 0..16 divided by 16"}
    assert set(load_safetensors(raw)) == set(model.state_dict())
    data = validation_data(spec)
    evaluation = evaluate(model, data.x_val, data.y_val, Classification())
    val_loss, val_accuracy = evaluation.loss, evaluation.metrics["accuracy"]
    assert val_accuracy == job["summary"]["val_accuracy"]
    assert val_loss == pytest.approx(job["summary"]["val_loss"], rel=1e-5)


def test_early_stopping_stops_and_restores_the_best_epoch(live):
    request = {"dataset": {"name": "digits", "train_samples": 50}, "architecture": {"hidden_layers": [256]},
               "optimizer": {"name": "adam", "learning_rate": 0.003}, "patience": 3, "epochs": 200}
    job = run_job(live, request)
    summary = job["summary"]
    assert summary["stopped_early"] is True
    assert summary["epochs_run"] < 200
    assert summary["epochs_run"] == summary["best_epoch"] + 3
    c = curves(live, job["id"])
    best = summary["best_epoch"]
    assert c["val_loss"][best - 1] == min(c["val_loss"])
    assert summary["val_loss"] == c["val_loss"][best - 1] != c["val_loss"][-1]
    model, spec, _ = rebuild(live.get(job["links"]["weights"]).data)
    data = validation_data(spec)
    assert evaluate(model, data.x_val, data.y_val, Classification()).loss == pytest.approx(c["val_loss"][best - 1], rel=1e-5)


def test_the_recipe_headline_deep_sigmoid_sgd_stays_near_chance_relu_adam_fits(live):
    sigmoid = run_job(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [100] * 10},
                             "activation": "sigmoid", "optimizer": {"name": "sgd", "learning_rate": 0.1},
                             "epochs": 20})
    relu = run_job(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [100] * 10},
                          "activation": "relu", "optimizer": {"name": "adam", "learning_rate": 0.001},
                          "epochs": 20})
    assert sigmoid["summary"]["train_accuracy"] < 0.2  # chance is 0.1, on the *training* set
    # The recipe's first question is the training data: the ReLU network fits it (and generalises well
    # beyond chance; validation accuracy lands near 0.9, on either side of it with the CPU's rounding).
    assert relu["summary"]["train_accuracy"] > 0.9 and relu["summary"]["val_accuracy"] > 0.8
    grads = curves(live, sigmoid["id"])["grad_norm"]
    assert grads["hidden1"][-1] < 1e-3 * grads["output"][-1]  # vanishing toward the input


def test_the_normalised_request_posted_back_gives_identical_curves(live):
    first = run_job(live, {**TINY, "activation": "leaky_relu", "regularization": {"dropout": 0.2}, "epochs": 3})
    second = run_job(live, first["request"])
    assert second["request"] == first["request"]
    a, b = curves(live, first["id"]), curves(live, second["id"])
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "grad_norm"):
        assert a[key] == b[key], key


def test_cancel_a_running_job_keeps_its_partial_curves(live):
    job = submit(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64]},
                        "epochs": 10_000})
    wait_for(live, job["id"], 120, statuses=("running",))
    while live.get(job["links"]["self"]).get_json()["progress"]["epoch"] < 2:
        pass
    assert live.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    done = wait_for(live, job["id"], 60)
    assert done["status"] == "cancelled"
    n = len(curves(live, job["id"])["epoch"])
    assert 2 <= n < 10_000 and done["summary"]["epochs_run"] == n
    assert live.get(job["links"]["weights"]).status_code == 200


def test_the_time_limit_stops_the_job_and_keeps_what_it_learned(live):
    job = run_job(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64]},
                         "epochs": 10_000, "max_runtime_s": 2})
    assert job["status"] == "failed" and job["error"]["type"] == "time_limit"
    assert 1 <= job["summary"]["epochs_run"] < 10_000
    assert live.get(job["links"]["weights"]).status_code == 200


def test_a_diverged_run_succeeds_with_nulls_never_nan(live):
    job = run_job(live, {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64, 64]},
                         "activation": "elu", "optimizer": {"name": "sgd", "learning_rate": 100.0}, "epochs": 20})
    assert job["status"] == "succeeded"
    assert job["summary"]["epochs_run"] == 1 and job["summary"]["train_loss"] is None
    raw = live.get(f"/v1/jobs/{job['id']}/curves").get_data(as_text=True)
    assert "NaN" not in raw and "Infinity" not in raw
    json.loads(raw)
    diagnosis = live.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    assert diagnosis["verdict"] == "training_problem"


def test_a_dataset_with_a_test_set_reports_test_metrics(live):
    job = run_job(live, {"dataset": {"name": "mnist1d"}, "architecture": {"hidden_layers": [32]}, "epochs": 2})
    assert job["data"]["test_samples"] == 1000
    assert 0 <= job["summary"]["test_accuracy"] <= 1 and job["summary"]["test_loss"] > 0


def test_a_cuda_job_on_a_cpu_worker_waits_on_the_gpu_queue(live):
    job = submit(live, {**TINY, "device": "cuda"})
    assert job["queue"] == "gpu"
    assert live.get(job["links"]["self"]).get_json()["status"] == "queued"
    live.post(f"/v1/jobs/{job['id']}/cancel")


def test_a_job_whose_worker_died_is_reaped_and_run_again(live, app):
    """A job left `running` by a worker that died (its heartbeat stopped) is re-queued by
    the workers' recovery sweep and trained again (from the start: it has no checkpoint)."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.db import jobs
    from core.jobstore import utcnow

    from core.spec import normalise

    store = app.extensions["trainrx"].store
    request = normalise(TINY, limits=app.extensions["trainrx"].settings.limits, resolver=None)
    job, _ = store.create(request, "cpu", owner=OWNER)  # stored, not yet published
    assert store.start(job["id"], "dead-worker")["run"] == 1  # no message was ever published
    store.record_epoch(job["id"], 1, {"epoch": 1, "train_loss": 9.0, "grad_norm": {}}, None)  # its partial work
    stale = utcnow() - timedelta(minutes=5)
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(started_at=stale, heartbeat_at=stale))
    done = wait_for(live, job["id"], 120)
    assert done["status"] == "succeeded" and done["summary"]["epochs_run"] == 2 and done["attempts"] == 1
    row = store.get(job["id"], owner=None)
    assert row["run"] == 2 and row["worker"] != "dead-worker"
    assert curves(live, job["id"])["train_loss"][0] != 9.0
    assert "stopped answering" in live.get(f"/v1/jobs/{job['id']}/logs").get_data(as_text=True)
    # A late message for it does nothing.
    assert store.start(job["id"], "intruder") is None
