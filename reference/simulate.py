"""The network run in a chosen arithmetic, in NumPy: what each arithmetic's errors look like."""

from __future__ import annotations

import numpy as np

from reference.activations import activation
from reference.bounds import tmm
from reference.case import Case

MATMUL_BITS = {"tf32": 10, "bfloat16": 7}
"""Explicit mantissa bits that matrix-product operands keep under each reduced arithmetic."""

TRUNCATED = "-truncated"
"""Suffix of a reduced arithmetic whose operands lose their low bits by truncation: a tensor
core that reads "only the first 10 bits of the input mantissa" (PyTorch's note on TF32) does
that, rather than rounding; `tf32-truncated` simulates it."""


ARITHMETICS = ("float64", "float32", *MATMUL_BITS, *(k + TRUNCATED for k in MATMUL_BITS))
"""Every arithmetic `simulate` runs."""


def round_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to `bits` explicit mantissa bits, to nearest even."""
    drop = 23 - bits
    u = np.asarray(a, dtype=np.float32).view(np.uint32)
    half = np.uint32((1 << (drop - 1)) - 1)
    u = (u + half + ((u >> np.uint32(drop)) & np.uint32(1))) & ~np.uint32((1 << drop) - 1)
    return u.view(np.float32)


def truncate_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Keep the first `bits` explicit mantissa bits of float32 values (toward zero)."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32)
    return (u & ~np.uint32((1 << (23 - bits)) - 1)).view(np.float32)


def simulate(case: Case, arithmetic: str) -> dict[str, np.ndarray]:
    """Return (15)–(29) computed in float64, float32, or float32 with tf32/bf16 products
    (`tf32`, `bfloat16`: operands rounded to nearest; with `-truncated`: truncated)."""
    dtype = np.float64 if arithmetic == "float64" else np.float32
    base = arithmetic.removesuffix(TRUNCATED)
    bits = MATMUL_BITS.get(base)
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r}")
    cut = truncate_mantissa if arithmetic.endswith(TRUNCATED) else round_mantissa

    def rounded(a):
        return a if bits is None else cut(a, bits)

    def mm(a, b):
        return rounded(a) @ rounded(b)

    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    W1, b1, W2, b2, x, y = (getattr(case, k).astype(dtype) for k in ("W1", "b1", "W2", "b2",
                                                                      "x", "y"))
    xr = rounded(x)  # the largest operand, rounded once for (15) and (26)
    z1 = xr @ rounded(W1).T + b1  # (15)
    a1 = s1.f(z1).astype(dtype)  # (16)
    z2 = mm(a1, W2.T) + b2  # (17)
    a2 = s2.f(z2).astype(dtype)  # (18)
    delta2 = s2.df(z2).astype(dtype) * (2 * (a2 - y))  # (22)/(24)
    delta1 = s1.df(z1).astype(dtype) * mm(delta2, W2)  # (26), (28)–(29)
    g = {"W1": tmm(rounded(delta1), xr), "b1": delta1.sum(axis=0),
         "W2": tmm(rounded(delta2), rounded(a1)),
         "b2": delta2.sum(axis=0)}
    return {k: v.astype(np.float64) for k, v in g.items()}
