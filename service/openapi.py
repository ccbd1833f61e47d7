"""Print the OpenAPI document the app serves, as YAML: ``python -m service.openapi``."""

from __future__ import annotations

import sys
import tempfile

import yaml


def openapi_document() -> dict:
    """The document, built from an app on throwaway embedded defaults (no Redis is contacted)."""
    from pathlib import Path

    from core.db import make_engine
    from core.migrate import upgrade
    from core.settings import Limits, Settings
    from service.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/openapi.db",
                            redis_url="redis://127.0.0.1:1/0", limits=Limits(),
                            secret_key="openapi-generation-only-never-serves-a-request")
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        app = create_app({"SETTINGS": settings})
        return app.extensions["trainrx_api"].spec.to_dict()


def main() -> None:
    yaml.safe_dump(openapi_document(), sys.stdout, sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    main()
