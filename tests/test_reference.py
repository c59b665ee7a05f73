"""The reference checked against itself: oracle, finite differences, loops, the chain (1)–(12)."""

from __future__ import annotations

import numpy as np
import pytest

from reference.bounds import bounds
from reference.case import make_case
from reference.compare import compare
from reference.network import chain, cost, gradients, literal_gradients
from tests.fixtures import oracle

SMALL = [
    ((5, 4, 3), 3, "sigmoid", "sigmoid"),
    ((5, 4, 3), 3, "relu", "tanh"),
    ((6, 3, 2), 2, "softplus", "identity"),
    ((4, 5, 3), 2, "tanh", "softplus"),
    ((1, 1, 1), 1, "sigmoid", "sigmoid"),
    ((3, 2, 4), 4, "identity", "relu"),
]
IDS = [f"{s1}-{s2}-{'x'.join(map(str, n))}-b{b}" for n, b, s1, s2 in SMALL]


def assert_within_own_bound(got: dict, case) -> None:
    """Every entry of `got` (exact to float64 rounding) is within the reference's own bound."""
    __tracebackhide__ = True
    ref, own = gradients(case), bounds(case, "float64")
    for k in ref:
        cmp = compare(k, got[k], ref[k], own[k], "float64")
        assert cmp.passed, "\n".join(e.describe(k) for e in cmp.worst())


@pytest.mark.parametrize("spec", SMALL, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_error_within_its_own_bound(spec, seed):
    """The float64 reference is within its own bound of the 50-digit oracle."""
    case = make_case(*spec[:2], seed, *spec[2:])
    assert_within_own_bound(oracle.gradients(case), case)


@pytest.mark.parametrize("spec", SMALL[:3], ids=IDS[:3])
def test_reference_agrees_with_central_differences(spec):
    """The reference is within its own bound of 60-digit central differences of (19)."""
    case = make_case(*spec[:2], 0, *spec[2:])
    assert_within_own_bound(oracle.central_differences(case), case)


@pytest.mark.parametrize("spec", SMALL, ids=IDS)
def test_literal_loops_agree_with_vectorised(spec):
    """(21)–(29) entry by entry agree with the vectorised form within the reference's bound."""
    case = make_case(*spec[:2], 0, *spec[2:])
    assert_within_own_bound(literal_gradients(case), case)


@pytest.mark.parametrize("pair", [("sigmoid", "sigmoid"), ("tanh", "relu"),
                                  ("softplus", "identity")])
def test_chain_1_to_12_is_the_network_at_sizes_1_1_1(pair):
    """The scalar chain (1)–(11) gives the cost and gradients of the network at (1, 1, 1)."""
    case = make_case((1, 1, 1), 1, 0, *pair)
    c = chain(case)
    assert c["C"] == pytest.approx(cost(case), rel=1e-15)
    assert_within_own_bound({k: np.array(c[k]).reshape(case.params[k].shape) for k in
                             case.params}, case)


def test_cost_is_summed_not_averaged():
    """(19) sums over the batch: a batch of two identical samples costs twice one sample."""
    one = make_case((3, 2, 2), 1, 0, "sigmoid", "tanh")
    two = make_case((3, 2, 2), 1, 0, "sigmoid", "tanh")
    object.__setattr__(two, "x", np.vstack([one.x, one.x]))
    object.__setattr__(two, "y", np.vstack([one.y, one.y]))
    assert cost(two) == 2 * cost(one)


def test_cases_are_exact_in_float32_and_not_trivial():
    """Every drawn value is a float32, inputs lie in [0, 1], targets are one-hot, nothing is 0."""
    case = make_case((784, 16, 10), 8, 0, "sigmoid", "sigmoid")
    for name in ("W1", "b1", "W2", "b2", "x", "y"):
        v = getattr(case, name)
        assert v.dtype == np.float64 and np.array_equal(v.astype(np.float32), v), name
    assert case.x.min() >= 0 and case.x.max() <= 1 and np.count_nonzero(case.x) > case.x.size // 2
    assert np.array_equal(case.y.sum(axis=1), np.ones(8)) and set(np.unique(case.y)) == {0.0, 1.0}
    assert len(np.unique(case.W1)) > case.W1.size // 2


def test_cases_are_deterministic_per_seed_and_differ_across_seeds():
    """The same (sizes, batch, seed) gives the same numbers; another seed gives others."""
    a, b = (make_case((5, 4, 3), 3, 0, "relu", "tanh") for _ in range(2))
    c = make_case((5, 4, 3), 3, 1, "relu", "tanh")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.W1, c.W1)


def test_bounds_scale_with_unit_roundoff():
    """A float32 bound is wider than a float64 one for every entry, by at most u32/u64 + 1."""
    case = make_case((5, 4, 3), 3, 0, "sigmoid", "tanh")
    b32, b64 = bounds(case, "float32"), bounds(case, "float64")
    for k in b32:
        r = b32[k] / b64[k]
        assert np.all(r > 1) and np.all(r <= 2.0**29 + 1), k


def test_unknown_activation_is_named():
    """An unknown σ is rejected with the known names."""
    with pytest.raises(ValueError, match="unknown activation 'gelu'; known: identity, relu"):
        make_case((2, 2, 2), 1, 0, "gelu", "sigmoid")
