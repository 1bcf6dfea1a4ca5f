"""The examples in calsync's docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import calsync.redact
import calsync.text


@pytest.mark.parametrize("module", [calsync.text, calsync.redact], ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: ModuleType) -> None:
    failed, tried = doctest.testmod(module)
    assert tried and not failed
