"""The systemd unit calsync ships (calsync/examples/calsync.service, `calsync config systemd-unit`): its
security rating (systemd-analyze security, offline) and key settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "calsync" / "examples" / "calsync.service"
MAX_EXPOSURE = 2.0
REQUIRE_ENV = "CALSYNC_REQUIRE_SYSTEMD_ANALYZE"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"systemd-analyze is not on PATH, and {REQUIRE_ENV}=1 requires it")
        pytest.skip(f"systemd-analyze is not on PATH (set {REQUIRE_ENV}=1 to make this a failure)")
    return found


def settings() -> list[str]:
    """The unit's setting lines (`Key=value`), comments and section headers left out."""
    lines = (line.strip() for line in UNIT.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith(("#", ";", "["))]


def test_the_security_exposure_level_is_at_most_2():
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for calsync\.service: (\d+\.\d+)", output)
    assert found is not None, f"no exposure level in the output (exit status {result.returncode}):\n{output}"
    assert float(found.group(1)) <= MAX_EXPOSURE, output


@pytest.mark.parametrize(
    "setting",
    [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=5min",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=calsync",
        "ConfigurationDirectory=calsync",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Environment=PYTHONUNBUFFERED=1",
    ],
)
def test_the_unit_has_the_setting(setting):
    assert setting in settings()


@pytest.mark.parametrize(
    "setting",
    [
        # DynamicUser=yes implies these, so the rating does not drop without them: they are spelled
        # out so that the unit stays hardened if DynamicUser= ever goes.
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictSUIDSGID=yes",
        "RemoveIPC=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "UMask=0077",
    ],
)
def test_the_unit_spells_out_the_hardening(setting):
    assert setting in settings()


def test_the_unit_shows_how_to_hand_over_each_secret():
    """The LoadCredential= lines are examples, commented out: a listed file that is missing would keep
    the service from starting."""
    text = UNIT.read_text(encoding="utf-8")
    for name in ("smtp-password", "graph-secret", "google-sa.json"):
        assert f"#LoadCredential={name}:/etc/calsync/credentials/{name}" in text
        assert f"${{CREDENTIALS_DIRECTORY}}/{name}" in text
    assert not any(line.startswith("LoadCredential=") for line in settings())
