"""/v1/datasets: the built-in datasets (uploads come later)."""

from __future__ import annotations

from functools import lru_cache

from flask.views import MethodView
from flask_smorest import Blueprint

from core.datasets import BUILTIN_DATASETS, describe_builtin
from service.extensions import parts
from service.schemas import DatasetListSchema

blp = Blueprint("datasets", __name__, url_prefix="/v1/datasets", description="Datasets")


@lru_cache(maxsize=None)
def _describe(name: str, cache_dir: str) -> dict:
    from pathlib import Path

    return describe_builtin(name, Path(cache_dir))


@blp.route("")
class Datasets(MethodView):
    @blp.response(200, DatasetListSchema)
    def get(self):
        """The datasets a job can train on, with shapes and class counts."""
        cache = str(parts().settings.cache_dir)
        return {"items": [_describe(name, cache) for name in BUILTIN_DATASETS]}
