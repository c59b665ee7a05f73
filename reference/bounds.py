"""Per-entry error bounds: a magnitude pass that carries every intermediate's error forward.

Model (first order in u, Higham's standard model fl(a∘b) = (a∘b)(1+δ), |δ| ≤ u):
each intermediate v of (15)–(29) gets an absolute bound E_v ≥ |fl(v) − v| made of
  - the error it inherits: |∂v/∂p| E_p summed over its inputs p (σ′ and σ″ carry E_z
    through the activations, |W|, |a| carry errors through the products), and
  - the rounding of its own operation: u × the magnitude of what was summed, (|p|ᵀ|q| for a
    dot product, |v| for a product, the activation's ulp budget for σ and σ′).
A dot product's own rounding is charged once per summation *level*, ⌈log₂ n⌉ + 1 (the depth
of a pairwise/blocked summation tree, as BLAS, oneDNN and XLA sum): a sum's error is
Σ δ_node·S_node over the tree, and |S_node| ≤ |p|ᵀ|q| on each of its levels when the terms
do not all share a sign. GROWTH then multiplies the whole pass by 2 for what the first-order
pass leaves out: O(u²) terms, and same-sign sums summed recursively, whose expected error
grows like √n/3·u·|p|ᵀ|q| and so passes the ⌈log₂ n⌉ + 1 charge near n ≈ 1024. Measured on
PyTorch, JAX and NumPy (CPU, float32 and float64, batch up to 1024), the greatest
|g − ref| / pass was 0.23: with GROWTH = 2 a correct framework stays 8× inside its bound,
while float32 on TF32-rounded operands exceeds it (tests/bench/separation.py prints both).
Nothing here is scaled by the size of an array.
"""

from __future__ import annotations

import numpy as np

from reference.activations import Activation, activation
from reference.case import Case
from reference.network import forward

U = {"float64": 2.0**-53, "float32": 2.0**-24, "tf32": 2.0**-11, "bfloat16": 2.0**-8}
"""Unit roundoff of each arithmetic the fingerprint can tell apart."""

GROWTH = 2.0
"""Multiplies the magnitude pass; the module docstring says why 2."""


def levels(n: int) -> float:
    """Return how many roundings a term of a length-n sum meets in a balanced tree, plus one."""
    return float(np.ceil(np.log2(max(n, 1)))) + 1.0


def _activation_errors(s: Activation, z: np.ndarray, Ez: np.ndarray, u: float):
    """Return the bounds on fl(σ(z)) and fl(σ′(z)) given z's own bound Ez."""
    Ea = np.abs(s.df(z)) * Ez + u * s.f_err(z)
    Eds = np.abs(s.d2f(z)) * Ez + u * s.df_err(z)
    if s.kink:
        # Where z's error can cross 0 the framework may sit on either side of the jump.
        Eds = np.where(np.abs(z) <= Ez, np.maximum(Eds, s.kink), Eds)
    return Ea, Eds


def magnitude_pass(case: Case, u: float) -> dict[str, np.ndarray]:
    """Return the first-order bound on |fl(g) − g| for each gradient at unit roundoff u."""
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    x, W1, b1, W2, b2, y = case.x, case.W1, case.b1, case.W2, case.b2, case.y
    n0, n1, n2 = case.sizes
    B = case.batch
    z1, a1, z2, a2 = forward(case)
    ax, aW1, aW2 = np.abs(x), np.abs(W1), np.abs(W2)

    Ez1 = u * levels(n0 + 1) * (ax @ aW1.T + np.abs(b1))  # (15)
    Ea1, Eds1 = _activation_errors(s1, z1, Ez1, u)  # (16)
    Ez2 = u * levels(n1 + 1) * (np.abs(a1) @ aW2.T + np.abs(b2)) + Ea1 @ aW2.T  # (17)
    Ea2, Eds2 = _activation_errors(s2, z2, Ez2, u)  # (18)

    e = 2.0 * (a2 - y)  # (19) differentiated
    Ee = 2.0 * (Ea2 + u * np.abs(e) / 2.0)
    ds2 = s2.df(z2)
    delta2 = ds2 * e  # (22)/(24)
    Ed2 = np.abs(ds2) * Ee + Eds2 * np.abs(e) + u * np.abs(delta2)
    ad2, aa1 = np.abs(delta2), np.abs(a1)
    EW2 = u * levels(B) * (ad2.T @ aa1) + Ed2.T @ aa1 + ad2.T @ Ea1  # (21)–(22)
    Eb2 = u * levels(B) * ad2.sum(axis=0) + Ed2.sum(axis=0)  # (23)–(24)

    g1 = delta2 @ W2  # (28)–(29)
    Eg1 = u * levels(n2) * (ad2 @ aW2) + Ed2 @ aW2
    ds1 = s1.df(z1)
    delta1 = ds1 * g1  # (25)–(26)
    Ed1 = np.abs(ds1) * Eg1 + Eds1 * np.abs(g1) + u * np.abs(delta1)
    ad1 = np.abs(delta1)
    EW1 = u * levels(B) * (ad1.T @ ax) + Ed1.T @ ax  # (26)
    Eb1 = u * levels(B) * ad1.sum(axis=0) + Ed1.sum(axis=0)
    return {"W1": EW1, "b1": Eb1, "W2": EW2, "b2": Eb2}


def bounds(case: Case, arithmetic: str) -> dict[str, np.ndarray]:
    """Return each entry's allowed |g − ref|: the framework's error plus the reference's own."""
    framework = magnitude_pass(case, U[arithmetic])
    own = magnitude_pass(case, U["float64"])  # the float64 reference rounds too
    return {k: GROWTH * (framework[k] + own[k]) for k in framework}
