"""examples/recipe.py, the script that regenerates docs/recipe.md: every lesson's sweep is one the
server accepts, its readings never claim a lesson the numbers do not show, and a real run against
the live API and a worker writes the page (spec, results table that matches the sweep, figure)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from core.settings import Limits
from core.sweep_plan import plan
from tests.clients.conftest import start_api
from tests.conftest import OWNER, ROOT, TOKENS, authed_client

sys.path.insert(0, str(ROOT / "examples"))
import recipe_lessons as L  # noqa: E402

# The smallest lesson (two runs of two epochs on 200 samples): what one end-to-end run can afford.
E2E_LESSON = "early-stopping"


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("lesson", L.LESSONS, ids=lambda lesson: lesson.key)
def test_every_lesson_is_a_sweep_the_server_accepts(lesson, quick):
    body = lesson.body(quick)
    children = plan(body, limits=Limits(), resolver=None, max_size=64)
    combinations = 1
    for values in body["grid"].values():
        combinations *= len(values)
    assert len(children) == combinations * len(body["seeds"])
    assert {child["seed"] for child in children} == set(body["seeds"])


def metric(mean: float, std: float = 0.0, n: int = 2) -> dict:
    return {"mean": mean, "std": std, "n": n}


def row(values: dict, train_acc: float, val_acc: float = 0.9, spread: float = 0.01, val_loss: float = 0.3) -> dict:
    return {"values": values, "job_ids": [], "metrics": {
        "train_accuracy": metric(train_acc, spread), "val_accuracy": metric(val_acc, spread),
        "train_loss": metric(1 - train_acc, spread), "val_loss": metric(val_loss, spread)}}


def activation_rows(deep_relu: float) -> list[dict]:
    lesson = next(lesson for lesson in L.LESSONS if lesson.key == "activations")
    shallow, deep = lesson.sweep["grid"]["architecture.hidden_layers"]
    rows = []
    for name in lesson.sweep["grid"]["activation"]:
        rows.append(row({"activation": name, "architecture.hidden_layers": shallow}, 0.9))
        rows.append(row({"activation": name, "architecture.hidden_layers": deep},
                        0.1 if name == "sigmoid" else deep_relu if name == "relu" else 0.95))
    return rows


def test_the_activation_reading_says_whether_the_lesson_shows():
    lesson = next(lesson for lesson in L.LESSONS if lesson.key == "activations")
    shown = lesson.reading(lesson.sweep, L.Outcome(rows=activation_rows(deep_relu=0.95), comparison={}))
    assert "Depth breaks sigmoid" in shown and "sigmoid 90.0% → 10.0%" in shown
    # ReLU as stuck as sigmoid: the same sentence must not claim the lesson.
    not_shown = lesson.reading(lesson.sweep, L.Outcome(rows=activation_rows(deep_relu=0.105), comparison={}))
    assert "does not show" in not_shown and "Depth breaks sigmoid" not in not_shown


def test_the_degradation_reading_calls_a_gap_inside_the_spread_noise():
    lesson = next(lesson for lesson in L.LESSONS if lesson.key == "degradation")
    shallow, deep = lesson.sweep["grid"]["architecture.hidden_layers"]

    def rows(deep_plain: float, spread: float) -> list[dict]:
        return [row({"architecture.hidden_layers": shallow, "architecture.residual": False}, 0.95, spread=spread),
                row({"architecture.hidden_layers": deep, "architecture.residual": False}, deep_plain, spread=spread),
                row({"architecture.hidden_layers": shallow, "architecture.residual": True}, 0.95, spread=spread),
                row({"architecture.hidden_layers": deep, "architecture.residual": True}, 0.96, spread=spread)]

    clear = lesson.reading(lesson.sweep, L.Outcome(rows=rows(0.5, 0.01), comparison={
        "findings": [{"code": "degradation"}]}))
    assert "-45.0 points)" in clear and "reports `degradation`" in clear
    noisy = lesson.reading(lesson.sweep, L.Outcome(rows=rows(0.9, 0.1), comparison={"findings": []}))
    assert "-5.0 points, within the seed spread" in noisy and "did not report `degradation`" in noisy


def test_the_early_stopping_reading_compares_the_returned_validation_loss():
    lesson = next(lesson for lesson in L.LESSONS if lesson.key == "early-stopping")

    def outcome(with_patience_loss: float) -> L.Outcome:
        rows = [row({"patience": None}, 1.0, val_loss=2.5, spread=0.05) | {"job_ids": ["a", "b"]},
                row({"patience": 5}, 0.8, val_loss=with_patience_loss, spread=0.05) | {"job_ids": ["c", "d"]}]
        ran = {"a": 30, "b": 30, "c": 15, "d": 17}
        return L.Outcome(rows=rows, comparison={}, summaries={job: {"epochs_run": n} for job, n in ran.items()})

    stopped = lesson.reading(lesson.sweep, outcome(1.5))
    assert "trained all 30 epochs" in stopped and "stopped after 16 epochs" in stopped
    assert "1.000 lower" in stopped
    assert "no clear difference" in lesson.reading(lesson.sweep, outcome(2.45))


def test_a_reading_with_an_unfinished_combination_reads_nothing_into_it():
    lesson = next(lesson for lesson in L.LESSONS if lesson.key == "optimizers")
    rows = [row({"optimizer": name}, 0.9) for name in lesson.sweep["grid"]["optimizer"]]
    rows[0]["metrics"]["train_loss"] = {"mean": None, "std": None, "n": 0}
    assert "cannot be read" in lesson.reading(lesson.sweep, L.Outcome(rows=rows, comparison={}))


@pytest.fixture(scope="module")
def api(settings, tmp_path_factory, worker):
    yield from start_api(settings, tmp_path_factory.mktemp("api-recipe") / "gunicorn.log")


def table_lines(page: str) -> list[str]:
    """The results table's data rows: the lines after its |---| separator."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|---|"))
    return [line for line in lines[start + 1:] if line.startswith("| ")]


def run_script(api: str, out, *extra: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "recipe.py"), "--quick", "--lessons", E2E_LESSON,
                           "--out", str(out), "--url", api, "--token", TOKENS[OWNER], *extra],
                          capture_output=True, text=True, timeout=600, cwd=out.parent.parent)
    assert done.returncode == 0, done.stderr


def test_the_script_writes_the_page_from_a_real_sweep(api, app, tmp_path):
    out = tmp_path / "docs" / "recipe.md"
    run_script(api, out)
    page = out.read_text()
    lesson = next(lesson for lesson in L.LESSONS if lesson.key == E2E_LESSON)
    assert f"## {lesson.title}" in page and "**What this run shows:**" in page
    spec = re.search(r"```json\n(.*?)\n```", page, re.S).group(1)
    assert json.loads(spec) == lesson.body(quick=True)

    sweep_id = re.search(r"Sweep `([0-9a-f]+)`", page).group(1)
    sweep = authed_client(app, OWNER).get(f"/v1/sweeps/{sweep_id}").get_json()
    assert sweep["status"] == "done" and sweep["spec"]["grid"] == lesson.body(quick=True)["grid"]
    lines = table_lines(page)
    assert len(lines) == len(sweep["results"]) == 2
    for line, result in zip(lines, sweep["results"]):
        assert result["finished"] == 1
        for key in ("train_accuracy", "val_accuracy", "train_loss", "val_loss"):
            assert f"{result['metrics'][key]['mean']:.3f} ± 0.000" in line, (key, line)
        assert result["verdict"] in line
    figure = out.parent / "img" / "recipe" / f"{E2E_LESSON}.png"
    assert figure.read_bytes().startswith(b"\x89PNG") and f"(img/recipe/{E2E_LESSON}.png)" in page

    # --resume writes the page again from the same sweep, training nothing more.
    client = authed_client(app, OWNER)
    sweeps_before = client.get("/v1/sweeps?limit=100").get_json()["items"]
    again = tmp_path / "again" / "recipe.md"
    again.parent.mkdir()
    run_script(api, again, "--resume")
    assert f"Sweep `{sweep_id}`" in again.read_text()
    assert client.get("/v1/sweeps?limit=100").get_json()["items"] == sweeps_before
