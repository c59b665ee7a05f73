"""The R-pass (reference.hvp) run in a chosen arithmetic, in NumPy: what H·v's errors look like in
float32, or with the named matrix products in a reduced arithmetic (reference.simulate's).

The products of an L-layer R-pass, in the order it runs them: `forward layer i` (a_(i−1)·W_iᵀ)
and `R-forward layer i` (Ra_(i−1)·W_iᵀ + a_(i−1)·V_iᵀ) for i = 1 … L, then from i = L down
`R∂Wi` (Rδ_iᵀ·a_(i−1) + δ_iᵀ·Ra_(i−1), H·v of W_i), and for i ≥ 2 `backward layer i` (δ_i·W_i)
and `R-backward layer i` (Rδ_i·W_i + δ_i·V_i): 5L − 2 products. A product of two terms is
reduced as one: both terms in the arithmetic, summed in float32.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from reference.activations import activation
from reference.bounds import inputs32
from reference.case import Case, tensors
from reference.hvp import Params, check_direction
from reference.simulate import ARITHMETICS, product


def hvp_products(depth: int) -> tuple[str, ...]:
    """Return the names of an L-layer R-pass's matrix products, in the order they run."""
    back = []
    for i in range(depth, 0, -1):
        back.append(f"R∂W{i}")
        if i > 1:
            back += [f"backward layer {i}", f"R-backward layer {i}"]
    forward = [f"{kind}forward layer {i}" for i in range(1, depth + 1) for kind in ("", "R-")]
    return (*forward, *back)


def simulate_hvp(case: Case, v: Params, arithmetic: str, reduced: Iterable[str] | None = None
                 ) -> Params:
    """Return H·v computed in float64, in float32, or in float32 with the named products
    (`reduced`, default every one) in a reduced arithmetic of reference.simulate."""
    check_direction(case, v)
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r}")
    names = hvp_products(case.depth)
    chosen = names if reduced is None else tuple(reduced)
    unknown = set(chosen) - set(names)
    if unknown:
        raise ValueError(f"unknown products {sorted(unknown)}; this case has {list(names)}")
    dtype = np.float64 if arithmetic == "float64" else np.float32
    low, plain = product(arithmetic), np.matmul
    mm = {p: (low if p in chosen and arithmetic not in ("float32", "float64") else plain)
          for p in names}
    return _r_pass(case, v, dtype, mm)


def _r_pass(case: Case, v: Params, dtype, mm: dict) -> Params:
    """Return H·v by reference.hvp's R-pass in dtype, each product computed by mm[its name]."""
    L = case.depth
    s = [None, *(activation(layer.sigma) for layer in case.layers)]  # index i is layer i
    W = [None, *(layer.W.astype(dtype) for layer in case.layers)]
    b = [None, *(layer.b.astype(dtype) for layer in case.layers)]
    V = [None, *(np.asarray(v[f"W{i}"]).astype(dtype) for i in range(1, L + 1))]
    c = [None, *(np.asarray(v[f"b{i}"]).astype(dtype) for i in range(1, L + 1))]
    x = inputs32(case) if dtype == np.float32 else case.x
    z, a, Rz, Ra = [None], [x], [None], [None]
    for i in range(1, L + 1):
        z.append(mm[f"forward layer {i}"](a[i - 1], W[i].T) + b[i])  # (13)
        a.append(s[i].f(z[i]).astype(dtype))
        Rmm = mm[f"R-forward layer {i}"]
        Rz_i = Rmm(a[i - 1], V[i].T) + c[i]
        Rz.append(Rz_i if i == 1 else Rz_i + Rmm(Ra[i - 1], W[i].T))  # R{(13)}
        Ra.append(s[i].df(z[i]).astype(dtype) * Rz[i])
    g, Rg, out = 2 * (a[L] - case.y.astype(dtype)), 2 * Ra[L], {}  # (19) differentiated
    for i in range(L, 0, -1):
        ds, d2s = s[i].df(z[i]).astype(dtype), s[i].d2f(z[i]).astype(dtype)
        delta, Rdelta = ds * g, d2s * Rz[i] * g + ds * Rg
        Wmm = mm[f"R∂W{i}"]
        HW = Wmm(Rdelta.T, a[i - 1])
        if i > 1:
            HW = HW + Wmm(delta.T, Ra[i - 1])
        out[f"W{i}"], out[f"b{i}"] = HW, Rdelta.sum(axis=0)
        if i > 1:
            Rmm = mm[f"R-backward layer {i}"]
            Rg = Rmm(Rdelta, W[i]) + Rmm(delta, V[i])  # R{(28)–(29)}
            g = mm[f"backward layer {i}"](delta, W[i])  # (28)–(29)
    return {k: out[k].astype(np.float64) for k in tensors(L)}
