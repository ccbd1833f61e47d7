"""The Flask API. Never imports torch; starts fast, stays small."""

from service.app import create_app

__all__ = ["create_app"]
