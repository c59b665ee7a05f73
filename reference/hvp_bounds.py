"""Per-entry error bounds of H·v: the first-order tier carried through the R-pass, and its ceiling.

The R-pass (reference.hvp) is the forward pass (13), the backward recursion of (21)–(29), and
their directional derivatives: more products of the same kinds, the same activations once more
differentiated. Its bound is `reference.bounds`' model applied to each of them, unchanged:

- every intermediate X carries a random part (mean-independent roundings, a variance proxy r²
  in u²) and a systematic part (m, in u: the activations' budgets, elementwise roundings and
  the stagnation of long sums, `bounds._stagnation`), as `bounds.typical_pass` carries them;
- a product with W_i or with the direction's V_i (signs drawn independently of everything the
  errors depend on) carries both parts in quadrature, and adds its own sum's proxy
  (`bounds._sum_own`) over all its terms: Rz_i = Ra_(i−1)W_iᵀ + a_(i−1)V_iᵀ + c_i is one sum of
  2n_(i−1) + 1 terms in whatever order the framework adds its two products and the bias, as
  Rg_(i−1) = Rδ_iW_i + δ_iV_i is one of 2n_i;
- an elementwise product carries each factor's error times the other factors (random parts as
  magnitudes, they share their sources) and rounds once per multiplication, systematically;
- a sum over the batch (Hv of W_i, b_i) adds the samples' random parts in quadrature and their
  systematic parts as magnitudes; its 2B terms (Rδᵀa and δᵀRa) count each sample's four
  error sources with the Cauchy–Schwarz factor 4 (the first-order tier's 2, for its two);
  where its addends cluster within an ulp of the sum (samples made alike by saturating
  layers), it adds their coherent rounding as the first-order batch sums do (`bounds._bias`);
- σ, σ′ and σ″ inherit z's error through σ′, σ″ and σ‴, and add their budgets
  (reference/activations.py: f_err, df_err, d2f_err, each measured against PyTorch, JAX and
  tinygrad's own derivatives with a margin ≥ 2); relu's σ′ may sit on either side of its step
  where z's error reaches 0 (`kink`, charged twice: KINK_MARGIN), and relu″ = 0 on both.

The σ″ term of Rδ_i = σ″(z_i)⊙Rz_i⊙g_i + σ′(z_i)⊙Rg_i is charged ROUNDINGS_D2 roundings of its
own: frameworks form it as a chain of products through their σ′'s own formula (PyTorch's
sigmoid_backward differentiated: grad·gO·(1 − 2·out), then σ′ again), and the budget d2f_err
covers what that chain does to σ″ alone, with unit factors. The entry passes when
|Hv − ref| ≤ u·(λ√r² + m), λ = `bounds.LAMBDA`, at u = u(dtype) + u(float64) (the reference's
own rounding), never above the ceiling: the same model with every sum's own rounding at its
worst (charge(n)·Σ|terms|), every error carried as a magnitude, times GROWTH and SAFETY, as
`bounds.ceiling` is.

Reverse-over-reverse (PyTorch's double backward) forms the same intermediates under other
names (reference.hvp), so the same bound holds for it: its adjoint of δ_i is Rz_i, of z_i Rδ_i.

Why it cannot cry wolf: the tier's argument, unchanged (`bounds`' docstring): Azuma–Hoeffding
at λ = 6 over proxies that take every rounding at its extremes, worst-case magnitudes for what
is not mean-independent. What second order adds is elementwise products of three factors and
sums of two products, each charged as above, and σ″, whose budget is measured. Measured (CPU;
PyTorch double backward and torch.func jvp∘grad, JAX jvp∘grad and grad∘grad): the default
cases over 200 seeds, float32 and float64, 0 of 6,400 groups outside, greatest ratio 0.17
(float32) and 0.073 (float64); 784-16-10, 784-64-10, 784-256-10, 784-64-32-16-10 and
784-64×7-10 at batches 1 … 4,096 (σ tuples mixed, all tanh, all sigmoid): greatest ratio
0.23 in float32 and in float64, but 0.49 where a relu z flips side (the kink's own charge),
least 0.017–0.02 in float32 (JAX's more accurate order at batch 4,096, as for first order).
Tight enough: σ″ missing in any one layer, H·v zero, a layer's gradient or δ detached are
each 10³–10⁵ bounds off on every one of those cases, but where the mistake is smaller than
float32's rounding (the nearzero case's tanh at z ≈ 2⁻¹²: σ″ ≈ 0); one entry off by 10⁻⁴
of itself is outside (tests/test_hvp_reference.py). The tier is 1.2–2× the first-order tier
relative to |ref|: 1·10⁻⁵ of |Hv| for W1 at L = 2, 7·10⁻⁵ at L = 8.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference.activations import Activation, activation
from reference.bounds import (
    GROWTH,
    LAMBDA,
    U,
    _bias,
    _biased,
    _both,
    _sum_own,
    charge,
    inputs32,
    safety,
    tmm,
)
from reference.case import Case, tensors
from reference.hvp import Params, check_direction
from reference.network import forward_deep

F32 = np.float32
ROUNDINGS_D2 = 4.0
"""Own roundings charged to σ″(z)⊙Rz⊙g: two multiplications by the factors, and two more for
the frameworks that reach it through a product chain (module docstring)."""


KINK_MARGIN = 2.0
"""Multiplies the jump of σ′ charged where z's error reaches a kink. A framework whose z lands
on the other side errs there by the jump times the other factors *as it computed them*, and the
charge takes them exact: undoubled, the charge is the flip's whole error, and a correct run
reached 0.96 of the tier (relu-sigmoid-784x256x10-b4096-s0, PyTorch float32, one z of 8.9e-10
that float32 makes 0; the first-order tier, which charges the jump once, reads 0.99 there)."""


class _E(NamedTuple):
    """An intermediate with its error: value v, random part r2 (u²), systematic part m (u);
    r2 and m None where the value is exact (the input x, the direction, the parameters)."""

    v: np.ndarray
    r2: np.ndarray | None = None
    m: np.ndarray | None = None


class _Pass:
    """The rules of the model, one per kind of operation, in the tier's form or (worst=True)
    the ceiling's: every error a magnitude, every sum's own rounding at its worst."""

    def __init__(self, u: float, worst: bool):
        self.u, self.worst, self.read = u, worst, {}

    def bias(self, X: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | None]:
        """Return `bounds._bias` of a batch sum's addends X, read at float32's ulp or coarser
        (as the first-order tier does)."""
        key = id(X)  # the inputs x pair with every layer-1 sum: read them once per pass
        if key not in self.read:
            self.read[key] = (X, _bias(X, max(self.u, U["float32"] + U["float64"])))
        return self.read[key][1]

    def products(self, pairs: list[tuple[_E, np.ndarray]], bias: np.ndarray | None, n: int) -> _E:
        """Return Σ X @ M (+ bias), M a weight or direction matrix, as one sum of n terms."""
        value = sum(X.v @ M for X, M in pairs) + (0 if bias is None else bias)
        aM = [np.abs(M) for _, M in pairs]
        S = sum(np.abs(X.v) @ A for (X, _), A in zip(pairs, aM, strict=True))
        S = S + (0 if bias is None else np.abs(bias))
        errs = [(X, A) for (X, _), A in zip(pairs, aM, strict=True) if X.m is not None]
        if self.worst:
            return _E(value, None, F32(charge(n)) * S + sum(X.m @ A for X, A in errs))
        q = sum((X.v * X.v) @ (A * A) for (X, _), A in zip(pairs, aM, strict=True))
        q = q + (0 if bias is None else bias * bias)
        r2 = _sum_own(n, value, q) + sum(X.r2 @ (A * A) for X, A in errs)
        m = np.sqrt(sum((X.m * X.m) @ (A * A) for X, A in errs)) if errs else 0 * value
        return _E(value, r2, m + _biased(n, self.u, lambda: S))

    def times(self, *factors: _E, rounds: float = 1.0) -> _E:
        """Return the elementwise product of the factors, rounded `rounds` times."""
        value = factors[0].v
        for f in factors[1:]:
            value = value * f.v
        r, m = 0 * value, rounds * np.abs(value)
        for k, f in enumerate(factors):
            if f.m is None:
                continue
            others = np.ones_like(value)
            for j, g in enumerate(factors):
                if j != k:
                    others = others * np.abs(g.v)
            m = m + others * f.m
            if not self.worst:
                r = r + others * np.sqrt(f.r2)
        return _E(value, None if self.worst else r * r, m)

    def plus(self, X: _E, Y: _E) -> _E:
        """Return X + Y elementwise, rounded once."""
        value = X.v + Y.v
        m = X.m + Y.m + np.abs(value)
        if self.worst:
            return _E(value, None, m)
        r = np.sqrt(X.r2) + np.sqrt(Y.r2)
        return _E(value, r * r, m)

    def scaled(self, X: _E, k: float) -> _E:
        """Return k·X for an exact k (2, a power of two: no rounding)."""
        return _E(k * X.v, None if X.r2 is None else k * k * X.r2, abs(k) * X.m)

    def activation(self, s: Activation, z: _E) -> tuple[_E, _E, _E]:
        """Return σ(z), σ′(z), σ″(z), each with z's error carried by the next derivative and
        its own budget; σ′ either side of a kink where z's error reaches it."""
        d1, d2, d3 = s.df(z.v), s.d2f(z.v), s.d3f(z.v)
        rz = None if self.worst else np.sqrt(z.r2)
        reach = z.m if self.worst else LAMBDA * rz + z.m

        def one(value, slope, budget) -> _E:
            m = np.abs(slope) * z.m + budget(z.v)
            return _E(value, None if self.worst else (slope * rz) ** 2, m)

        ds = one(d1, d2, s.df_err)
        if s.kink:
            near = np.abs(z.v) <= self.u * reach
            jump = F32(KINK_MARGIN * s.kink / self.u)
            ds = ds._replace(m=np.where(near, np.maximum(ds.m, jump), ds.m))
        return one(s.f(z.v), d1, s.f_err), ds, one(d2, d3, s.d2f_err)

    def batch(self, pairs: list[tuple[_E, _E]]) -> _E:
        """Return Σ over the batch of Lᵀ R for each pair (Hv of a weight), samples independent."""
        value = sum(tmm(Lf.v, R.v) for Lf, R in pairs)
        S = sum(tmm(np.abs(Lf.v), np.abs(R.v)) for Lf, R in pairs)
        n = pairs[0][0].v.shape[0] * len(pairs)
        m = 0 * value
        for Lf, R in pairs:
            if Lf.m is not None:
                m = m + tmm(Lf.m, np.abs(R.v))
            if R.m is not None:
                m = m + tmm(np.abs(Lf.v), R.m)
        if self.worst:
            return _E(value, None, F32(charge(n)) * S + m)
        q = sum(tmm(Lf.v * Lf.v, R.v * R.v) for Lf, R in pairs)
        k = 2.0 * len(pairs)  # (Σ of 2·len error sources)² ≤ 2·len · Σ of their squares
        inherited = 0 * value
        for Lf, R in pairs:
            if Lf.r2 is not None:
                inherited = inherited + tmm(Lf.r2, R.v * R.v)
            if R.r2 is not None:
                inherited = inherited + tmm(Lf.v * Lf.v, R.r2)
        for Lf, R in pairs:  # clustered addends round alike (bounds._bias): the worst case
            cl = self.bias(Lf.v)[1]
            both = None if cl is None else _both(cl, self.bias(R.v)[1])
            if both is not None:
                B = F32(Lf.v.shape[0])
                m = m + np.where(both, B * tmm(np.abs(Lf.v), np.abs(R.v)), F32(0))
        r2 = _sum_own(n, value, q) + F32(k) * inherited
        return _E(value, r2, m + _biased(n, self.u, lambda: S))

    def batch_sum(self, X: _E) -> _E:
        """Return X summed over the batch (Hv of a bias)."""
        value, S, n = X.v.sum(axis=0), np.abs(X.v).sum(axis=0), X.v.shape[0]
        m = X.m.sum(axis=0)
        if self.worst:
            return _E(value, None, F32(charge(n)) * S + m)
        q = (X.v * X.v).sum(axis=0)
        r2 = _sum_own(n, value, q) + X.r2.sum(axis=0)
        m = m + self.bias(X.v)[0]
        return _E(value, r2, m + _biased(n, self.u, lambda: S))

    def bound(self, X: _E) -> np.ndarray:
        """Return X's error bound in units of u: λ√r² + m (the ceiling: m)."""
        return X.m if self.worst else LAMBDA * np.sqrt(X.r2) + X.m


def r_pass(case: Case, v: Params, p: _Pass, z64: tuple | None = None) -> dict[str, _E]:
    """Return H·v's entries with their errors under the pass's rules, by the R-pass (z64: the
    exact pre-activations, forward_deep(case).z, if already computed)."""
    L, n = case.depth, case.sizes
    z64 = forward_deep(case).z if z64 is None else z64
    s = [None, *(activation(layer.sigma) for layer in case.layers)]  # index i is layer i
    W = [None, *(layer.W.astype(F32) for layer in case.layers)]
    b = [None, *(layer.b.astype(F32) for layer in case.layers)]
    V = [None, *(np.asarray(v[f"W{i}"]).astype(F32) for i in range(1, L + 1))]
    c = [None, *(np.asarray(v[f"b{i}"]).astype(F32) for i in range(1, L + 1))]
    a, Ra, Rz, ds, d2s = [_E(inputs32(case))], [None], [None], [None], [None]
    for i in range(1, L + 1):
        z = p.products([(a[i - 1], W[i].T)], b[i], n[i - 1] + 1)  # (13)
        z = z._replace(v=z64[i].astype(F32))  # the exact z: the pass bounds, it does not compute
        ai, dsi, d2si = p.activation(s[i], z)
        terms = [(a[i - 1], V[i].T)] + ([(Ra[i - 1], W[i].T)] if i > 1 else [])
        Rz.append(p.products(terms, c[i], len(terms) * n[i - 1] + 1))  # R{(13)}
        a.append(ai)
        ds.append(dsi)
        d2s.append(d2si)
        Ra.append(p.times(dsi, Rz[i]))  # R{σ(z)}
    y = case.y.astype(F32)
    g = _E(2 * (a[L].v - y), 4 * a[L].r2 if a[L].r2 is not None else None,
           2 * a[L].m + np.abs(2 * (a[L].v - y)))  # (19) differentiated: a subtraction
    Rg = p.scaled(Ra[L], 2.0)
    out = {}
    for i in range(L, 0, -1):
        delta = p.times(ds[i], g)  # (22)/(26)
        Rdelta = p.plus(p.times(d2s[i], Rz[i], g, rounds=ROUNDINGS_D2), p.times(ds[i], Rg))
        pairs = [(Rdelta, a[i - 1])] + ([(delta, Ra[i - 1])] if i > 1 else [])
        out[f"W{i}"] = p.batch(pairs)  # R{(21)–(22)/(26)}
        out[f"b{i}"] = p.batch_sum(Rdelta)  # R{(23)–(24)}
        if i > 1:
            Rg = p.products([(Rdelta, W[i]), (delta, V[i])], None, 2 * n[i])  # R{(28)–(29)}
            g = p.products([(delta, W[i])], None, n[i])  # (28)–(29)
    return {k: out[k] for k in tensors(L)}


def hvp_ceiling(case: Case, v: Params, dtype: str, z64: tuple | None = None) -> Params:
    """Return the worst-case bound of every entry of H·v: the documented upper limit."""
    check_direction(case, v)
    u = _u(dtype)
    worst = r_pass(case, v, _Pass(u, worst=True), z64)
    n = case.sizes
    longest = 2 * max(case.batch, *(m + 1 for m in n[:-1]), *n[2:])
    scale = GROWTH * u * safety(longest, 2 * case.depth)
    return {k: scale * e.m.astype(np.float64) for k, e in worst.items()}


def hvp_bounds(case: Case, v: Params, dtype: str) -> Params:
    """Return each entry of H·v's allowed |Hv − ref|: the tier at u(dtype) + u(float64), never
    above `hvp_ceiling`."""
    check_direction(case, v)
    u, z64 = _u(dtype), forward_deep(case).z
    p = _Pass(u, worst=False)
    tier = {k: u * p.bound(e).astype(np.float64) for k, e in r_pass(case, v, p, z64).items()}
    top = hvp_ceiling(case, v, dtype, z64)
    return {k: np.minimum(tier[k], top[k]) for k in top}


def _u(dtype: str) -> float:
    """Return u(dtype) + u(float64), or raise naming the known dtypes."""
    if dtype not in U:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(U)}")
    return U[dtype] + U["float64"]
