"""Activation catalogue: exact σ, σ′, σ″, σ‴ in float64 and the rounding budgets of σ, σ′, σ″.

Every entry states what a framework's float implementation of σ and of σ′ may get wrong, in
units of the unit roundoff u, *beyond* the error it inherits from its argument (which the
magnitude pass in `reference.bounds` carries with σ′ and σ″), and what its σ″ may get wrong
as frameworks compute it, by differentiating their own σ′ (reference.hvp's bounds carry z's
error into σ″ with σ‴). The budgets are absolute errors
written as `ulps × magnitude(z)`; each one is the worst measured error of the PyTorch and JAX
CPU kernels (float32 and float64, |z| ≤ 30, see tests/test_activations.py) with a margin of
at least 2×, and DESIGN.md records that the CUDA kernels were no worse than the CPU ones.
Three documented framework behaviours lie outside every budget: PyTorch's softplus returns z
itself above its threshold of 20, XLA on the CPU flushes subnormal inputs to zero, and
tinygrad's σ′ of sigmoid (through exp2 of z·log2 e) errs by ~|z|u for very negative z.
tests/deviations.txt lists each; the activation tests show each is still there (strictly: one
that stops deviating fails the run), and that only the saturated case (every |z| in (25, 28))
reaches the first; through a network the third stays inside what z's own rounding carries.
tinygrad's tanh, 2·sigmoid(2z) − 1, errs by up to 2u absolute near 0: inside the tanh budget's
2u floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    """One σ with exact derivatives and the rounding budgets of its float implementations."""

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    d2f: Callable[[Array], Array]
    # |fl(σ(z)) − σ(z)| ≤ u · f_err(z)  and  |fl(σ′(z)) − σ′(z)| ≤ u · df_err(z)
    f_err: Callable[[Array], Array]
    df_err: Callable[[Array], Array]
    kink: float = 0.0  # jump of σ′ at z = 0; where z's error straddles 0 either side is right
    # second order (reference.hvp): |fl(σ″(z)) − σ″(z)| ≤ u · d2f_err(z), and σ‴, which carries
    # z's error into σ″ as σ′ and σ″ carry it into σ and σ′
    d2f_err: Callable[[Array], Array] | None = None
    d3f: Callable[[Array], Array] | None = None


def _sigmoid(z: Array) -> Array:
    # Two branches so that neither exp overflows; both are exact formulas of 1/(1+e^(−z)).
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_d(z: Array) -> Array:
    # e^−|z| / (1 + e^−|z|)², not s(1 − s): 1 − s cancels for large z (at z = 27 in float64,
    # relatively 6·10⁻⁵ off), and the saturated case lives there.
    e = np.exp(-np.abs(z))
    return e / (1.0 + e) ** 2


def _sigmoid_d2(z: Array) -> Array:
    return -_sigmoid_d(z) * np.tanh(z / 2.0)  # σ′ · (1 − 2σ), with 1 − 2σ = −tanh(z/2)


def _sech2(z: Array) -> Array:
    # 4e^−2|z| / (1 + e^−2|z|)², not 1 − tanh²: tanh rounds to ±1 from |z| ≈ 19 in float64,
    # and 1 − tanh² to 0, where sech² is still 10⁻¹⁶ and more.
    e = np.exp(-2.0 * np.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


def _sigmoid_d3(z: Array) -> Array:
    s = _sigmoid(z)
    return s * (1.0 - s) * (1.0 - 6.0 * s + 6.0 * s * s)


def _zero(z: Array) -> Array:
    return np.zeros_like(z)


def _one(z: Array) -> Array:
    return np.ones_like(z)


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


# sigmoid: frameworks evaluate 1/(1+e^−z) or 0.5·tanh(z/2)+0.5; the latter loses relative
# accuracy for very negative z, so the budget has an absolute floor of u/2 besides 4 ulps.
# σ′ is taken from the computed output as s(1−s): its rounding plus the output's own error
# times |1−2s| ≤ 1 stays below 8u·s. σ″ = σ′·(1−2s), differentiated through that same output
# (PyTorch's sigmoid_backward, JAX's logistic jvp, tinygrad), measured ≤ 1.43u absolute and
# ≤ 3.9u·s: budget 8u·s.
SIGMOID = Activation(
    "sigmoid", _sigmoid, _sigmoid_d, _sigmoid_d2,
    f_err=lambda z: 4.0 * _sigmoid(z) + 0.5,
    df_err=lambda z: 8.0 * _sigmoid(z),
    d2f_err=lambda z: 8.0 * _sigmoid(z), d3f=_sigmoid_d3,
)

# tanh: XLA's float64 tanh is off by up to 6.9 ulps near |z| = 20 (a rational approximation),
# so 14|t| + 2. σ′ = 1 − t² is computed from the output and cancels near |t| = 1: its error is
# absolute, ≤ 2|t|·err(t) + u, measured ≤ 16u; budget 32u. σ″ = −2t(1 − t²) from the output,
# absolute as σ′ is: measured ≤ 2u (PyTorch) and ≤ 27.7u (JAX float64 at z = −20, its
# tanh's error times |6t² − 2|); budget 64u.
TANH = Activation(
    "tanh", np.tanh, _sech2, lambda z: -2.0 * np.tanh(z) * _sech2(z),
    f_err=lambda z: 14.0 * np.abs(np.tanh(z)) + 2.0,
    df_err=lambda z: 32.0 + 0.0 * z,
    d2f_err=lambda z: 64.0 + 0.0 * z,
    d3f=lambda z: -2.0 * (1.0 - np.tanh(z) ** 2) * (1.0 - 3.0 * np.tanh(z) ** 2),
)

# relu: max(z, 0) and its derivative 1{z > 0} are exact; relu′(0) = 0 by convention, and the
# derivative jumps by 1 at 0, which `kink` hands to the magnitude pass. relu″ = 0 everywhere,
# z = 0 included, by convention: σ′ is a step, whose derivative is 0 wherever it is a function
# (the Dirac mass at 0 has no value to return), and every framework's double backward gives 0.
RELU = Activation(
    "relu", lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float), _zero,
    f_err=_zero, df_err=_zero, kink=1.0, d2f_err=_zero, d3f=_zero,
)

# softplus: log1p(e^z) with a few roundings, 4 ulps of the output plus 2u. JAX differentiates
# logaddexp(z, 0) as e^(z − softplus(z)), whose error grows like u·z (16u at z = 16 in float64),
# so σ′ is charged 2·softplus(z) + 3 rather than a multiple of sigmoid(z). σ″ = sigmoid′(z),
# differentiated through those same formulas: measured ≤ 1.4u (PyTorch) and ≤ 16.4u (JAX
# float64, z = 17), ≤ 0.93·(softplus(z) + 1) u; budget as σ′'s.
SOFTPLUS = Activation(
    "softplus", _softplus, _sigmoid, _sigmoid_d,
    f_err=lambda z: 4.0 * _softplus(z) + 2.0,
    df_err=lambda z: 2.0 * _softplus(z) + 3.0,
    d2f_err=lambda z: 2.0 * _softplus(z) + 3.0, d3f=_sigmoid_d2,
)

# identity: nothing is computed, nothing is rounded.
IDENTITY = Activation("identity", lambda z: z, _one, _zero, f_err=_zero, df_err=_zero,
                      d2f_err=_zero, d3f=_zero)

CATALOGUE: dict[str, Activation] = {a.name: a for a in (SIGMOID, TANH, RELU, SOFTPLUS, IDENTITY)}


def activation(name: str) -> Activation:
    """Return the catalogue entry called `name`, or raise naming the known ones."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; known: {', '.join(sorted(CATALOGUE))}"
        ) from None
