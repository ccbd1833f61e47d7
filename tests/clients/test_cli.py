"""The `trainrx` console script as CI runs it: every exit code of `check`, JUnit XML
and GitHub annotations, and the everyday commands."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.clients.conftest import JOB, SMALL, WAITING, run_cli

DIVERGING = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64, 64]}, "activation": "elu",
             "optimizer": {"name": "sgd", "learning_rate": 100.0}, "epochs": 20}
REGRESSION = {"name": "friedman1-small", "dataset": {"name": "friedman1"}, "architecture": {"hidden_layers": [32]},
              "optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 6}


def spec_file(tmp_path, spec: dict, name: str = "model.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(spec) if name.endswith(".json") else yaml.safe_dump(spec))
    return str(path)


def junit(path) -> ET.Element:
    root = ET.parse(path).getroot()  # well-formed, or this raises
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    return suite


def test_check_exit_0_when_every_expectation_holds(sdk, api_url, tmp_path):
    # The verdict an identical (deterministic) job got, so that --verdict holds whatever the diagnosis says.
    verdict = sdk.jobs.diagnosis(sdk.jobs.wait(sdk.jobs.create(SMALL).id, timeout=300).id).verdict
    report = tmp_path / "reports" / "junit.xml"
    out = run_cli("check", spec_file(tmp_path, SMALL), "--expect", "val_accuracy>=0.5", "--expect",
                  "train_loss<5", "--verdict", verdict, "--junit", str(report), url=api_url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "✓ val_accuracy>=0.5" in out.stdout and "Result: passed" in out.stdout
    suite = junit(report)
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["job succeeded", "val_accuracy>=0.5", "train_loss<5", f"verdict=={verdict}"]
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert sdk.jobs.get(props["job_id"]).status == "succeeded"


def test_check_exit_1_when_an_expectation_fails_with_junit_and_github_annotations(sdk, api_url, tmp_path):
    # Which findings this (deterministic) request gets, so that --fail-on names a real one.
    reference = sdk.jobs.wait(sdk.jobs.create(DIVERGING).id, timeout=300)
    code = sdk.jobs.diagnosis(reference.id).findings[0].code
    report = tmp_path / "junit.xml"
    out = run_cli("check", spec_file(tmp_path, DIVERGING), "--expect", "val_accuracy>=0.99", "--expect",
                  "epochs_run>=1", "--fail-on", f"{code},not_a_real_code", "--junit", str(report),
                  url=api_url, env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "✗ val_accuracy>=0.99" in out.stdout and f"✗ no {code}" in out.stdout
    assert "✓ no not_a_real_code" in out.stdout
    assert "suggested patch" in out.stdout or "verdict:" in out.stdout  # the diagnosis' first findings
    annotations = [line for line in out.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 2 and all("title=trainrx check::" in a for a in annotations)
    assert any("val_accuracy>=0.99" in a for a in annotations)
    suite = junit(report)
    failed = {c.get("name"): c.find("failure").get("message") for c in suite.findall("testcase")
              if c.find("failure") is not None}
    assert set(failed) == {"val_accuracy>=0.99", f"no {code}"}
    assert "expected >= 0.99" in failed["val_accuracy>=0.99"] or "not available" in failed["val_accuracy>=0.99"]


def test_check_against_a_baseline(sdk, api_url, tmp_path):
    baseline = sdk.jobs.wait(sdk.jobs.create(SMALL).id, timeout=300)
    same = run_cli("check", spec_file(tmp_path, SMALL), "--baseline", baseline.id, "--metric", "val_accuracy",
                   "--max-drop", "0", url=api_url)
    assert same.returncode == 0, same.stdout + same.stderr  # CPU training is reproducible: no drop at all
    worse = run_cli("check", spec_file(tmp_path, {**SMALL, "epochs": 1}), "--baseline", baseline.id,
                    "--max-drop", "0.01", url=api_url)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert f"within 0.01 of baseline {baseline.id[:8]}" in worse.stdout and "regressed by" in worse.stdout


def test_check_exit_2_for_an_invalid_spec_with_the_field_errors(api_url, tmp_path):
    report = tmp_path / "junit.xml"
    bad = {**SMALL, "activation": "softmax", "architecture": {"hidden_layers": [0]}}
    out = run_cli("check", spec_file(tmp_path, bad), "--expect", "val_accuracy>=0.9", "--junit", str(report),
                  url=api_url, env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "activation.name: Must be one of" in out.stdout and "architecture.hidden_layers" in out.stdout
    assert any(line.startswith("::error file=") for line in out.stdout.splitlines())
    suite = junit(report)
    assert suite.get("errors") == "1" and "invalid" in suite.find("testcase/error").get("message")


@pytest.mark.parametrize("args,message", [
    (["--expect", "val_accuracy=>0.9"], "not METRIC OP NUMBER"),
    (["--expect", "accuracy>=0.9"], "Unknown metric"),
    (["--metric", "val_accuracy"], "need --baseline"),
    (["--baseline", "f" * 32], "no job"),
    (["--timeout", "0"], "--timeout"),
])
def test_check_exit_2_for_a_wrong_command_line(api_url, tmp_path, args, message):
    out = run_cli("check", spec_file(tmp_path, SMALL), *args, url=api_url)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr


def test_check_exit_2_for_an_unreadable_spec_file(api_url, tmp_path):
    out = run_cli("check", str(tmp_path / "missing.yaml"), url=api_url)
    assert out.returncode == 2 and "Cannot read the spec file" in out.stdout


def test_check_exit_3_when_the_service_is_unreachable(tmp_path):
    report = tmp_path / "junit.xml"
    out = run_cli("--max-retries", "0", "check", spec_file(tmp_path, SMALL), "--junit", str(report),
                  url="http://127.0.0.1:9")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "APIConnectionError" in out.stdout
    assert junit(report).get("errors") == "1"


def test_check_exit_3_when_the_service_answers_an_error(scripted, tmp_path):
    script, client = scripted
    script.on("POST", "/v1/jobs", (500, {"code": 500, "message": "Something went wrong on our side."}, {}))
    out = run_cli("--max-retries", "1", "check", spec_file(tmp_path, SMALL), url=client.base_url)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "InternalServerError" in out.stdout and len(script.seen) == 2  # retried once (it has a key)


def test_check_exit_4_when_the_job_fails(api_url, tmp_path):
    slow = {"dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64]}, "epochs": 10_000,
            "max_runtime_s": 1}
    report = tmp_path / "junit.xml"
    out = run_cli("check", spec_file(tmp_path, slow), "--expect", "val_accuracy>=0.1", "--junit", str(report),
                  url=api_url)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "time_limit" in out.stdout and "Result: job failed" in out.stdout
    assert junit(report).get("errors") == "1"


def test_check_exit_4_when_the_job_times_out_and_it_is_cancelled(sdk, api_url, tmp_path):
    out = run_cli("check", spec_file(tmp_path, WAITING), "--timeout", "2", url=api_url)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "did not finish within 2 s; it was cancelled" in out.stdout
    job_id = out.stderr.split("submitted job ", 1)[1].split()[0]
    assert sdk.jobs.get(job_id).status == "cancelled"


def test_everyday_commands(sdk, api_url, tmp_path):
    spec = spec_file(tmp_path, SMALL, "small.json")
    submitted = run_cli("submit", spec, "--follow", url=api_url)
    assert submitted.returncode == 0, submitted.stderr
    assert "status   succeeded" in submitted.stdout and "epoch 6/6" in submitted.stderr
    listed = run_cli("list", "--json", "--limit", "5", url=api_url)
    job_id = next(j["id"] for j in json.loads(listed.stdout) if j["name"] == "sdk-small")

    status = run_cli("status", job_id, url=api_url)
    assert status.returncode == 0 and "status   succeeded" in status.stdout
    table = run_cli("list", url=api_url).stdout
    assert job_id in table and table.splitlines()[0].split()[:3] == ["id", "name", "status"]
    curves = run_cli("curves", job_id, url=api_url).stdout.splitlines()
    assert curves[0].split() == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    assert len(curves) == 2 + 6 and curves[-1].split()[0] == "6"
    diagnosis = run_cli("diagnosis", job_id, url=api_url)
    assert diagnosis.returncode == 0 and diagnosis.stdout.startswith("verdict: ")
    assert json.loads(run_cli("diagnosis", job_id, "--json", url=api_url).stdout)["final"] is True
    target = tmp_path / "w.safetensors"
    assert run_cli("download", job_id, "-o", str(target), url=api_url).returncode == 0
    assert target.stat().st_size > 100
    follow = run_cli("follow", job_id, url=api_url)
    assert follow.returncode == 0 and "succeeded" in follow.stdout
    datasets = run_cli("datasets", "list", url=api_url)
    assert "digits" in datasets.stdout and "mnist1d" in datasets.stdout
    assert any(line.split()[:4] == ["digits", "digits", "classification", "1x8x8"]
               for line in datasets.stdout.splitlines()), datasets.stdout

    queued = run_cli("submit", spec_file(tmp_path, WAITING, "waiting.yaml"), url=api_url)
    waiting_id, state = queued.stdout.split()
    assert state == "queued"
    cancelled = run_cli("cancel", waiting_id, url=api_url)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{waiting_id} cancelled"
    again = run_cli("cancel", waiting_id, url=api_url)
    assert again.returncode == 3 and again.stderr.startswith("ConflictError: ")
    missing = run_cli("status", "f" * 32, url=api_url)
    assert missing.returncode == 3 and missing.stderr.startswith("NotFoundError: ")
    invalid = run_cli("submit", spec_file(tmp_path, {"dataset": {"name": "nope"}}, "bad.yaml"), url=api_url)
    assert invalid.returncode == 2 and "UnprocessableEntityError: The request is invalid." in invalid.stderr
    assert "architecture: Missing data for required field." in invalid.stderr


# --- regression jobs: R² and MAE -------------------------------------------------

def regression_job(job_id: str, **summary) -> dict:
    """A finished regression job as the API returns it: R² and MAE in place of the accuracies."""
    return {**JOB, "id": job_id, "status": "succeeded", "progress": {"epoch": 6, "epochs": 6},
            "summary": {"best_epoch": 6, "epochs_run": 6, "stopped_early": False, "returned_epoch": 6, **summary}}


def test_check_a_regression_job_by_r2_and_mae_against_a_recorded_baseline(scripted, tmp_path):
    script, client = scripted
    base, new = "b" * 32, "c" * 32
    # Two regression summaries (the later job a little worse on every metric).
    earlier = regression_job(base, train_loss=0.061, val_loss=0.083, train_r2=0.939, val_r2=0.917, train_mae=0.94,
                             val_mae=1.07)
    later = regression_job(new, train_loss=0.075, val_loss=0.098, train_r2=0.925, val_r2=0.902, train_mae=1.03,
                           val_mae=1.16)
    script.on("GET", f"/v1/jobs/{base}", (200, earlier, {}))
    script.on("POST", "/v1/jobs", (202, {**JOB, "id": new, "status": "queued"}, {}))
    script.on("GET", f"/v1/jobs/{new}", (200, later, {}))
    script.on("GET", f"/v1/jobs/{new}/diagnosis", (200, {"job_id": new, "status": "succeeded", "final": True,
                                                         "verdict": "healthy", "findings": []}, {}))
    spec = spec_file(tmp_path, REGRESSION)

    def check(*args: str):
        return run_cli("check", spec, "--no-progress", *args, url=client.base_url)

    held = check("--expect", "val_r2>=0.9", "--expect", "val_mae<1.2", "--expect", "test_r2>=0.5")
    assert held.returncode == 1, held.stdout + held.stderr  # this job has no test set
    assert "✓ val_r2>=0.9" in held.stdout and "✓ val_mae<1.2" in held.stdout
    assert "test_r2 is not available for this job" in held.stdout
    # MAE is lower-is-better: a rise of 0.09 is a regression of 0.09.
    mae = check("--baseline", base, "--metric", "val_mae", "--max-drop", "0.05")
    assert mae.returncode == 1 and "val_mae regressed by 0.0900, more than 0.05" in mae.stdout
    # R² is higher-is-better, and the default metric for a regression baseline (it has no val_accuracy).
    r2 = check("--baseline", base, "--max-drop", "0.01")
    assert r2.returncode == 1 and f"val_r2 within 0.01 of baseline {base[:8]}" in r2.stdout
    assert "val_r2 regressed by 0.0150" in r2.stdout
    # A better (lower) MAE than the baseline's passes with no allowance at all.
    script.on("GET", f"/v1/jobs/{base}", (200, later, {}))
    script.on("GET", f"/v1/jobs/{new}", (200, earlier | {"id": new}, {}))
    assert check("--baseline", base, "--metric", "val_mae", "--max-drop", "0").returncode == 0
    assert check("--baseline", base, "--metric", "train_accuracy").returncode == 2  # the baseline has none


def test_check_a_live_regression_job(sdk, api_url, tmp_path):
    baseline = sdk.jobs.wait(sdk.jobs.create(REGRESSION).id, timeout=300)
    assert baseline.summary.val_accuracy is None and baseline.summary.val_r2 is not None, baseline.raw
    spec = spec_file(tmp_path, REGRESSION)
    same = run_cli("check", spec, "--expect", "val_r2>=0.5", "--expect", f"val_mae<={baseline.summary.val_mae}",
                   "--baseline", baseline.id, "--metric", "val_mae", "--max-drop", "0", url=api_url)
    assert same.returncode == 0, same.stdout + same.stderr  # CPU training is reproducible: the same MAE
    assert "✓ val_r2>=0.5" in same.stdout
    # One epoch at a tenth of the rate: a worse (higher) MAE, and a lower R² against the default metric.
    shorter = spec_file(tmp_path, {**REGRESSION, "epochs": 1, "optimizer": {"name": "adam", "learning_rate": 0.001}},
                        "short.yaml")
    worse = run_cli("check", shorter, "--baseline", baseline.id, "--metric", "val_mae", url=api_url)
    assert worse.returncode == 1 and "val_mae regressed by" in worse.stdout, worse.stdout + worse.stderr
    by_r2 = run_cli("check", shorter, "--baseline", baseline.id, url=api_url)
    assert by_r2.returncode == 1 and "val_r2 regressed by" in by_r2.stdout, by_r2.stdout + by_r2.stderr


@pytest.mark.parametrize("metric", ["train_r2", "val_r2", "test_r2", "train_mae", "val_mae", "test_mae"])
def test_regression_metrics_parse_and_mae_is_lower_is_better(metric):
    from trainrx.cli.check import Expectation, lower_is_better

    assert Expectation.parse(f"{metric}>=0.5").metric == metric
    assert lower_is_better(metric) is metric.endswith("_mae")
    assert lower_is_better(metric.replace("r2", "loss").replace("mae", "loss"))


def test_a_regression_job_and_its_curves_are_shown_in_r2_and_mae():
    from trainrx.cli import render
    from trainrx.types import Curves, Job, build

    job = build(Job, regression_job("d" * 32, train_loss=0.06, val_loss=0.08, train_r2=0.94, val_r2=0.92,
                                    train_mae=0.9, val_mae=1.1))
    assert "train_r2 0.9400  train_mae 0.9000  val_loss 0.0800  val_r2 0.9200  val_mae 1.1000" in render.job_text(job)
    assert "accuracy" not in render.job_text(job) and "R² 0.9200" in render.jobs_table([job])
    # The API's curves of a regression job: the accuracy lists are empty.
    curves = build(Curves, {"job_id": "d" * 32, "status": "succeeded", "epoch": [1, 2], "train_loss": [0.9, 0.5],
                            "train_accuracy": [], "val_loss": [0.9, 0.6], "val_accuracy": [], "train_r2": [0.1, 0.5],
                            "val_r2": [0.1, 0.4], "train_mae": [3.0, 2.0], "val_mae": [3.1, 2.2],
                            "learning_rate": [0.001, 0.001], "grad_norm": {}})
    assert [set(r) for r in curves.rows()] == [{"epoch", "train_loss", "train_r2", "train_mae", "val_loss", "val_r2",
                                                "val_mae", "learning_rate", "grad_norm"}] * 2
    table = render.curves_table(curves).splitlines()
    assert table[0].split() == ["epoch", "train_loss", "train_r2", "train_mae", "val_loss", "val_r2", "val_mae", "lr"]
    assert table[-1].split()[:3] == ["2", "0.5000", "0.5000"]
