"""The Alembic migrations make exactly the schema the models describe, upgrade a
database made before migrations, and nothing starts on an unmigrated database."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select

from core import migrate
from core.db import LEGACY_OWNER, jobs, make_engine, metadata
from core.settings import Limits, Settings
from core.tokens import ADMIN, DEV_TOKEN_FILE, TokenStore, bootstrap_admin_token

FIRST_SCHEMA = Path(__file__).with_name("schema_0001.py")


def diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_the_migrations_make_the_models_schema(settings):
    """On the suite's own database (SQLite here, PostgreSQL in CI's second run)."""
    engine = make_engine(settings.database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert diff(engine) == []
    engine.dispose()


def test_a_database_made_before_migrations_is_stamped_and_upgraded(tmp_path):
    spec = importlib.util.spec_from_file_location("schema_0001", FIRST_SCHEMA)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(old.jobs).values(
            id="a" * 32, status="queued", queue="cpu", request={}, request_hash="h", idempotency_key="k",
            created_at=datetime.now(timezone.utc), attempts=0, cancel_requested=False, progress_epoch=0))
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(jobs.c.owner)).scalar() == LEGACY_OWNER
    engine.dispose()


def test_the_api_refuses_an_unmigrated_database_saying_what_to_run(tmp_path):
    from service import create_app

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'new.db'}",
                        redis_url="redis://127.0.0.1:1/0", limits=Limits())
    with pytest.raises(migrate.SchemaNotCurrent, match="make migrate"):
        create_app({"SETTINGS": settings})


def test_the_bootstrap_token_is_made_once_and_kept_private(tmp_path):
    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    store = TokenStore(engine)
    token, where = bootstrap_admin_token(store, tmp_path, None)
    path = tmp_path / DEV_TOKEN_FILE
    assert where == str(path) and path.read_text().strip() == token
    assert path.stat().st_mode & 0o777 == 0o600
    assert bootstrap_admin_token(store, tmp_path, None)[0] == token  # the same one next time
    assert store.find(token).role == ADMIN
    given = "trx_" + "g" * 40
    assert bootstrap_admin_token(store, tmp_path, given) == (given, "TRAINRX_BOOTSTRAP_TOKEN")
    assert bootstrap_admin_token(store, tmp_path, given)[0] == given  # idempotent
    assert len(store.list("admin")) == 2
    with pytest.raises(ValueError, match="at least 32"):
        bootstrap_admin_token(store, tmp_path, "short")
    engine.dispose()


def test_uploads_made_before_tasks_are_classification_without_a_shape():
    from sqlalchemy import text

    from core.uploads import UploadStore

    engine = make_engine("sqlite://")
    migrate.upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO datasets (id, name, owner, format, rows, features, classes, class_counts, feature_ranges, "
            "upload_bytes, stored_bytes, created_at) VALUES ('" + "c" * 32 + "', 'old', 'tester', 'npz', 10, 2, 2, "
            "'{}', '[]', 1, 1, '2026-01-01 00:00:00')"))
    migrate.upgrade(engine)
    shape = UploadStore(engine, Path("/nonexistent")).shape("c" * 32, owner="tester")
    assert (shape.task, shape.input_shape, shape.classes) == ("classification", None, 2)
    engine.dispose()
