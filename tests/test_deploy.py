"""The deployment files of `otp sync` (deploy/): systemd units verified by systemd itself."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ANALYZE = shutil.which("systemd-analyze")


def units(tmp_path: Path) -> list[str]:
    """The units as shipped, but for the command's path (a stub: `verify` wants it executable)."""
    stub = tmp_path / "otp"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    for name in ("otp-sync.service", "otp-sync.timer"):
        text = (DEPLOY / name).read_text().replace("/opt/otp/venv/bin/otp", str(stub))
        (tmp_path / name).write_text(text)
    return [str(tmp_path / "otp-sync.service"), str(tmp_path / "otp-sync.timer")]


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    proc = subprocess.run([ANALYZE, "verify", *units(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_the_service_is_hardened(tmp_path):
    service, _ = units(tmp_path)
    proc = subprocess.run([ANALYZE, "security", "--offline=true", service], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout).group(1))
    assert score <= 2.0, proc.stdout[-2000:]  # systemd's scale: 0 (locked down) … 10 (exposed)


def test_the_service_runs_as_its_own_user_with_credentials_read_only_and_no_new_privileges():
    text = (DEPLOY / "otp-sync.service").read_text()
    for line in ("User=otp", "NoNewPrivileges=yes", "ProtectSystem=strict", "LoadCredential=grist-api-key:",
                 "LoadCredential=ds-token:", "ExecStart=/opt/otp/venv/bin/otp sync --config /etc/otp/otp.toml"):
        assert line in text
    assert "OnCalendar=*-*-* 02:00:00" in (DEPLOY / "otp-sync.timer").read_text()
    cron = (DEPLOY / "otp-sync.cron").read_text()
    assert re.search(r"^15 2 \* \* \* otp .*otp sync --config", cron, re.M)
    assert "--read-only" in (DEPLOY / "Containerfile").read_text() and "read_only: true" in (DEPLOY / "compose.yaml").read_text()
