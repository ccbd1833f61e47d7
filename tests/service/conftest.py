"""Fixtures the plot and report tests share."""

from __future__ import annotations

import pytest

from tests.conftest import authed_client, run_job

# A job name a browser must never run nor fetch, and that matplotlib must not parse as mathtext.
HOSTILE_NAME = '<script>alert("x")</script><img src="http://evil.example/a.png"> $\\frac{1}{0$ &amp;'
# A tiny deep sigmoid network: three epochs in seconds, a diagnosis with findings and patches.
PLOTTED = {"name": HOSTILE_NAME, "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8, 8, 8]},
           "activation": "sigmoid", "optimizer": {"name": "sgd", "learning_rate": 0.05}, "epochs": 3, "seed": 0}


@pytest.fixture(scope="session")
def plotted_job(app, worker) -> dict:
    """One finished tiny job, trained once for every plot and report test."""
    job = run_job(authed_client(app), PLOTTED)
    assert job["status"] == "succeeded", job
    return job
