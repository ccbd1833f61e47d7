"""The systemd units in docs/deploy.md ("Several hosts: the same topology on plain hosts")
are real units: `systemd-analyze verify` reads them with no complaint, and every
command they start exists. Their paths are those of this checkout and its virtualenv."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy.md"
UNIT_BLOCK = re.compile(r"```ini\n# /etc/systemd/system/(\S+)[^\n]*\n(.*?)```", re.S)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_documented_systemd_units_verify(tmp_path):
    units = UNIT_BLOCK.findall(DEPLOY.read_text())
    assert {name for name, _ in units} == {"trainrx-migrate.service", "trainrx-api.service", "trainrx-worker@.service"}
    env_file = tmp_path / "env"
    env_file.write_text("")
    for name, body in units:
        body = (body.replace("/opt/trainrx/.venv/bin", str(Path(sys.executable).parent))
                .replace("/opt/trainrx", str(ROOT)).replace("User=trainrx", "User=root")
                .replace("/etc/trainrx/env", str(env_file)))
        (tmp_path / name).write_text(body)
    names = [name.replace("@.", "@1.") for name, _ in units]
    out = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)], capture_output=True,
                         text=True, timeout=60)
    complaints = [line for line in (out.stdout + out.stderr).splitlines()
                  if any(name.split("@")[0] in line for name, _ in units)]
    assert out.returncode == 0 and complaints == [], out.stdout + out.stderr
