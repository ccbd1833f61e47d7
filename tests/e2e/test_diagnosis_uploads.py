"""The data check of the diagnosis on an uploaded dataset, acted on with resubmit."""

from __future__ import annotations

from tests.conftest import run_job, wait_for
from tests.sample_uploads import as_csv, blobs, uploaded


def test_badly_scaled_uploads_are_diagnosed_and_the_scaling_patch_fixes_them(live):
    x, y = blobs(rows_per_class=80)
    dataset = uploaded(live, as_csv(x, y), "blobs.csv")
    job = run_job(live, {"dataset": {"id": dataset["id"]}, "architecture": {"hidden_layers": [32, 32]},
                         "optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 10})
    diagnosis = live.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    found = {f["code"]: f for f in diagnosis["findings"]}
    assert "unnormalized_input" in found, diagnosis
    assert found["unnormalized_input"]["evidence"]["input_abs_max"] > 1000
    patch = found["unnormalized_input"]["suggestions"][0]["patch"]
    assert patch == {"dataset": {"scale": "standard"}}
    child = live.post(f"/v1/jobs/{job['id']}/resubmit", json={"patch": patch}).get_json()
    done = wait_for(live, child["id"])
    assert done["request"]["dataset"]["scale"] == "standard"
    assert done["summary"]["train_accuracy"] > job["summary"]["train_accuracy"] + 0.2, (job["summary"], done["summary"])
    redo = live.get(f"/v1/jobs/{child['id']}/diagnosis").get_json()
    assert "unnormalized_input" not in {f["code"] for f in redo["findings"]}
