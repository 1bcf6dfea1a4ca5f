"""A fake OAuth 2.0 authorization server for the installed-app flow (authorization code + PKCE).

``GET /auth`` "signs the user in" at once and redirects to the app's local redirect URI with a code;
``POST /token`` exchanges that code (checking client, redirect URI and the PKCE verifier) and later
refresh tokens. Plain http on 127.0.0.1: tests set OAUTHLIB_INSECURE_TRANSPORT for oauthlib.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


class FakeAuthorizationServer:
    def __init__(self, client_id: str = "desktop-client", client_secret: str = "desktop-secret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: set[str] = set()
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(f"GET {self.path}")
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path != "/auth" or query.get("client_id") != fake.client_id:
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(8)
                fake.codes[code] = query
                location = (
                    f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
                )
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                fake.requests.append(f"POST {self.path}")
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):  # client credentials may come as HTTP Basic auth instead
                    client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
                    form.setdefault("client_id", client_id)
                    form.setdefault("client_secret", client_secret)
                if form.get("client_id") != fake.client_id or form.get("client_secret") != fake.client_secret:
                    self._json(401, {"error": "invalid_client"})
                    return
                if form.get("grant_type") == "authorization_code":
                    asked = fake.codes.pop(form.get("code", ""), None)
                    verifier = form.get("code_verifier", "")
                    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
                        b"="
                    )
                    if (
                        asked is None
                        or asked.get("redirect_uri") != form.get("redirect_uri")
                        or asked.get("code_challenge") != challenge.decode()
                    ):
                        self._json(400, {"error": "invalid_grant"})
                        return
                    refresh = secrets.token_urlsafe(12)
                    fake.refresh_tokens.add(refresh)
                    self._json(200, self._token(asked.get("scope", ""), refresh))
                elif (
                    form.get("grant_type") == "refresh_token"
                    and form.get("refresh_token") in fake.refresh_tokens
                ):
                    self._json(200, self._token(form.get("scope", ""), None))
                else:
                    self._json(
                        400,
                        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
                    )

            def _token(self, scope: str, refresh: str | None) -> dict[str, Any]:
                body: dict[str, Any] = {
                    "access_token": secrets.token_urlsafe(12),
                    "expires_in": 3599,
                    "token_type": "Bearer",
                    "scope": scope,
                }
                if refresh:
                    body["refresh_token"] = refresh
                return body

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAuthorizationServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client_secrets(self) -> dict[str, Any]:
        """The JSON of a Desktop-app OAuth client, as the Cloud console downloads it, pointing here."""
        return {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": f"{self.url}/auth",
                "token_uri": f"{self.url}/token",
                "redirect_uris": ["http://localhost"],
            }
        }
