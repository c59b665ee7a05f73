"""The network run in a chosen arithmetic, in NumPy: what each arithmetic's errors look like,
with every matrix product reduced, or only the products named.

The products of an L-layer network (13), (21)–(29), in the order the pass runs them:
`forward layer i` (a⁽ⁱ⁻¹⁾·W⁽ⁱ⁾ᵀ, i = 1 … L), then from i = L down `∂Wi` (δ⁽ⁱ⁾ᵀ·a⁽ⁱ⁻¹⁾, the
weight gradient summed over the batch) and `backward layer i` (δ⁽ⁱ⁾·W⁽ⁱ⁾, which carries δ back
to layer i − 1, for i ≥ 2): 3L − 1 products. Real libraries pick the arithmetic per product
(oneDNN's bf16 path runs (32×784)·(784×16) in bf16 and (32×16)·(16×10) in float32), so the
diagnosis regresses a framework's errors on each product's simulated effect separately.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

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

OUTPUTS = "bfloat16-outputs"
"""Operands and the product's output rounded to bfloat16: what `torch.autocast` does to a
float32 matrix product."""

REDUCED_ARITHMETICS = (*MATMUL_BITS, *(k + TRUNCATED for k in MATMUL_BITS), OUTPUTS)
"""Every reduced arithmetic a product can be simulated in."""

ACCURATE32 = "float32-accurate"
"""A float64 run with the named operations (`operations`) float32-accurate: a product
computed in float32, an activation's argument and value (σ, or σ′) rounded to float32;
everything else in float64. What a framework that casts one operation to
float32 inside a float64 computation does (an `exp` evaluated in float32, a `matmul` run in
float32)."""

ARITHMETICS = ("float64", "float32", *REDUCED_ARITHMETICS, ACCURATE32)
"""Every arithmetic `simulate` runs."""


def products(depth: int) -> tuple[str, ...]:
    """Return the names of an L-layer network's matrix products, in the order they run."""
    back = []
    for i in range(depth, 0, -1):
        back.append(f"∂W{i}")
        if i > 1:
            back.append(f"backward layer {i}")
    return (*(f"forward layer {i}" for i in range(1, depth + 1)), *back)


def operations(depth: int) -> tuple[str, ...]:
    """Return the operations a float64 run may compute in float32: the matrix products, then
    σ and σ′ of each layer (`σ of layer i`, `σ′ of layer i`)."""
    return (*products(depth), *(f"{op} of layer {i}" for i in range(1, depth + 1)
                                for op in ("σ", "σ′")))


def _r32(a: np.ndarray) -> np.ndarray:
    """Return a float64 array's values rounded to float32, as float64."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def _mm32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return a·b computed in float32 (operands rounded, summed in float32), as float64."""
    return (np.asarray(a).astype(np.float32) @ np.asarray(b).astype(np.float32)).astype(
        np.float64)


def _ew32(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Return f evaluated on its argument rounded to float32, its value rounded to float32."""
    return lambda z: _r32(f(_r32(z)))


BLOCK = 1 << 16
"""Elements rounded at a time: the passes of a rounding stay in the cache (a 200 MB input of
batch 65,536 rounded in one go is five trips through memory)."""


def round_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to `bits` explicit mantissa bits, to nearest even."""
    drop = 23 - bits
    half, low = np.uint32((1 << (drop - 1)) - 1), ~np.uint32((1 << drop) - 1)

    def block(u: np.ndarray, out: np.ndarray) -> None:
        np.right_shift(u, np.uint32(drop), out=out)
        out &= np.uint32(1)  # the last kept bit: ties go to even
        out += half
        out += u
        out &= low

    return _blockwise(a, block)


def truncate_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """Keep the first `bits` explicit mantissa bits of float32 values (toward zero)."""
    low = ~np.uint32((1 << (23 - bits)) - 1)
    return _blockwise(a, lambda u, out: np.bitwise_and(u, low, out=out))


def _blockwise(a: np.ndarray, block) -> np.ndarray:
    """Return block(bits, out) applied to a's float32 bit patterns, BLOCK elements at a time."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    out = np.empty_like(u)
    flat_u, flat_out = u.reshape(-1), out.reshape(-1)
    for k in range(0, flat_u.size, BLOCK):
        block(flat_u[k:k + BLOCK], flat_out[k:k + BLOCK])
    return out.view(np.float32)


def operands(arithmetic: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return what the arithmetic does to a matrix product's operand (nothing, in float)."""
    bits = MATMUL_BITS.get(arithmetic.removesuffix(TRUNCATED).removesuffix("-outputs"))
    cut = truncate_mantissa if arithmetic.endswith(TRUNCATED) else round_mantissa
    return (lambda a: a) if bits is None else (lambda a: cut(a, bits))


def product(arithmetic: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return a matrix product a·b computed in the arithmetic (float32 accumulation)."""
    cut = operands(arithmetic)
    if arithmetic == OUTPUTS:
        return lambda a, b: round_mantissa(cut(a) @ cut(b), MATMUL_BITS["bfloat16"])
    return lambda a, b: cut(a) @ cut(b)


def simulate(case: Case, arithmetic: str, reduced: Iterable[str] | None = None
             ) -> dict[str, np.ndarray]:
    """Return (15)–(29) computed in float64, in float32, or in float32 with the named products
    (`reduced`, default every one) in a reduced arithmetic: tf32/bf16 operands rounded to
    nearest, or truncated (`-truncated`), or bf16 operands and outputs (`bfloat16-outputs`).

    A product's reduced run starts from the float32 run's intermediates up to that product
    (`_tape`), so simulating every product one at a time costs little more than the network.
    """
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r}")
    if arithmetic == "float64":
        return _run(case, np.float64, {})
    if arithmetic == ACCURATE32:
        return _accurate32(case, reduced)
    names = products(case.depth)
    chosen = names if reduced is None else tuple(reduced)
    unknown = set(chosen) - set(names)
    if unknown:
        raise ValueError(f"unknown products {sorted(unknown)}; this case has {list(names)}")
    if arithmetic == "float32" or not chosen:
        return dict(_tape(case).gradients)
    if len(chosen) == 1:
        return _one_product(case, arithmetic, chosen[0])
    mm = _product_for(case, arithmetic)
    return _run(case, np.float32, {p: mm for p in chosen})


class _Tape:
    """The float32 run's intermediates, kept to start reduced runs from: z[i], a[i], δ[i]
    (index i is layer i; a[0] the input x in float32) and the gradients."""

    def __init__(self, z, a, delta, gradients):
        self.z, self.a, self.delta, self.gradients = z, a, delta, gradients


@functools.lru_cache(maxsize=2)
def _tape(case: Case) -> _Tape:
    """Return the case's float32 run with its intermediates (cases are immutable)."""
    record: dict = {}
    g = _run(case, np.float32, {}, record)
    return _Tape(record["z"], record["a"], record["delta"], g)


def _run(case: Case, dtype, reduced: dict, record: dict | None = None, start: int = 1
         ) -> dict[str, np.ndarray]:
    """Return the gradients with each product named in `reduced` computed by its function;
    from layer `start` on (the layers below it taken from the float32 run, `_tape`)."""
    L = case.depth
    W = [None, *(layer.W.astype(dtype) for layer in case.layers)]  # index i is layer i
    s = [None, *(activation(layer.sigma) for layer in case.layers)]
    x = inputs32(case) if dtype == np.float32 else case.x
    z, a = [None], [x]
    if start > 1:
        t = _tape(case)
        z, a = list(t.z[:start]), list(t.a[:start])
    for i in range(start, L + 1):
        mm = reduced.get(f"forward layer {i}")
        prod = a[i - 1] @ W[i].T if mm is None else mm(a[i - 1], W[i].T)
        z.append(prod + case.layers[i - 1].b.astype(dtype))  # (13)
        a.append(reduced.get(f"σ of layer {i}", s[i].f)(z[i]).astype(dtype))
    delta = [None] * (L + 1)
    dsL = reduced.get(f"σ′ of layer {L}", s[L].df)
    delta[L] = dsL(z[L]).astype(dtype) * (2 * (a[L] - case.y.astype(dtype)))  # (19), (22)
    if record is not None:
        record.update(z=z, a=a, delta=delta)
    return _backward(case, dtype, reduced, z, a, delta, L)


def _backward(case: Case, dtype, reduced: dict, z, a, delta, top: int
              ) -> dict[str, np.ndarray]:
    """Return the gradients of layers top … 1 from δ[top], filling δ below it."""
    g = {}
    for i in range(top, 0, -1):
        mm = reduced.get(f"∂W{i}")
        g[f"W{i}"] = tmm(delta[i], a[i - 1]) if mm is None else mm(delta[i].T, a[i - 1])
        g[f"b{i}"] = delta[i].sum(axis=0)  # (23)–(24)
        if i > 1:
            W = case.layers[i - 1].W.astype(dtype)
            mm = reduced.get(f"backward layer {i}")
            back = delta[i] @ W if mm is None else mm(delta[i], W)  # (28)–(29)
            ds = reduced.get(f"σ′ of layer {i - 1}", activation(case.layers[i - 2].sigma).df)
            delta[i - 1] = ds(z[i - 1]).astype(dtype) * back
    return {k: g[k].astype(np.float64) for k in sorted(g, key=tensors(case.depth).index)}


def _one_product(case: Case, arithmetic: str, name: str) -> dict[str, np.ndarray]:
    """Return the float32 gradients with one product reduced, recomputing only what follows it."""
    t, mm = _tape(case), _product_for(case, arithmetic)
    if name.startswith("forward"):  # layers below it as the float32 run computed them
        return _run(case, np.float32, {name: mm}, start=int(name.rsplit(" ", 1)[-1]))
    g = dict(t.gradients)
    i = int(name.rsplit(" ", 1)[-1].removeprefix("∂W"))
    if name.startswith("∂W"):
        g[f"W{i}"] = mm(t.delta[i].T, t.a[i - 1]).astype(np.float64)
        return g
    delta = list(t.delta)  # backward layer i: δ below layer i changes
    W = case.layers[i - 1].W.astype(np.float32)
    sd = activation(case.layers[i - 2].sigma).df(t.z[i - 1]).astype(np.float32)
    delta[i - 1] = sd * mm(delta[i], W)
    g.update(_backward(case, np.float32, {}, t.z, t.a, delta, i - 1))
    return g


def _accurate32(case: Case, reduced: Iterable[str] | None) -> dict[str, np.ndarray]:
    """Return the float64 gradients with the named operations (default every one)
    float32-accurate."""
    names = operations(case.depth)
    chosen = names if reduced is None else tuple(reduced)
    unknown = set(chosen) - set(names)
    if unknown:
        raise ValueError(f"unknown operations {sorted(unknown)}; this case has {list(names)}")
    sigma = {f"{op} of layer {i}": _ew32(getattr(activation(layer.sigma), f))
             for i, layer in enumerate(case.layers, 1) for op, f in (("σ", "f"), ("σ′", "df"))}
    return _run(case, np.float64, {n: sigma.get(n, _mm32) for n in chosen})


def _product_for(case: Case, arithmetic: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return `product(arithmetic)` that reads the case's input x a block of rows at a time.

    x is the largest operand of a large batch (forward layer 1 and ∂W1 read it): rounded
    whole it would be a new array of its size per arithmetic; block by block the rounding
    stays in the cache. ∂W1 then sums its blocks' products in sequence, one more legitimate
    float32 order.
    """
    x, cut = inputs32(case), operands(arithmetic)
    rows = max(1, (1 << 20) // max(x.shape[1], 1))

    def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a is x:  # x·Wᵀ
            right = cut(b)
            out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
            for k in range(0, a.shape[0], rows):
                out[k:k + rows] = cut(a[k:k + rows]) @ right
            return out
        if b is x:  # δᵀ·x, summed over the batch
            total = np.zeros((a.shape[0], b.shape[1]), dtype=np.float32)
            for k in range(0, b.shape[0], rows):
                total += cut(a[:, k:k + rows]) @ cut(b[k:k + rows])
            return total
        return cut(a) @ cut(b)

    if arithmetic == OUTPUTS:
        return lambda a, b: round_mantissa(mm(a, b), MATMUL_BITS["bfloat16"])
    return mm


U32 = 2.0**-24
"""float32's unit roundoff: the size, relative to its value, of a float32-accurate result."""


def exact32(case: Case, op: str) -> bool:
    """Say whether an operation cannot err in float32: σ′ of an activation whose σ′ is
    piecewise constant (relu, identity) is 0 or 1 in any arithmetic, and σ of one that
    computes nothing but z or 0 (relu, identity: no rounding budget) is exact given z."""
    if not op.startswith("σ"):
        return False
    name = case.layers[int(op.rsplit(" ", 1)[-1]) - 1].sigma
    return exact_prime(name) if op.startswith("σ′") else exact_sigma(name)


def exact_prime(name: str) -> bool:
    """Say whether the activation's σ′ is piecewise constant (relu, identity: 0 or 1)."""
    return not np.any(activation(name).d2f(np.linspace(-4.0, 4.0, 17)))


def exact_sigma(name: str) -> bool:
    """Say whether the activation computes nothing but z or 0 (no rounding budget)."""
    return not np.any(activation(name).f_err(np.linspace(-4.0, 4.0, 17)))


def tangents(case: Case, op: str) -> tuple[list, list, Iterable[tuple[list, list]]]:
    """Yield, per unit j of the operation's output (a column of z, a, σ′ or ∂C/∂a of its
    layer), the first-order change of every sample's δ⁽ⁱ⁾ and a⁽ⁱ⁾ (index i is layer i) when
    that unit errs by one float32 ulp of its scale in every sample: the float64 run's
    tangent (13), (19), (22)–(29), one sample a row. The gradients' change is
    Σ_b dδ⁽ⁱ⁾[b]ᵀ a⁽ⁱ⁻¹⁾[b] + δ⁽ⁱ⁾[b]ᵀ da⁽ⁱ⁻¹⁾[b] (W) and Σ_b dδ⁽ⁱ⁾[b] (b), each sample's
    term that sample's column of the operation's Jacobian (`reference.compare`).
    Operations: `σ of layer i`, `σ′ of layer i`, `forward layer i`, `backward layer i`.
    Returns δ and a of the float64 run, and the per-unit (dδ, da)."""
    L, kind, at = case.depth, op.rsplit(" ", 1)[0], int(op.rsplit(" ", 1)[-1])
    W = [None, *(layer.W for layer in case.layers)]
    s = [None, *(activation(layer.sigma) for layer in case.layers)]
    z, a, ds, g, delta = [None], [case.x], [None], [None] * (L + 1), [None] * (L + 1)
    for i in range(1, L + 1):
        z.append(a[i - 1] @ W[i].T + case.layers[i - 1].b)
        a.append(s[i].f(z[i]))
        ds.append(s[i].df(z[i]))
    g[L] = 2 * (a[L] - case.y)
    for i in range(L, 0, -1):
        delta[i] = ds[i] * g[i]
        if i > 1:
            g[i - 1] = delta[i] @ W[i]
    scale = {"σ of layer": lambda i: np.abs(a[i]) + np.abs(z[i] * ds[i]),
             "σ′ of layer": lambda i: (np.abs(ds[i]) + np.abs(z[i] * s[i].d2f(z[i]))
                                       + s[i].df_err(z[i])),
             "forward layer": lambda i: np.sqrt((a[i - 1] ** 2) @ (W[i].T ** 2)),
             "backward layer": lambda i: np.sqrt((delta[i] ** 2) @ (W[i] ** 2))}[kind](at)
    def units():
        for j in range(scale.shape[1]):
            t = np.zeros_like(scale)
            t[:, j] = U32 * scale[:, j]
            yield _tangent(case, kind, at, t, W, s, z, a, ds, g)

    return delta, a, units()


def _tangent(case, kind, at, t, W, s, z, a, ds, g):
    """Return (dδ, da) of every layer for the perturbation t of one operation."""
    L = case.depth
    da, dds, dz = [np.zeros_like(case.x)], [None], [None]
    for i in range(1, L + 1):
        dz.append(da[i - 1] @ W[i].T + (t if (kind, at) == ("forward layer", i) else 0))
        da.append(ds[i] * dz[i] + (t if (kind, at) == ("σ of layer", i) else 0))
        dds.append(s[i].d2f(z[i]) * dz[i] + (t if (kind, at) == ("σ′ of layer", i) else 0))
    dg, ddelta = 2 * da[L], [None] * (L + 1)
    for i in range(L, 0, -1):
        ddelta[i] = dds[i] * g[i] + ds[i] * dg
        if i > 1:
            dg = ddelta[i] @ W[i] + (t if (kind, at) == ("backward layer", i) else 0)
    return ddelta, da
