"""Reading and writing verified remedies (the ``remedies`` table). Every change after the
insert is a conditional update on ``seq``: an advancer that read an older version loses, re-reads
and decides again, so two workers and the periodic sweep can never both move a remedy on from the
same state (the habit of core/jobstore.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.db import jobs, remedies
from core.job_status import ID_PATTERN, as_utc, utcnow
from core.jsonsafe import json_safe

RUNNING, DONE = "running", "done"


class RemedyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, parent: dict, *, max_attempts: int, options: dict, before: dict,
               attempts: list[dict]) -> tuple[dict, bool]:
        """The parent's remedy, made now (created True) or the one it already has (False): one
        remedy per parent job. The parent's row names it too, in the same transaction."""
        row = {"id": uuid.uuid4().hex, "job_id": parent["id"], "owner": parent["owner"], "status": RUNNING,
               "max_attempts": max_attempts, "options": options, "before": json_safe(before),
               "attempts": json_safe(attempts), "best": None, "seq": 0, "created_at": utcnow()}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(remedies).values(**row))
                conn.execute(update(jobs).where(jobs.c.id == parent["id"]).values(own_remedy_id=row["id"],
                                                                                 auto_remedy_pending=False))
        except IntegrityError:
            existing = self.for_job(parent["id"], owner=None)
            if existing is None:
                raise
            return existing, False
        return self.get(row["id"]), True

    def get(self, remedy_id: str) -> dict | None:
        if not isinstance(remedy_id, str) or not ID_PATTERN.match(remedy_id):
            return None
        with self.engine.connect() as conn:
            return self._row(conn.execute(select(remedies).where(remedies.c.id == remedy_id)).mappings().first())

    def for_job(self, job_id: str, *, owner: str | None) -> dict | None:
        """The remedy of parent job ``job_id``; ``owner`` limits it to that owner's (None: any)."""
        query = select(remedies).where(remedies.c.job_id == job_id)
        if owner is not None:
            query = query.where(remedies.c.owner == owner)
        with self.engine.connect() as conn:
            return self._row(conn.execute(query).mappings().first())

    def running_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(remedies.c.id).where(remedies.c.status == RUNNING)
                                     .order_by(remedies.c.created_at)).scalars())

    def update_if(self, remedy_id: str, seq: int, **values: Any) -> bool:
        """Write ``values`` if the remedy is still at ``seq`` (and running); False: another advancer
        moved it first."""
        if "attempts" in values:
            values["attempts"] = json_safe(values["attempts"])
        with self.engine.begin() as conn:
            return conn.execute(update(remedies).where(
                remedies.c.id == remedy_id, remedies.c.seq == seq, remedies.c.status == RUNNING)
                .values(**values, seq=seq + 1)).rowcount == 1

    @staticmethod
    def _row(row: Any) -> dict | None:
        if row is None:
            return None
        found = dict(row)
        found["created_at"], found["finished_at"] = as_utc(found["created_at"]), as_utc(found["finished_at"])
        return found
