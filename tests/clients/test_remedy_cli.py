"""`trainrx check --remedy` as CI runs it, and `client.remedies`, against the live API and
the session's real worker: a failing check runs the job's verified remedies, prints the fix
ready to paste, records it in the JUnit report, and keeps the check's exit code."""

from __future__ import annotations

import json

import pytest

from tests.clients.conftest import run_cli
from tests.clients.test_cli import junit, spec_file

# digits with plain SGD at a learning rate far too small: three epochs leave it near chance.
UNHEALTHY = {"name": "cli-remedy", "dataset": {"name": "digits"}, "architecture": {"hidden_layers": [32]},
             "optimizer": {"name": "sgd", "learning_rate": 1e-5}, "epochs": 3, "seed": 1}


def test_check_remedy_prints_the_verified_fix_records_it_in_junit_and_keeps_the_exit_code(sdk, api_url, tmp_path):
    from trainrx import ConflictError, Remedy

    report = tmp_path / "junit.xml"
    out = run_cli("check", spec_file(tmp_path, UNHEALTHY), "--expect", "train_accuracy>=0.5", "--remedy",
                  "--remedy-attempts", "1", "--no-progress", "--junit", str(report), url=api_url)
    assert out.returncode == 1, out.stdout + out.stderr
    suite = junit(report)
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    remedy = sdk.remedies.get(props["job_id"])
    assert isinstance(remedy, Remedy) and remedy.done and remedy.id == props["remedy_id"]
    assert len(remedy.attempts) == 1 and remedy.attempts[0].before.verdict == "training_problem"
    failed = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["train_accuracy>=0.5"]
    output = failed[0].find("system-out").text
    if remedy.best is None:  # say so, in the output and the report
        assert "No verified remedy" in out.stdout and "No verified remedy" in output
        pytest.fail(f"no patch fixed the unhealthy job: {remedy.raw}")
    patch = json.dumps(remedy.best.patch, sort_keys=True)
    assert props["remedy_fixed_by"] == remedy.best.job_id and props["remedy_patch"] == patch
    assert f"Verified remedy: job {remedy.best.job_id}" in out.stdout and patch in out.stdout
    assert patch in output
    best = next(a for a in remedy.attempts if a.job_id == remedy.best.job_id)
    assert best.fixed is True and f"train_accuracy {best.after.train_accuracy:.4f}" in out.stdout
    assert remedy.best.request == sdk.jobs.get(remedy.best.job_id).request
    # the SDK's create answers the existing remedy; a healthy job has none to start
    assert sdk.remedies.create(props["job_id"], max_attempts=1).id == remedy.id
    if best.after.verdict == "healthy":
        with pytest.raises(ConflictError, match="healthy"):
            sdk.remedies.create(remedy.best.job_id)
    shown = run_cli("remedy", props["job_id"], url=api_url)
    assert shown.returncode == 0 and patch in shown.stdout
