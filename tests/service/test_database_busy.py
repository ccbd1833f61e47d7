"""A database lock held by someone else makes a request answer 503 with Retry-After
after a short wait, instead of freezing the API process (SQLite waits inside C, which
stops every greenlet of a gevent worker) until gunicorn kills it."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from core import migrate
from core.db import is_transient, make_engine
from core.settings import Limits, Settings
from core.tokens import USER, TokenStore

ON_POSTGRES = (os.environ.get("DATABASE_URL") or "").startswith("postgres")
JOB = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]}, "epochs": 1}


def _assert_busy(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) >= 1
    body = response.get_json()
    assert body["code"] == 503 and body["status"] == "Service Unavailable" and "busy" in body["message"]


@pytest.fixture()
def sqlite_app(tmp_path, redis_url):
    """An API on an SQLite database of its own, so the lock holds up no other test."""
    from service import create_app

    database_url = f"sqlite:///{tmp_path / 'trainrx.db'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    _, token = TokenStore(engine).create("locked-out", USER, label="tests")
    engine.dispose()
    settings = Settings(data_dir=tmp_path, database_url=database_url, redis_url=redis_url, limits=Limits())
    app = create_app({"SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    yield client, tmp_path / "trainrx.db"
    app.extensions["trainrx"].store.engine.dispose()


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's lock; the PostgreSQL test below covers lock_timeout")
def test_a_locked_sqlite_database_answers_503_with_retry_after(sqlite_app):
    client, path = sqlite_app
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long transaction elsewhere would hold it
    try:
        _assert_busy(client.post("/v1/jobs", json=JOB))
        assert client.get("/v1/jobs").status_code == 200  # readers never wait in WAL mode
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's lock_timeout")
def test_a_locked_postgresql_table_answers_503_with_retry_after(client, settings):
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as holder:
            holder.execute(text("BEGIN"))
            holder.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))  # blocks writers, not readers
            try:
                _assert_busy(client.post("/v1/jobs", json=JOB))
                assert client.get("/v1/jobs").status_code == 200
            finally:
                holder.execute(text("ROLLBACK"))
    finally:
        engine.dispose()


def test_a_fault_in_the_query_is_not_mistaken_for_a_busy_database():
    engine = make_engine("sqlite://")
    with pytest.raises(OperationalError) as raised, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_transient(raised.value)  # a 500 of ours, not a 503 to retry
    engine.dispose()
