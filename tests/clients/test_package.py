"""The package itself: what it depends on, what it exposes, what it never imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import trainrx
from tests.conftest import ROOT

PACKAGE = ROOT / "clients" / "python"


def test_importing_the_sdk_and_cli_pulls_in_no_server_code_and_no_torch():
    code = ("import sys, trainrx, trainrx.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'flask', 'flask_smorest', "
            "'celery', 'sqlalchemy', 'service', 'workers', 'core', 'safetensors', 'numpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[]"


def test_dependencies_are_http_cli_and_yaml_only_with_torch_as_an_extra():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() for dep in project["dependencies"]}
    assert names == {"httpx", "click", "pyyaml"}
    assert {d.split(">")[0] for d in project["optional-dependencies"]["torch"]} == {"torch", "safetensors"}
    assert project["scripts"] == {"trainrx": "trainrx.cli:main"}


def test_typed_and_importable_from_the_top_level():
    assert (Path(trainrx.__file__).parent / "py.typed").is_file()
    from trainrx import (APIConnectionError, APIError, APIStatusError, APITimeoutError, AuthenticationError,
                         BadRequestError, Client, ConflictError, InternalServerError, NotFoundError,
                         PermissionDeniedError, RateLimitError, UnprocessableEntityError)

    assert issubclass(APITimeoutError, APIConnectionError) and issubclass(APIConnectionError, APIError)
    for cls in (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, ConflictError,
                UnprocessableEntityError, RateLimitError, InternalServerError):
        assert issubclass(cls, APIStatusError) and issubclass(cls, APIError)
    assert Client.__module__.startswith("trainrx")


def test_the_console_script_runs():
    out = subprocess.run([str(Path(sys.executable).with_name("trainrx")), "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"trainrx, version {trainrx.__version__}"
