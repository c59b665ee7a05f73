"""The product: every gradient entry of every adapter against the reference and its bound."""

from __future__ import annotations

import pytest

from tests.engine.conformance import check


@pytest.mark.conformance  # every item of the matrix (tests/engine/plugin.py parametrizes it)
def test_gradient(conformance_item):
    """Check one tensor (or one entry) of one adapter's gradients on one case (the run's
    runner and options, and this test item to record into, are the engine's to find)."""
    check(conformance_item)
