"""client.sweeps and `trainrx sweep` against the live API and the session's worker; the CLI's
value parsing on its own."""

from __future__ import annotations

import json
import re

import click
import pytest

from tests.clients.conftest import run_cli

TINY = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 2}
WAITING = {**TINY, "device": "cuda"}  # children on the gpu queue, which no test worker serves: they stay queued


def test_cli_sweep_runs_prints_the_table_and_the_sdk_reads_it(sdk, api_url, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(TINY))
    done = run_cli("sweep", str(spec), "--grid", "activation=sigmoid,relu", "--name", "cli-sweep",
                   "--max-parallel", "2", url=api_url)
    assert done.returncode == 0, done.stderr
    sweep_id = re.search(r"sweep ([0-9a-f]{32})", done.stderr).group(1)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"sweep {sweep_id} done (2 succeeded)")
    header = next(line for line in lines if line.startswith("activation"))
    for column in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "verdict", "best epoch", "time s"):
        assert column in header
    assert any(line.startswith("sigmoid") for line in lines) and any(line.startswith("relu") for line in lines)

    sweep = sdk.sweeps.wait(sweep_id, timeout=5)
    assert sweep.status == "done" and sweep.name == "cli-sweep" and sweep.size == 2
    assert [row["values"] for row in sweep.results] == [{"activation": "sigmoid"}, {"activation": "relu"}]
    assert sdk.sweeps.results(sweep_id) == sweep.results
    for row in sweep.results:
        job = sdk.jobs.get(row["job_ids"][0])
        mean = row["metrics"]["val_accuracy"]["mean"]
        assert job.summary.val_accuracy == pytest.approx(mean)
        assert f"{mean:.4f}" in next(line for line in lines if line.startswith(row["values"]["activation"]))
    assert sweep_id in [s.id for s in sdk.sweeps.list(limit=50)]


def test_sdk_create_cancel_and_wait_timeout(sdk):
    from trainrx import WaitTimeoutError
    from trainrx.errors import UnprocessableEntityError

    sweep = sdk.sweeps.create(base=WAITING, grid={"architecture.hidden_layers": [[4], [4, 4]]}, seeds=[0, 1],
                              max_parallel=1, name="sdk")
    assert sweep.status == "running" and sweep.counts["queued"] == 1 and sweep.counts["pending"] == 3
    assert [c["seed"] for c in sweep.children] == [0, 1, 0, 1]
    with pytest.raises(WaitTimeoutError, match="Sweep"):
        sdk.sweeps.wait(sweep.id, timeout=0.3, poll_interval=0.1)
    cancelled = sdk.sweeps.cancel(sweep.id)
    assert cancelled.status == "cancelled" and cancelled.finished
    assert sdk.sweeps.wait(sweep.id, timeout=5).status == "cancelled"
    with pytest.raises(UnprocessableEntityError, match="architecture.depth"):
        sdk.sweeps.create(base=TINY, grid={"architecture.depth": [1, 2]})


def test_cli_sweep_json_no_wait_and_a_422(sdk, api_url, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: {name: moons}\narchitecture: {hidden_layers: [4]}\nepochs: 1\ndevice: cuda\n")
    started = run_cli("sweep", str(spec), "--grid", "architecture.hidden_layers=[4],[4,4,4]", "--random",
                      "optimizer.learning_rate=log_uniform:0.001:0.1", "--random-n", "2", "--seeds", "2",
                      "--no-wait", "--json", url=api_url)
    assert started.returncode == 0, started.stderr
    body = json.loads(started.stdout)
    assert body["size"] == 2 * 2 * 2 and body["spec"]["seeds"] == [0, 1]
    assert body["spec"]["grid"] == {"architecture.hidden_layers": [[4], [4, 4, 4]]}
    assert body["spec"]["random"] == {"n": 2, "seed": 0, "space": {
        "optimizer.learning_rate": {"log_uniform": [0.001, 0.1]}}}
    sdk.sweeps.cancel(body["id"])
    bad = run_cli("sweep", str(spec), "--grid", "optimizer.learning_rate=0.1,-1", url=api_url)
    assert bad.returncode == 2
    assert "UnprocessableEntityError: Combination 1 (optimizer.learning_rate=-1)" in bad.stderr


def test_cli_values_split_on_top_level_commas_and_parse_as_json():
    from trainrx.cli.sweep import parse_grid, parse_random, split_top_level

    assert split_top_level("[128],[128,128,128]") == ["[128]", "[128,128,128]"]
    assert split_top_level('{"name":"a,b"},"x,y",3') == ['{"name":"a,b"}', '"x,y"', "3"]
    assert parse_grid("architecture.hidden_layers=[128],[128,128,128]") == (
        "architecture.hidden_layers", [[128], [128, 128, 128]])
    assert parse_grid("activation=sigmoid,relu") == ("activation", ["sigmoid", "relu"])
    assert parse_grid("optimizer.learning_rate=0.1,1e-3") == ("optimizer.learning_rate", [0.1, 0.001])
    assert parse_grid("optimizer={\"name\":\"sgd\"},adam") == ("optimizer", [{"name": "sgd"}, "adam"])
    assert parse_random("regularization.l2=log_uniform:1e-5:1e-2") == ("regularization.l2",
                                                                       {"log_uniform": [1e-5, 1e-2]})
    assert parse_random("activation=choice:relu,tanh") == ("activation", {"choice": ["relu", "tanh"]})
    for bad in ("activation", "activation=", "x=normal:0:1", "x=uniform:0"):
        with pytest.raises(click.BadParameter):
            parse_random(bad) if "normal" in bad or "uniform" in bad else parse_grid(bad)
