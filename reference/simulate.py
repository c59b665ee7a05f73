"""The network run in a chosen arithmetic, in NumPy: what each arithmetic's errors look like."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reference.activations import activation
from reference.bounds import inputs32, tmm
from reference.case import Case, tensors

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
    r = u >> np.uint32(drop)  # one scratch array, the rest in place: x is the largest operand
    r &= np.uint32(1)  # the last kept bit: ties go to even
    r += np.uint32((1 << (drop - 1)) - 1)
    r += u
    r &= ~np.uint32((1 << drop) - 1)
    return r.view(np.float32)


def truncate_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Keep the first `bits` explicit mantissa bits of float32 values (toward zero)."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32)
    return (u & ~np.uint32((1 << (23 - bits)) - 1)).view(np.float32)


def simulate(case: Case, arithmetic: str) -> dict[str, np.ndarray]:
    """Return (15)–(29) computed in float64, float32, or float32 with tf32/bf16 products
    (`tf32`, `bfloat16`: operands rounded to nearest; with `-truncated`: truncated), at any
    depth (the 2-layer network written out, others layer by layer: `_simulate_deep`)."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r}")
    dtype = np.float64 if arithmetic == "float64" else np.float32
    rounded = _operands(arithmetic)
    if case.depth != 2:
        return _simulate_deep(case, dtype, rounded)

    def mm(a, b):
        return rounded(a) @ rounded(b)

    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    W1, b1, W2, b2, y = (getattr(case, k).astype(dtype) for k in ("W1", "b1", "W2", "b2", "y"))
    x = inputs32(case) if dtype == np.float32 else case.x
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


def _operands(arithmetic: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return what the arithmetic does to a matrix product's operand (nothing, in float)."""
    bits = MATMUL_BITS.get(arithmetic.removesuffix(TRUNCATED))
    cut = truncate_mantissa if arithmetic.endswith(TRUNCATED) else round_mantissa
    return (lambda a: a) if bits is None else (lambda a: cut(a, bits))


def _simulate_deep(case: Case, dtype: type, rounded: Callable) -> dict[str, np.ndarray]:
    """Return the gradients of any depth with every matrix product's operands `rounded`."""
    L = case.depth
    W = [None, *(layer.W.astype(dtype) for layer in case.layers)]  # index i is layer i
    s = [None, *(activation(layer.sigma) for layer in case.layers)]
    x = inputs32(case) if dtype == np.float32 else case.x
    z, ar = [None], [rounded(x)]  # ar[i]: a_i as a product's operand
    for i in range(1, L + 1):
        z.append(ar[i - 1] @ rounded(W[i].T) + case.layers[i - 1].b.astype(dtype))  # (13)
        a = s[i].f(z[i]).astype(dtype)
        ar.append(rounded(a))
    delta = s[L].df(z[L]).astype(dtype) * (2 * (a - case.y.astype(dtype)))  # (19), (22)
    g = {}
    for i in range(L, 0, -1):
        g[f"W{i}"] = tmm(rounded(delta), ar[i - 1])  # (21)–(22)/(26)
        g[f"b{i}"] = delta.sum(axis=0)  # (23)–(24)
        if i > 1:
            delta = s[i - 1].df(z[i - 1]).astype(dtype) * (rounded(delta) @ rounded(W[i]))
    return {k: g[k].astype(np.float64) for k in tensors(L)}
