"""Each erratum of the seed, shown: the printed form disagrees with autodiff and finite
differences, the corrected form (what the reference implements) agrees."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from reference.activations import activation
from reference.bounds import bounds
from reference.case import make_case
from reference.compare import compare
from reference.network import forward, gradients
from tests.fixtures import oracle

CASE = make_case((5, 4, 3), 3, 0, "sigmoid", "tanh")


def _torch(case):
    from adapters.torch import TorchAutograd

    pytest.importorskip("torch")
    return TorchAutograd().gradients(case, "float64", "cpu")


def _jax(case):
    from adapters.jax import JaxJit

    pytest.importorskip("jax")
    return JaxJit().gradients(case, "float64", "cpu")


@functools.cache
def _fd(case):
    return oracle.central_differences(case)


WITNESSES = {"torch": _torch, "jax": _jax, "finite-differences": _fd}


@pytest.fixture(params=list(WITNESSES))
def witness(request):
    """Return the float64 gradients of CASE by one independent method."""
    return WITNESSES[request.param](CASE)


def agrees(got: np.ndarray, tensor: str, witness: dict) -> bool:
    """Say whether a candidate gradient is within the float64 bound of the witness."""
    b = bounds(CASE, "float64")[tensor]
    return compare(tensor, got, witness[tensor], b, "float64").passed


def parts(case):
    """Return z1, a1, z2, a2, σ′s and ∂C/∂a2 of the case, batch in rows."""
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    z1, a1, z2, a2 = forward(case)
    return z1, a1, z2, a2, s1.df(z1), s2.df(z2), 2 * (a2 - case.y), s2


def test_corrected_gradients_agree(witness):
    """The reference (all errata corrected) agrees with every witness on every tensor."""
    ref = gradients(CASE)
    assert all(agrees(ref[k], k, witness) for k in ref)


def test_eq22_without_the_prime_disagrees(witness):
    """(22) as printed, a1_k σ2(z2_j) 2(a2_j − y_j), is not ∂C/∂W2; with σ2′ it is (24)."""
    z1, a1, z2, a2, ds1, ds2, e, s2 = parts(CASE)
    printed = (s2.f(z2) * e).T @ a1
    corrected = (ds2 * e).T @ a1
    assert not agrees(printed, "W2", witness) and agrees(corrected, "W2", witness)


def test_eq26_with_index_i_disagrees_for_every_i(witness):
    """(26) with ∂C/∂a1_i for any fixed i is not ∂C/∂W1; with ∂C/∂a1_j it is."""
    z1, a1, z2, a2, ds1, ds2, e, s2 = parts(CASE)
    dC_da1 = (ds2 * e) @ CASE.W2
    for i in range(CASE.sizes[1]):
        printed = (ds1 * dC_da1[:, [i]]).T @ CASE.x
        assert not agrees(printed, "W1", witness), i
    assert agrees((ds1 * dC_da1).T @ CASE.x, "W1", witness)


def test_eq28_29_without_the_sum_disagrees_for_every_m(witness):
    """(28)–(29) with a single term m is not ∂C/∂a1_j; summed over m = 0…n2−1 it is."""
    z1, a1, z2, a2, ds1, ds2, e, s2 = parts(CASE)
    delta2 = ds2 * e
    for m in range(CASE.sizes[2]):
        one_term = np.outer(delta2[:, m], CASE.W2[m])  # w_mj σ2′(z2_m) 2(a2_m − y_m)
        assert not agrees((ds1 * one_term).T @ CASE.x, "W1", witness), m
    assert agrees((ds1 * (delta2 @ CASE.W2)).T @ CASE.x, "W1", witness)


def test_eq20_indices_run_to_15_not_16():
    """(20) indexes a1 up to 16, but a1 has shape (16,): index 16 does not exist, 0…15 is z2."""
    case = make_case((784, 16, 10), 1, 0, "sigmoid", "sigmoid")
    z1, a1, z2, a2 = forward(case)
    with pytest.raises(IndexError):
        [a1[0, k] for k in range(17)]  # w_{j,0} a_0 + … + w_{j,16} a_16, as printed
    rows = [sum(case.W2[j, k] * a1[0, k] for k in range(16)) + case.b2[j] for j in range(10)]
    np.testing.assert_allclose(rows, z2[0], rtol=1e-14)
    assert case.W2.shape == (10, 16)
