"""Fixtures the integration tests share: the fakes a daemon or a doctor run talks to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.graph import FakeGraph
from tests.fakes.smtp import SmtpFake


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    """Microsoft identity and Graph, https on 127.0.0.1."""
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    """A mail server without TLS or login (a local relay); a test module may override it."""
    with SmtpFake() as fake:
        yield fake
