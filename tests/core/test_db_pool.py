"""PostgreSQL connections are pinged before they are lent only after PING_IDLE_S idle
(core/db.py): a dropped idle connection is replaced unseen; one dropped while in steady use
fails one statement as transient (the API's 503 with Retry-After), and is replaced."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import db

PG_SERVER = os.environ.get("TRAINRX_MIGRATION_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture()
def engine():
    try:
        psycopg.connect(PG_SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_SERVER} ({type(exc).__name__})")
    engine = db.make_engine(PG_SERVER)
    yield engine
    engine.dispose()


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def drop_on_the_server(pid: int) -> None:
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


def test_an_idle_connection_the_server_dropped_is_replaced_before_it_is_lent(engine, monkeypatch):
    first = backend_pid(engine)
    drop_on_the_server(first)
    monkeypatch.setattr(db, "PING_IDLE_S", 0.0)  # every checkout comes after an idle spell
    assert backend_pid(engine) != first  # no error: the ping found it gone, the pool connected afresh


def test_a_connection_in_steady_use_is_not_pinged_and_a_drop_reads_as_transient(engine, monkeypatch):
    monkeypatch.setattr(db, "PING_IDLE_S", 3600.0)
    first = backend_pid(engine)
    drop_on_the_server(first)
    with pytest.raises(DBAPIError) as failed:
        backend_pid(engine)  # not pinged: the statement itself finds the connection gone
    assert db.is_transient(failed.value)
    assert backend_pid(engine) != first
