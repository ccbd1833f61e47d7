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


def test_creating_a_remedy_is_retried_like_a_get_and_a_409_is_not(scripted):
    """The server answers a repeated POST /v1/jobs/{id}/remedies with the first remedy, so the SDK
    may repeat it after a 503; a 409 (the job cannot be remedied) is the server saying no."""
    from trainrx import ConflictError

    script, client = scripted
    path = f"/v1/jobs/{'a' * 32}/remedies"
    remedy = {"id": "r" * 32, "job_id": "a" * 32, "status": "running", "attempts": [
        {"patch": {"epochs": 2}, "status": "queued", "job_id": "b" * 32, "before": {"verdict": "training_problem"},
         "after": None, "fixed": None}], "best": None}
    busy = (503, {"code": 503, "status": "Service Unavailable", "message": "busy"}, {"Retry-After": "0"})
    script.on("POST", path, busy, (202, remedy, {}))
    got = client.remedies.create("a" * 32, max_attempts=1)
    assert len(script.seen) == 2 and got.attempts[0].before.verdict == "training_problem" and not got.done
    script.seen.clear()
    script.on("POST", path, (409, {"code": 409, "status": "Conflict", "message": "The job is healthy"}, {}))
    with pytest.raises(ConflictError, match="healthy"):
        client.remedies.create("a" * 32)
    assert len(script.seen) == 1
