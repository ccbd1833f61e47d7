"""GET /v1/jobs/{id}/plots/{name}.png and GET /v1/compare.png on a real finished job:
PNGs of the size asked for, caps, isolation, and a finished job's PNGs stored once."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.plots import spec as P
from service.plots_api import CACHE_PREFIX
from tests.service.test_api import WAITING, assert_error_shape


def decoded(response) -> Image.Image:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    image.load()
    return image


@pytest.mark.parametrize("name", P.PLOT_NAMES)
def test_every_plot_of_a_finished_job_is_a_png_of_the_default_size(client, plotted_job, name):
    image = decoded(client.get(f"/v1/jobs/{plotted_job['id']}/plots/{name}.png"))
    assert image.size == (P.DEFAULT_WIDTH, P.DEFAULT_HEIGHT)


def test_width_height_and_dpi_set_the_pixel_size_and_a_finished_job_stores_each_size_once(app, client, plotted_job):
    job_id = plotted_job["id"]
    url = f"/v1/jobs/{job_id}/plots/gradients.png?width=640&height=400&dpi=80"
    first = client.get(url)
    assert decoded(first).size == (640, 400)
    assert first.headers["Cache-Control"].startswith("private, max-age=")
    artifacts, name = app.extensions["trainrx"].artifacts, f"{CACHE_PREFIX}gradients-640x400-80dpi.png"
    assert name in artifacts.names(job_id) and artifacts.read_bytes(job_id, name) == first.data
    artifacts.write_bytes(job_id, name, b"\x89PNG stored")  # the next answer comes from the store, not a new drawing
    assert client.get(url).data == b"\x89PNG stored"
    artifacts.delete(job_id, name)


def test_a_plot_whose_cache_write_fails_is_still_served(app, client, plotted_job, monkeypatch, caplog):
    """The stored PNG is only a cache: a failed write (a full disk, a database hiccup) is a warning."""
    artifacts = app.extensions["trainrx"].artifacts

    def fail(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(artifacts, "write_bytes", fail)
    with caplog.at_level("WARNING", logger="trainrx.plots"):
        resp = client.get(f"/v1/jobs/{plotted_job['id']}/plots/curves.png?width=700&height=420&dpi=70")
    assert decoded(resp).size == (700, 420)
    assert "could not cache plot" in caplog.text
    assert f"{CACHE_PREFIX}curves-700x420-70dpi.png" not in artifacts.names(plotted_job["id"])


@pytest.mark.parametrize("query, field", [("width=5000", "width"), ("height=100", "height"), ("dpi=301", "dpi"),
                                          ("width=abc", "width"), ("width=320&height=240&dpi=300", "dpi")])
def test_sizes_out_of_range_are_a_422_naming_the_parameter(client, plotted_job, query, field):
    body = assert_error_shape(client.get(f"/v1/jobs/{plotted_job['id']}/plots/curves.png?{query}"), 422)
    assert list(body["errors"]) == [field]


def test_an_unknown_plot_is_a_404_naming_the_plots(client, plotted_job):
    body = assert_error_shape(client.get(f"/v1/jobs/{plotted_job['id']}/plots/histogram.png"), 404)
    assert "histogram" in body["message"] and "curves" in body["message"]


def test_another_owners_job_has_no_plots(other_client, anonymous, plotted_job):
    assert_error_shape(other_client.get(f"/v1/jobs/{plotted_job['id']}/plots/curves.png"), 404)
    assert_error_shape(other_client.get(f"/v1/compare.png?jobs={plotted_job['id']}"), 404)
    assert_error_shape(anonymous.get(f"/v1/jobs/{plotted_job['id']}/plots/curves.png"), 401)


def test_a_queued_job_is_drawn_fresh_and_never_stored(app, client):
    job = client.post("/v1/jobs", json=WAITING).get_json()  # waits on the gpu queue, which nobody serves
    response = client.get(f"/v1/jobs/{job['id']}/plots/curves.png?width=400&height=300")
    assert decoded(response).size == (400, 300) and response.headers["Cache-Control"] == "no-store"
    assert not [n for n in app.extensions["trainrx"].artifacts.names(job["id"]) if n.startswith(CACHE_PREFIX)]
    client.post(f"/v1/jobs/{job['id']}/cancel")


def test_compare_overlays_jobs_and_names_the_one_you_cannot_see(client, plotted_job):
    job_id = plotted_job["id"]
    queued = client.post("/v1/jobs", json=WAITING).get_json()
    image = decoded(client.get(f"/v1/compare.png?jobs={job_id},{queued['id']}&metric=val_loss&width=800&height=400"))
    assert image.size == (800, 400)
    missing = "f" * 32
    body = assert_error_shape(client.get(f"/v1/compare.png?jobs={job_id},{missing}"), 404)
    assert missing in body["message"]
    client.post(f"/v1/jobs/{queued['id']}/cancel")


@pytest.mark.parametrize("query, field", [
    ("jobs=" + ",".join(f"{i:032x}" for i in range(P.MAX_COMPARE_JOBS + 1)), "jobs"),
    ("jobs=,", "jobs"), ("", "jobs"), ("jobs=abc&metric=f1", "metric"), ("jobs=abc&dpi=10", "dpi")])
def test_compare_caps_are_a_422_naming_the_parameter(client, query, field):
    body = assert_error_shape(client.get(f"/v1/compare.png?{query}"), 422)
    assert list(body["errors"]) == [field]
