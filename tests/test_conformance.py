"""The product: every gradient entry of every adapter against the reference and its bound."""

from __future__ import annotations

import pytest

from tests.conformance import check_item


@pytest.mark.conformance  # every item of the matrix (tests/conftest.py parametrizes it)
def test_gradient(conformance_item, request):
    """Check one tensor (or one entry) of one adapter's gradients on one case."""
    config = request.config
    check_item(config.conformance_runner, conformance_item,
               config.getoption("require_frameworks"), request.node)
