"""Fixtures for the fast core tests."""

from __future__ import annotations

import pytest

from core import migrate
from core.db import make_engine
from core.jobstore import JobStore


@pytest.fixture()
def store():
    """A JobStore on an in-memory SQLite, migrated like a real database: milliseconds per test."""
    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    yield JobStore(engine)
    engine.dispose()
