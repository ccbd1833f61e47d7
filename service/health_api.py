"""/healthz: 200 once the database and the broker answer."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import text

from core import __version__
from core.queueing import WORKER_KEY_PREFIX
from service.extensions import parts
from service.schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/healthz", description="Health")


@blp.route("")
class Health(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, description="The database or the broker does not answer.")
    def get(self):
        """Liveness of the API and its parts, with the number of live workers."""
        p = parts()
        try:
            with p.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            abort(503, message=f"The database does not answer: {type(exc).__name__}.")
        try:
            p.redis.ping()
            workers = sum(1 for _ in p.redis.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=100))
        except Exception as exc:
            abort(503, message=f"The broker (Redis) does not answer: {type(exc).__name__}.")
        return {"status": "ok", "workers": workers, "version": __version__}
