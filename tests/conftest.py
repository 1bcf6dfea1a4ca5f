"""Shared test settings and fixtures."""

import socket
from typing import Any

import pytest
from hypothesis import settings

# Tests never assert on wall time: hypothesis' per-example deadline is one such assertion, and it
# fails spuriously on a busy 2-core CI machine.
settings.register_profile("calsync", deadline=None, print_blob=True)
settings.load_profile("calsync")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection the client libraries open must go to 127.0.0.1 (they resolve names through
    getaddrinfo): a test that tried to reach Google or Microsoft fails instead."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise AssertionError(f"test tried to reach {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
