"""Reading a training request from a dict or a YAML/JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Union

import yaml

from trainrx.errors import SpecError

SpecLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]


def load_spec(spec: SpecLike) -> dict:
    """A request as a dict: ``spec`` itself, or the contents of the YAML or JSON
    file it names (JSON is YAML, so any of .yaml/.yml/.json reads the same way)."""
    if isinstance(spec, Mapping):
        return dict(spec)
    path = Path(os.fspath(spec))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"Cannot read the spec file {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") \
            from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path} must hold one object (a mapping of request fields), not {type(data).__name__}.")
    return data
