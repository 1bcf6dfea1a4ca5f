"""Signing in to Microsoft Graph with msal: the org's app registration, or one person's device code.

- **Org-wide** (``client_secret_file``, ``client_secret_env`` or ``certificate_file``): msal's
  ``ConfidentialClientApplication`` with the client-credentials grant and the ``.default`` scope, so the
  token carries exactly the application permissions an admin consented to. The secret is read from a
  file or an environment variable, never from the config.
- **One person** (``token_cache``): ``calsync auth microsoft`` runs the device-code flow and keeps msal's
  ``SerializableTokenCache`` in a file of mode 0600; later runs refresh silently and write the cache
  back when msal changed it.

Both talk to the authority through one ``requests.Session``: the CA bundle to trust (a proxy's, or a
test's), and no proxies from the environment when the endpoints are overridden (a configured endpoint
is reached directly).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import msal
import msal.exceptions
import requests
from cryptography import x509
from requests.adapters import HTTPAdapter

from calsync.config import GRAPH_ENDPOINT, MICROSOFT_AUTHORITY_HOST, MicrosoftSourceConfig
from calsync.store import write_private

#: The application permissions the admin consented to (client credentials always ask for .default).
GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
#: What one person grants with the device code: read their calendar, know who they are.
#: (msal adds openid, profile and offline_access itself.)
DELEGATED_SCOPES = ("Calendars.Read", "User.Read")
#: What one person's sign-in needs for agendas too (`calsync auth microsoft --agendas`): writing the
#: link into their events and the documents into their OneDrive.
AGENDA_DELEGATED_SCOPES = ("Calendars.ReadWrite", "Files.ReadWrite", "User.Read")
#: Connections kept open per host: mailboxes synced in parallel x 4 requests per mailbox.
POOL_SIZE = 16


class AuthError(Exception):
    """No token could be had; str() says why and what to do. ``transient``: the sign-in service could
    not be reached or failed (5xx), so trying again later may help; else the credentials were refused."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


#: What msal raises when the sign-in service cannot be reached or answers 5xx.
_UNREACHABLE = (requests.RequestException, msal.exceptions.MsalServiceError)


class TokenProvider(Protocol):
    """Access tokens for Graph. ``stale`` is the token Graph just refused (401): get another one."""

    #: The signed-in person's address for a delegated sign-in; None when acting as the app.
    user: str | None

    def token(self, stale: str | None = None) -> str: ...


def http_session(ca_bundle: Path | None, *, direct: bool) -> requests.Session:
    """The session msal and the Graph client share: its CA bundle, its pool, and its proxies."""
    session = requests.Session()
    if ca_bundle is not None:
        session.verify = str(ca_bundle)
    if direct:
        session.trust_env = False  # no HTTPS_PROXY / REQUESTS_CA_BUNDLE from the environment
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    return session


def session_for(config: MicrosoftSourceConfig) -> requests.Session:
    overridden = config.authority_host != MICROSOFT_AUTHORITY_HOST or config.graph_endpoint != GRAPH_ENDPOINT
    return http_session(config.ca_bundle, direct=overridden)


def client_credential(
    config: MicrosoftSourceConfig, environ: Callable[[str], str | None] = os.environ.get
) -> str | dict[str, str]:
    """The app's secret (from its file or environment variable) or its certificate, as msal takes it."""
    if config.client_secret_env is not None:
        secret = environ(config.client_secret_env)
        if not secret or not secret.strip():
            raise AuthError(
                f"the environment variable {config.client_secret_env} (client_secret_env) is not set or "
                "empty; set it to the app's client secret, e.g. in the systemd unit's EnvironmentFile"
            )
        return secret.strip()
    if config.client_secret_file is not None:
        try:
            secret = config.client_secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthError(f"cannot read client_secret_file {config.client_secret_file}: {exc}") from exc
        if not secret:
            raise AuthError(f"client_secret_file {config.client_secret_file} is empty")
        return secret
    if config.certificate_file is not None:
        return _certificate(config.certificate_file)
    raise AuthError("no client credential configured")


def _certificate(path: Path) -> dict[str, str]:
    """A PEM with the private key and the certificate: msal signs with the key and sends the
    certificate's SHA-256 thumbprint."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"cannot read certificate_file {path}: {exc}") from exc
    key = _PEM_KEY.search(text)
    certificate = _PEM_CERTIFICATE.search(text)
    if key is None or certificate is None:
        raise AuthError(
            f"certificate_file {path} must hold both the private key and the certificate in PEM "
            "(cat key.pem cert.pem > calsync-app.pem)"
        )
    try:
        x509.load_pem_x509_certificate(certificate.group(0).encode())
    except ValueError as exc:
        raise AuthError(f"certificate_file {path}: the certificate cannot be read ({exc})") from exc
    return {"private_key": key.group(0) + "\n", "public_certificate": certificate.group(0) + "\n"}


_PEM_KEY = re.compile(r"-----BEGIN ((?:[A-Z]+ )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _explain(result: dict[str, Any], who: str) -> str:
    error = str(result.get("error", "unknown_error"))
    description = str(result.get("error_description", "")).split("\r\n")[0].split("\n")[0]
    hint = {
        "invalid_client": "the client secret or certificate was refused: check it has not expired "
        "(App registrations > Certificates & secrets)",
        "unauthorized_client": "the tenant does not know this client_id: check tenant and client_id",
        "invalid_grant": "the sign-in expired or was revoked: run `calsync auth microsoft` again",
        "interaction_required": "the sign-in must be renewed: run `calsync auth microsoft` again",
        "invalid_scope": "the requested permissions are not configured for the app",
    }.get(error, "")
    text = f"{who}: {error}" + (f" ({description})" if description else "")
    return f"{text}; {hint}" if hint else text


class AppTokens:
    """Client-credentials tokens for the app registration (msal caches them until they expire)."""

    user: str | None = None

    def __init__(self, config: MicrosoftSourceConfig, session: requests.Session) -> None:
        try:
            self.app = msal.ConfidentialClientApplication(
                config.client_id,
                client_credential=client_credential(config),
                authority=config.authority,
                http_client=session,
                instance_discovery=False,
                timeout=config.timeout_seconds,
            )
        except ValueError as exc:  # msal: a bad key, an authority it cannot discover
            raise AuthError(f"cannot set up the app registration {config.client_id}: {exc}") from exc
        except _UNREACHABLE as exc:
            raise AuthError(f"cannot reach the authority {config.authority}: {exc}", transient=True) from exc
        self.client_id = config.client_id
        self._current: str | None = None
        self._lock = threading.Lock()

    def token(self, stale: str | None = None) -> str:
        with self._lock:
            if stale is not None and stale == self._current:
                # Graph refused it: drop it from msal's cache (unless another thread already did)
                self.app.remove_tokens_for_client()
            try:
                result = self.app.acquire_token_for_client(scopes=[GRAPH_DEFAULT_SCOPE])
            except _UNREACHABLE as exc:
                raise AuthError(
                    f"cannot get a token from the sign-in service: {exc}", transient=True
                ) from exc
            if "access_token" not in result:
                raise AuthError(_explain(result, f"the app {self.client_id} could not sign in"))
            self._current = str(result["access_token"])
            return self._current


def load_cache(path: Path) -> msal.SerializableTokenCache:
    cache = msal.SerializableTokenCache()
    try:
        cache.deserialize(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuthError(
            f"cannot read the token cache {path}: {exc}; run `calsync auth microsoft` again"
        ) from exc
    return cache


def save_cache(path: Path, cache: msal.SerializableTokenCache) -> None:
    if cache.has_state_changed:
        write_private(path, cache.serialize())


class UserTokens:
    """One person's tokens from the cache ``calsync auth microsoft`` wrote; refreshed silently."""

    def __init__(
        self,
        config: MicrosoftSourceConfig,
        session: requests.Session,
        scopes: Iterable[str] = DELEGATED_SCOPES,
    ) -> None:
        assert config.token_cache is not None
        self.scopes = list(scopes)
        self.path = config.token_cache
        self.cache = load_cache(self.path)
        try:
            self.app = msal.PublicClientApplication(
                config.client_id,
                authority=config.authority,
                http_client=session,
                instance_discovery=False,
                token_cache=self.cache,
                timeout=config.timeout_seconds,
            )
        except (ValueError, *_UNREACHABLE) as exc:
            raise AuthError(f"cannot set up the sign-in for {config.client_id}: {exc}") from exc
        accounts = self.app.get_accounts()
        if not accounts:
            raise AuthError(f"the token cache {self.path} holds no sign-in: run `calsync auth microsoft`")
        self.account = accounts[0]
        self.user: str | None = str(self.account.get("username") or "").lower() or None
        self._lock = threading.Lock()

    def token(self, stale: str | None = None) -> str:
        with self._lock:
            try:
                result = self.app.acquire_token_silent_with_error(
                    self.scopes, account=self.account, force_refresh=stale is not None
                )
            except _UNREACHABLE as exc:
                raise AuthError(
                    f"cannot get a token from the sign-in service: {exc}", transient=True
                ) from exc
            save_cache(self.path, self.cache)
        if not result or "access_token" not in result:
            raise AuthError(
                _explain(result or {"error": "interaction_required"}, f"the sign-in of {self.user}")
            )
        return str(result["access_token"])


def token_provider(
    config: MicrosoftSourceConfig, session: requests.Session, scopes: Iterable[str] = DELEGATED_SCOPES
) -> TokenProvider:
    """The app's tokens (org-wide: what the app was granted), or one person's for ``scopes``."""
    if config.token_cache is not None:
        return UserTokens(config, session, scopes)
    return AppTokens(config, session)


def device_sign_in(
    config: MicrosoftSourceConfig,
    *,
    show: Callable[[str], None],
    scopes: Iterable[str] = DELEGATED_SCOPES,
    session: requests.Session | None = None,
) -> str:
    """The device-code flow: show the code and where to enter it, wait for the sign-in, and keep the
    token cache (mode 0600) at ``config.token_cache``. Returns who signed in."""
    assert config.token_cache is not None
    cache = msal.SerializableTokenCache()
    try:
        app = msal.PublicClientApplication(
            config.client_id,
            authority=config.authority,
            http_client=session or session_for(config),
            instance_discovery=False,
            token_cache=cache,
            timeout=config.timeout_seconds,
        )
        flow = app.initiate_device_flow(scopes=list(scopes))
    except (ValueError, *_UNREACHABLE) as exc:
        raise AuthError(f"cannot start the sign-in at {config.authority}: {exc}") from exc
    if "user_code" not in flow:
        raise AuthError(_explain(flow, "the sign-in could not start"))
    where = flow.get("verification_uri")
    show(str(flow.get("message") or f"Open {where} in a browser and enter the code {flow['user_code']}"))
    try:
        result = app.acquire_token_by_device_flow(flow)
    except _UNREACHABLE as exc:
        raise AuthError(f"lost the authority while waiting for the sign-in: {exc}") from exc
    if "access_token" not in result:
        raise AuthError(_explain(result, "the sign-in did not complete"))
    write_private(config.token_cache, cache.serialize())
    claims = result.get("id_token_claims") or {}
    return str(claims.get("preferred_username") or claims.get("upn") or "you")
