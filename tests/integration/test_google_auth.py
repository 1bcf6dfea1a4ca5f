"""`calsync auth google`: the real installed-app flow against a fake authorization server."""

from __future__ import annotations

import json
import stat
import threading
import urllib.request
import webbrowser
from pathlib import Path

import google.auth.transport.requests
import pytest
from google.auth.exceptions import RefreshError

from calsync.sources.google import READ_SCOPES, load_user_credentials, sign_in
from tests.fakes.oauth import FakeAuthorizationServer


class FollowingBrowser(webbrowser.BaseBrowser):
    """A 'browser' that follows the sign-in URL: the fake signs in and redirects to calsync."""

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        threading.Thread(target=lambda: urllib.request.urlopen(url, timeout=10).read(), daemon=True).start()
        return True


def test_installed_app_sign_in_then_silent_refresh_then_revocation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake speaks http on 127.0.0.1
    webbrowser.register("calsync-test", None, FollowingBrowser("calsync-test"))
    with FakeAuthorizationServer() as auth:
        client = tmp_path / "client_secret.json"
        client.write_text(json.dumps(auth.client_secrets()))
        token = tmp_path / "google-token.json"

        scopes = sign_in(client, token, browser="calsync-test")

        assert scopes == " ".join(READ_SCOPES)
        stored = json.loads(token.read_text())
        assert stored["refresh_token"] in auth.refresh_tokens
        assert stored["client_id"] == auth.client_id
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert [r.split("?")[0] for r in auth.requests] == ["GET /auth", "POST /token"]
        assert "code_challenge=" in auth.requests[0]  # PKCE

        # a later run: the stored token refreshes silently
        credentials = load_user_credentials(token)
        assert credentials.token_uri == f"{auth.url}/token"  # never Google's when the client says otherwise
        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
        assert credentials.token

        # access revoked: refreshing fails, which the source reports as "sign in again"
        auth.refresh_tokens.clear()
        with pytest.raises(RefreshError, match="invalid_grant"):
            credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
