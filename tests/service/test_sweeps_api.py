"""POST/GET /v1/sweeps without a worker: validation before anything is queued, lazy creation of
the first children, cancel, isolation and listing. The runs themselves: tests/e2e/test_sweeps.py."""

from __future__ import annotations

from sqlalchemy import func, select

from core.db import jobs, make_engine

# cuda children wait on the gpu queue, which no test worker serves: they stay queued whatever else runs.
BASE = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 2, "device": "cuda"}


def count_jobs(settings, **where) -> int:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        query = select(func.count()).select_from(jobs)
        for column, value in where.items():
            query = query.where(jobs.c[column] == value)
        n = conn.execute(query).scalar()
    engine.dispose()
    return n


def post(client, body: dict, status: int = 202) -> dict:
    resp = client.post("/v1/sweeps", json=body)
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def test_a_sweep_queues_its_first_max_parallel_children_and_cancels_them(client, settings):
    sweep = post(client, {"name": "lr", "base": BASE, "grid": {"optimizer.learning_rate": [0.1, 0.01, 0.001]},
                          "seeds": [0, 1], "max_parallel": 2})
    assert sweep["status"] == "running" and sweep["size"] == 6 and sweep["max_parallel"] == 2
    assert sweep["counts"] == {"pending": 4, "queued": 2, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert [c["seed"] for c in sweep["children"]] == [0, 1, 0, 1, 0, 1]
    assert [c["values"] for c in sweep["children"][::2]] == [{"optimizer.learning_rate": v} for v in (0.1, 0.01, 0.001)]
    assert count_jobs(settings, sweep_id=sweep["id"]) == 2
    created = [c["job_id"] for c in sweep["children"] if c["job_id"]]
    job = client.get(f"/v1/jobs/{created[1]}").get_json()
    assert job["request"]["seed"] == 1 and job["request"]["optimizer"]["learning_rate"] == 0.1
    assert job["links"]["sweep"] == f"/v1/sweeps/{sweep['id']}" and "parent" not in job["links"]
    assert [row["values"] for row in sweep["results"]] == [c["values"] for c in sweep["children"][::2]]

    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 202
    body = cancelled.get_json()
    assert body["status"] == "cancelled" and body["counts"]["cancelled"] == 2 and body["counts"]["pending"] == 0
    assert {c["status"] for c in body["children"][2:]} == {"not_created"}
    again = client.post(f"/v1/sweeps/{sweep['id']}/cancel")  # idempotent
    assert again.status_code == 202 and again.get_json()["status"] == "cancelled"
    assert count_jobs(settings, sweep_id=sweep["id"]) == 2


def test_a_bad_combination_is_a_422_naming_it_and_nothing_is_queued(client, settings):
    before = count_jobs(settings)
    body = post(client, {"base": BASE, "grid": {"activation": ["relu", "maxout"],
                                                "architecture.batch_norm": [False, True]},
                         "seeds": [0], "base_override": 1}, 422)
    assert "base_override" in body["errors"]  # unknown top-level key
    body = post(client, {"base": {**BASE, "batch_size": 1}, "grid": {"architecture.batch_norm": [False, True]}}, 422)
    assert "Combination 1 (architecture.batch_norm=true)" in body["message"]
    assert body["errors"]["combinations"]["1"]["values"] == {"architecture.batch_norm": True}
    assert "batch" in body["message"].lower()
    assert count_jobs(settings) == before


def test_unknown_paths_the_seed_path_and_the_size_cap_are_422s(client):
    body = post(client, {"base": BASE, "grid": {"architecture.hidden_layer": [[4]]}}, 422)
    assert "architecture.hidden_layer" in body["message"]
    body = post(client, {"base": BASE, "random": {"n": 2, "space": {"optimizer.lr": {"uniform": [0.1, 1]}}}}, 422)
    assert "optimizer.lr" in body["message"] and "optimizer.lr" in body["errors"]["random"]["space"]
    assert "seeds" in post(client, {"base": BASE, "grid": {"seed": [1, 2]}}, 422)["message"]
    body = post(client, {"base": BASE, "grid": {"epochs": [1, 2, 3, 4, 5]}, "seeds": list(range(13))}, 422)
    assert "65" in body["message"] and "TRAINRX_MAX_SWEEP_SIZE" in body["message"]
    body = post(client, {"base": BASE, "random": {"n": 1, "space": {"optimizer.learning_rate": {"log_uniform": [0, 1]}}}},
                422)
    assert body["errors"]["random"]["space"]["optimizer.learning_rate"]
    assert "max_parallel" in post(client, {"base": BASE, "max_parallel": 17}, 422)["errors"]
    assert post(client, {"grid": {}}, 422)["errors"]["base"]


def test_another_owners_sweep_does_not_exist_and_lists_are_per_owner(client, other_client):
    sweep = post(client, {"name": "mine", "base": BASE, "max_parallel": 1})
    assert other_client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert other_client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 404
    assert sweep["id"] not in [s["id"] for s in other_client.get("/v1/sweeps").get_json()["items"]]
    listed = client.get("/v1/sweeps?limit=1").get_json()
    assert listed["items"][0]["id"] == sweep["id"] and "children" not in listed["items"][0]
    if listed["next_cursor"]:
        following = client.get(f"/v1/sweeps?limit=100&cursor={listed['next_cursor']}").get_json()
        assert sweep["id"] not in [s["id"] for s in following["items"]]
    assert client.get("/v1/sweeps?cursor=nope").status_code == 422
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 202


def test_the_dashboard_lists_the_owners_sweeps_and_shows_one(app, client):
    from tests.conftest import OTHER_OWNER, OWNER, TOKENS
    from tests.service.test_dashboard_pages import session_client

    sweep = post(client, {"name": "page <b>sweep</b>", "base": BASE, "grid": {"activation": ["sigmoid", "tanh"]},
                          "max_parallel": 1})
    browser, _ = session_client(app, TOKENS[OWNER])
    listing = browser.get("/sweeps").get_data(as_text=True)
    assert f'data-sweep-id="{sweep["id"]}"' in listing and "page &lt;b&gt;sweep&lt;/b&gt;" in listing
    page = browser.get(f"/sweeps/{sweep['id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<b>sweep</b>" not in html
    assert "<th>activation</th>" in html and ">sigmoid</td>" in html and ">tanh</td>" in html
    assert "1 queued" in html and "1 pending" in html
    other, _ = session_client(app, TOKENS[OTHER_OWNER])
    assert other.get(f"/sweeps/{sweep['id']}").status_code == 404
    assert sweep["id"] not in other.get("/sweeps").get_data(as_text=True)
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 202


def test_an_idempotency_key_makes_the_post_safe_to_retry(client, settings):
    body = {"base": BASE, "grid": {"epochs": [1, 2]}, "max_parallel": 1}
    first = client.post("/v1/sweeps", json=body, headers={"Idempotency-Key": "sweep-key-1"})
    again = client.post("/v1/sweeps", json=body, headers={"Idempotency-Key": "sweep-key-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert count_jobs(settings, sweep_id=first.get_json()["id"]) == 1
    other = client.post("/v1/sweeps", json={**body, "max_parallel": 2}, headers={"Idempotency-Key": "sweep-key-1"})
    assert other.status_code == 409 and "different request" in other.get_json()["message"]
    assert client.post("/v1/sweeps", json=body, headers={"Idempotency-Key": ""}).status_code == 400
    assert client.post(f"/v1/sweeps/{first.get_json()['id']}/cancel").status_code == 202
