"""Database migrations (Alembic): ``make migrate`` or ``python -m core.migrate``.

The API and the workers refuse to start on a database whose schema is not at
the newest revision (:func:`require_current`); ``make run`` migrates by itself
before it starts them. A database made before migrations existed (by the old
``metadata.create_all``) is recognised by its tables and stamped at the first
revision, whose schema it has, then upgraded like any other.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from core.db import make_engine

SCRIPTS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"


class SchemaNotCurrent(RuntimeError):
    """The database is not migrated to the revision this code needs."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; stamps a pre-migration database first."""
    with engine.begin() as conn:
        config = alembic_config(conn)
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables and "jobs" in tables:
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, revision)


def require_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent, with what to do, unless the schema is at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no schema yet" if current is None else f"is at revision {current}"
        raise SchemaNotCurrent(f"The database {where} {state}; this version of trainrx needs revision {head}. "
                               "Run `make migrate` (python -m core.migrate) first.")


def main(argv: list[str] | None = None) -> int:
    from core.settings import Settings
    from core.tokens import ADMIN, BOOTSTRAP_ENV, BOOTSTRAP_OWNER, TokenStore

    parser = argparse.ArgumentParser(prog="python -m core.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the database is current")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        if args.check:
            require_current(engine)
            print(f"trainrx: the database is at revision {head_revision()} (current)")
            return 0
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
        print(f"trainrx: database migrated {before or 'empty'} -> {after}" if before != after
              else f"trainrx: database already at revision {after}")
        if os.environ.get(BOOTSTRAP_ENV):
            TokenStore(engine).ensure(os.environ[BOOTSTRAP_ENV], BOOTSTRAP_OWNER, ADMIN, "bootstrap")
            print(f"trainrx: the admin token from {BOOTSTRAP_ENV} exists")
        return 0
    except SchemaNotCurrent as exc:
        print(f"trainrx: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
