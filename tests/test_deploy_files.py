"""What the deployment files promise, checked without a container engine."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_publishes_the_api_on_loopback_by_default():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 2)[0]
            default = host.split(":-", 1)[1].rstrip("}") if ":-" in host else host
            assert default == "127.0.0.1", f"{name} publishes {port} beyond loopback by default"


def test_compose_migrates_before_the_api_and_workers_start():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["migrate"]["command"][-1] == "core.migrate"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
