"""`calsync auth microsoft`: the real msal device-code flow against the fake identity platform, then a
report on the signed-in person's own mailbox with the cache it wrote."""

from __future__ import annotations

import io
import json
import stat
from datetime import date
from pathlib import Path

from calsync.cli import main
from calsync.config import load_config
from calsync.demo import demo_calendars
from calsync.pipeline import run_report
from calsync.report import report_to_json
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox

AS_OF = date(2026, 11, 21)
PUBLIC_CLIENT = "calsync-device-client"


def test_device_code_sign_in_then_a_report_on_your_own_calendar(tmp_path: Path) -> None:
    with FakeGraph() as fake:
        fake.add_public_client(PUBLIC_CLIENT)
        fake.add_user("maya@acme.test", "Maya Chen")
        fake.add_user("omar@acme.test", "Omar Haddad", manager="maya@acme.test")
        load_mailbox(fake, "maya@acme.test", demo_calendars(AS_OF)["maya"], "Europe/Berlin")
        fake.auto_approve = "maya@acme.test"
        cache = tmp_path / "microsoft-token.json"
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [
                "auth",
                "microsoft",
                "--tenant",
                fake.tenant,
                "--client-id",
                PUBLIC_CLIENT,
                "--token-cache",
                str(cache),
                "--authority-host",
                fake.authority_host,
                "--ca-bundle",
                str(fake.ca_path),
            ],
            out,
            err,
        )
        assert code == 0, err.getvalue()
        assert "enter the code" in err.getvalue().lower()  # what the person is told to do
        assert "Signed in as maya@acme.test" in out.getvalue()
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600
        assert "RefreshToken" in json.loads(cache.read_text())

        (tmp_path / "org.csv").write_text(
            "email,name,manager_email\nmaya@acme.test,Maya Chen,\nomar@acme.test,Omar Haddad,maya@acme.test\n"
        )
        config = tmp_path / "calsync.toml"
        config.write_text(
            f"""[org]
domains = ["acme.test"]
roster = "org.csv"
timezone = "Europe/Berlin"
[[sources]]
type = "microsoft"
tenant = "{fake.tenant}"
client_id = "{PUBLIC_CLIENT}"
token_cache = "microsoft-token.json"
authority_host = "{fake.authority_host}"
graph_endpoint = "{fake.graph_endpoint}"
ca_bundle = "{fake.ca_path}"
"""
        )
        fake.expire_access_tokens()  # a later day: the cached access token is no good, refresh silently
        result = report_to_json(run_report(load_config(config), AS_OF))
        assert result["errors"] == []
        pair = next(p for p in result["pairs"] if p["people"] == ["maya@acme.test", "omar@acme.test"])
        assert pair["status"] == "ok"
        assert {r.mailbox for r in fake.requests if "/calendarView/delta" in r.path} == {"maya@acme.test"}

        fake.revoke_refresh_tokens()
        fake.expire_access_tokens()
        result = report_to_json(run_report(load_config(config), AS_OF))
        # the cached access token is refused, and so is the refresh: the mailbox says to sign in again,
        # and so does Omar's out-of-office, asked through it (DESIGN.md 3b: their absences are unknown)
        assert [e["source"] for e in result["errors"]] == [
            "microsoft: maya@acme.test",
            "microsoft: omar@acme.test (out of office)",
        ]
        assert all("calsync auth microsoft" in e["message"] for e in result["errors"])
