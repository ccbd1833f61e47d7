"""`trainrx plot`, `trainrx compare` and `trainrx report` against the live API (gunicorn
with gevent, so the renderer children run under the production worker class)."""

from __future__ import annotations

from PIL import Image

from tests.clients.conftest import WAITING, run_cli
from tests.conftest import HOSTILE_NAME


def test_plot_saves_a_png_of_the_kind_and_size_asked_for(api_url, plotted_job, tmp_path):
    out = tmp_path / "plots" / "gradients.png"
    done = run_cli("plot", plotted_job["id"], "--kind", "gradients", "-o", str(out), "--width", "640",
                   "--height", "400", "--dpi", "80", url=api_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (640, 400)


def test_plot_defaults_to_the_curves_named_after_the_job(api_url, plotted_job, tmp_path):
    done = run_cli("plot", plotted_job["id"], url=api_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / f"{plotted_job['id']}-curves.png") as image:
        assert image.size == (1200, 600)


def test_compare_saves_the_overlay(api_url, plotted_job, sdk, tmp_path):
    other = sdk.jobs.create(WAITING)  # stays queued: a line with no points yet
    out = tmp_path / "compare.png"
    done = run_cli("compare", plotted_job["id"], other.id, "--metric", "val_loss", "-o", str(out), url=api_url)
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.size == (1200, 600)
    assert sdk.plots.compare([plotted_job["id"], other.id]).startswith(b"\x89PNG")
    sdk.jobs.cancel(other.id)


def test_report_saves_the_page(api_url, plotted_job, tmp_path):
    out = tmp_path / "report.html"
    done = run_cli("report", plotted_job["id"], "-o", str(out), url=api_url)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert html.startswith("<!doctype html>") and plotted_job["id"] in html
    assert html.count('src="data:image/png;base64,') == 4
    assert "<script>alert" not in html and HOSTILE_NAME not in html


def test_the_server_refusing_a_plot_is_an_error_naming_the_problem(api_url, plotted_job):
    too_wide = run_cli("plot", plotted_job["id"], "--width", "99999", url=api_url)
    assert too_wide.returncode == 2 and "UnprocessableEntityError" in too_wide.stderr and "width" in too_wide.stderr
    missing = run_cli("report", "0" * 32, url=api_url)
    assert missing.returncode == 3 and "NotFoundError" in missing.stderr and "0" * 32 in missing.stderr
    many = run_cli("compare", *[f"{i:032x}" for i in range(9)], url=api_url)
    assert many.returncode == 2 and "jobs" in many.stderr and "At most 8" in many.stderr
    bad_kind = run_cli("plot", plotted_job["id"], "--kind", "histogram", url=api_url)
    assert bad_kind.returncode == 2 and "histogram" in bad_kind.stderr


def test_check_saves_the_report_of_the_job_it_checked(api_url, worker, tmp_path):
    spec = tmp_path / "tiny.json"
    spec.write_text('{"name": "ci-report", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, '
                    '"epochs": 1}')
    out = tmp_path / "reports" / "trainrx.html"
    done = run_cli("check", str(spec), "--expect", "val_accuracy>=0", "--report", str(out), "--no-progress",
                   url=api_url)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = done.stderr.split("submitted job ")[1].split()[0]
    html = out.read_text()
    assert f"<code>{job_id}</code>" in html and "ci-report" in html
