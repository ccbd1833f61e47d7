"""Sweeps without a worker: the plan (grid x random draws x seeds, dotted paths, component
switches, deterministic draws), and advancing on a real database: lazy, race-safe, within the
owner's active-jobs cap, done when every child has ended."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from sqlalchemy import select

from core.db import jobs, make_engine
from core.jobstore import JobStore
from core.settings import Limits, Quotas, Settings
from core.sweep_plan import SweepInvalid, apply, combinations, draws, load_body, plan
from core.sweeps import SweepStore

BASE = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [4]}, "epochs": 2}


def planned(body: dict, max_size: int = 64) -> list[dict]:
    return plan(load_body(body), limits=Limits(), resolver=None, max_size=max_size)


def test_the_grid_is_crossed_with_the_draws_and_the_seeds_in_order():
    children = planned({"base": BASE, "grid": {"activation": ["sigmoid", "relu"], "epochs": [1, 3]},
                        "random": {"n": 3, "seed": 7, "space": {"optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
                                                                 "batch_size": {"int_uniform": [8, 64]}}},
                        "seeds": [5, 6]})
    assert len(children) == 2 * 2 * 3 * 2
    assert [c["index"] for c in children] == list(range(24))
    assert [c["seed"] for c in children[:4]] == [5, 6, 5, 6]
    assert [c["combination"] for c in children[:4]] == [0, 0, 1, 1]
    grid_points = [(c["values"]["activation"], c["values"]["epochs"]) for c in children[::6]]
    assert grid_points == [("sigmoid", 1), ("sigmoid", 3), ("relu", 1), ("relu", 3)]
    drawn = [c["values"]["optimizer.learning_rate"] for c in children[:6:2]]
    assert drawn == [c["values"]["optimizer.learning_rate"] for c in children[6:12:2]]  # each draw crossed with each point
    assert len(set(drawn)) == 3 and all(1e-4 <= v <= 1e-1 for v in drawn)
    for child in children:
        request = child["request"]
        assert request["seed"] == child["seed"]
        assert request["activation"]["name"] == child["values"]["activation"]
        assert request["optimizer"]["learning_rate"] == child["values"]["optimizer.learning_rate"]
        assert isinstance(request["batch_size"], int) and 8 <= request["batch_size"] <= 64
        assert "seed" not in child["values"]


def test_draws_are_deterministic_from_the_random_seed():
    space = {"optimizer.learning_rate": {"uniform": [0.01, 0.1]}, "activation": {"choice": ["relu", "tanh", "elu"]}}
    first = draws({"n": 5, "seed": 1, "space": space})
    assert first == draws({"n": 5, "seed": 1, "space": space})
    assert first != draws({"n": 5, "seed": 2, "space": space})
    assert all(d["activation"] in ("relu", "tanh", "elu") for d in first)


def test_dotted_paths_set_nested_fields_and_a_component_switch_drops_knobs_that_no_longer_apply():
    base = {**BASE, "optimizer": {"name": "momentum", "learning_rate": 0.05, "momentum": 0.8},
            "activation": {"name": "leaky_relu", "negative_slope": 0.2}}
    request = apply(base, {"optimizer.name": "adam", "activation": "sigmoid", "regularization.l2": 0.01,
                           "architecture.hidden_layers": [8, 8]}, seed=3)
    assert request["optimizer"] == {"name": "adam", "learning_rate": 0.05}  # momentum is not an adam knob
    assert request["activation"] == {"name": "sigmoid"}
    assert request["regularization"] == {"l2": 0.01} and request["architecture"]["hidden_layers"] == [8, 8]
    assert request["seed"] == 3 and base["optimizer"]["name"] == "momentum"  # the base is not changed
    same = apply(base, {"optimizer.momentum": 0.5}, seed=None)
    assert same["optimizer"] == {"name": "momentum", "learning_rate": 0.05, "momentum": 0.5}
    knob = apply(BASE, {"activation.negative_slope": 0.3, "activation.name": "leaky_relu"}, seed=None)
    assert knob["activation"] == {"name": "leaky_relu", "negative_slope": 0.3}
    default = apply(BASE, {"optimizer.learning_rate": 0.3}, seed=None)  # the default optimizer gets the knob
    assert default["optimizer"] == {"name": "adam", "learning_rate": 0.3}
    children = planned({"base": base, "grid": {"optimizer": ["sgd", {"name": "nesterov", "momentum": 0.95}]}})
    assert [c["request"]["optimizer"] for c in children] == [
        {"name": "sgd", "learning_rate": 0.05}, {"name": "nesterov", "learning_rate": 0.05, "momentum": 0.95}]


def test_without_a_grid_the_sweep_runs_the_base_once_per_seed():
    assert [c["values"] for c in planned({"base": BASE, "seeds": [1, 2, 3]})] == [{}, {}, {}]
    assert combinations(load_body({"base": BASE})) == [{}]


@pytest.mark.parametrize("body, where", [
    ({"grid": {"architecture.width": [3]}}, "architecture.width"),
    ({"grid": {"optimizer.momentun": [0.9]}}, "optimizer.momentun"),
    ({"random": {"n": 1, "space": {"regularization.l3": {"uniform": [0, 1]}}}}, "regularization.l3"),
    ({"grid": {"dataset.name.first": ["x"]}}, "dataset.name.first"),
])
def test_an_unknown_path_is_refused_naming_it(body, where):
    with pytest.raises(SweepInvalid, match=where.replace(".", r"\.")):
        planned({"base": BASE, **body})


def test_every_combination_is_validated_and_the_bad_ones_are_named():
    with pytest.raises(SweepInvalid) as caught:
        planned({"base": BASE, "grid": {"epochs": [2, 0, 3], "regularization.dropout": [0.0, 1.5]}, "seeds": [0, 1]})
    bad = caught.value.errors["combinations"]
    assert list(bad) == ["1", "2", "3", "5"]
    assert bad["2"]["values"] == {"epochs": 0, "regularization.dropout": 0.0} and "epochs" in bad["2"]["errors"]
    assert "Combination 1 (epochs=2, regularization.dropout=1.5)" in caught.value.message
    assert "regularization.dropout" in caught.value.message
    with pytest.raises(SweepInvalid, match="at most 5 .*TRAINRX_MAX_SWEEP_SIZE"):
        planned({"base": BASE, "grid": {"epochs": [1, 2, 3]}, "seeds": [0, 1]}, max_size=5)


# --- advancing on a real database -------------------------------------------

@pytest.fixture()
def db(settings):
    """The suite's database (SQLite, or PostgreSQL in CI's second run): the lock differs between them."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def settings_with(tmp_path, active: int = 1000) -> Settings:
    return Settings(data_dir=tmp_path, database_url="", redis_url="", quotas=replace(Quotas(),
                                                                                     max_active_jobs_per_owner=active))


def unfinished(engine, sweep_id: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(jobs.c.id, jobs.c.sweep_index).where(
            jobs.c.sweep_id == sweep_id, jobs.c.status.in_(["queued", "running"])))]


def new_sweep(engine, runs: int, max_parallel: int) -> dict:
    # cuda children: on the gpu queue no test worker serves, so none of them ever trains here.
    body = load_body({"base": {**BASE, "device": "cuda"}, "grid": {"epochs": list(range(1, runs + 1))}, "max_parallel": max_parallel})
    return SweepStore(engine).create("alice", body, plan(body, limits=Limits(), resolver=None, max_size=64))[0]


def test_racing_advances_never_pass_max_parallel_nor_create_an_index_twice(db, tmp_path):
    sweeps, store, settings = SweepStore(db), JobStore(db), settings_with(tmp_path)
    sweep = new_sweep(db, runs=7, max_parallel=3)
    seen: set[int] = set()
    while True:
        threads = [threading.Thread(target=sweeps.advance, args=(sweep["id"], settings, None)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        running = unfinished(db, sweep["id"])
        assert len(running) <= 3
        if not running:
            break
        for job_id, index in running:  # every child ends (a queued job's cancel is immediate)
            assert index not in seen
            seen.add(index)
            assert store.request_cancel(job_id, owner=None) == "queued"
    assert seen == set(range(7))
    assert sweeps.get(sweep["id"], owner=None)["status"] == "done"
    assert len(sweeps.children(sweep["id"])) == 7


def test_a_full_active_jobs_quota_makes_the_sweep_wait(db, tmp_path):
    sweeps, store = SweepStore(db), JobStore(db)
    other, _ = store.create(BASE, "gpu", owner="alice")  # alice's one allowed active job
    sweep = new_sweep(db, runs=2, max_parallel=2)
    advanced = sweeps.advance(sweep["id"], settings_with(tmp_path, active=1), None)
    assert advanced.created == [] and advanced.status == "running"
    store.request_cancel(other["id"], owner=None)
    advanced = sweeps.advance(sweep["id"], settings_with(tmp_path, active=1), None)
    assert [row["sweep_index"] for row in advanced.created] == [0]
    assert store.request_cancel(advanced.created[0]["id"], owner=None) == "queued"
    assert sweeps.get(sweep["id"], owner="bob") is None  # another owner's sweep does not exist


def test_a_cancelled_sweep_creates_no_more_children(db, tmp_path):
    sweeps = SweepStore(db)
    sweep = new_sweep(db, runs=3, max_parallel=1)
    sweeps.advance(sweep["id"], settings_with(tmp_path), None)
    open_children = sweeps.cancel(sweep["id"], owner="alice")  # the API cancels these through the jobs' path
    assert len(open_children) == 1
    assert sweeps.advance(sweep["id"], settings_with(tmp_path), None).created == []
    assert sweeps.get(sweep["id"], owner=None)["status"] == "cancelled"
    assert sweeps.cancel(sweep["id"], owner="bob") is None
    assert JobStore(db).request_cancel(open_children[0], owner=None) == "queued"


def test_create_child_queues_and_publishes_within_the_owners_cap(db, tmp_path, settings):
    from core.child_jobs import create_child
    from core.queueing import make_celery

    store, celery = JobStore(db), make_celery(settings)
    request = plan(load_body({"base": {**BASE, "device": "cuda"}}), limits=Limits(), resolver=None, max_size=1)[0]
    job = create_child(store, celery, settings_with(tmp_path, active=1), "carol", request["request"], "gpu",
                       sweep_id="s" * 32, sweep_index=0)
    assert job["status"] == "queued" and job["sweep_id"] == "s" * 32 and job["owner"] == "carol"
    refused = create_child(store, celery, settings_with(tmp_path, active=1), "carol", request["request"], "gpu")
    assert refused is None and store.count_active("carol") == 1  # nothing was left behind
    assert store.request_cancel(job["id"], owner=None) == "queued"
