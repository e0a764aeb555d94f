"""The verdict rules and the leakage metrics are specified by their doctest examples: run them."""

from __future__ import annotations

import doctest

import pytest

import attacks.metrics.leakage
import reports.verdict


@pytest.mark.parametrize("module", [reports.verdict, attacks.metrics.leakage], ids=lambda m: m.__name__)
def test_doctest_examples_hold(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module.__name__} lost its examples"
    assert result.failed == 0
