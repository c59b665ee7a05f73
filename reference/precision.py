"""More precise than asked: which parts of a float32 group were computed in float64 and rounded
once to float32 at the end.

A float64 value rounded once to float32 errs by its own rounding r, uniform within ± half an ulp
of the value: E r² = ulp²/12, independent from number to number. A float32 computation adds
the rounding of every operation that led to the value. So each reading sets a field of errors
against the energy one rounding gives it: ρ = Σ d² / Σ ulp²/12 (≈ 1 for one rounding, with
spread √(0.8/dof): the squared uniform's variance is 4/5 of its mean squared).

- A layer as it is (`whole`): d = g − ref over W⁽ⁱ⁾ and b⁽ⁱ⁾. Computed in float64 from float64
  inputs, every entry lies within half an ulp of the reference (plus the float64 noise of the
  reference and of the run, 2⁻²⁹ of the float32 tier), and ρ ≈ 1 over the entries whose float64
  noise is below CLEAN of an ulp (in saturation a float64 σ′ errs by more than a float32
  rounding of its tiny value). A float32 run that leaves each entry beyond half an ulp with
  NumPy's rate p leaves all of them within with probability (1 − p)^dof: named only where that
  is below P_FALSE.
- Everything from σ of layer k on (`after`): a run that promotes at layer k's activation (a
  softplus computed in float64 on a float32 z) errs in layers k … L only through z⁽ᵏ⁾'s float32
  errors and, below it, a⁽ᵏ⁻¹⁾'s: those errors lie in the span of the two operations' first-order
  effects (`reference.simulate.tangents`, as `reference.operations` reads a float64 run), and
  what is left off the span is one rounding's, ρ ≈ 1. Each element-wise operation of those
  layers is named float64 only where its own float32 errors (its argument and value rounded:
  the most accurate float32 σ there is) would have left the span with ρ ≥ SEPARATION × the
  level: relu's σ of a float32 z is exact and never named, and at batch 32 z⁽¹⁾'s 512 columns
  take most of the 698 numbers, so nothing shows there.
- A weight gradient's own product (`own`): ∂W⁽ⁱ⁾ = δ⁽ⁱ⁾ᵀa⁽ⁱ⁻¹⁾ summed over the batch. Errors
  carried in are dδᵀa + δᵀda: each row in the span of a⁽ⁱ⁻¹⁾'s rows, each column in the span
  of δ⁽ⁱ⁾'s columns (for W1, x is exact: its rows' span alone, as in reference/operations.py).
  What is left off both is the product's own error: one rounding's (ρ ≈ 1) when it ran in
  float64, B float32 roundings' otherwise (at batch 1 one product's rounding either way:
  nothing is named there).

Never on a correct float32 framework: a statistic is read only over at least MIN_DOF numbers
(MIN_WHOLE for a layer's entries, with P_FALSE besides), at a level six standard deviations of
one rounding above 1 (at most LEVEL), and only where NumPy's own float32 run of the case
(`reference.simulate.simulate(case, "float32")`) reaches SEPARATION × that level. Measured on the
default cases: correct float32 runs summed pairwise (the most accurate order) reach ρ ≥ 2.5
where NumPy's reach 11 (batch 32, own product) and ≥ 7.7 where NumPy's reach 22 (`after`);
float64 rounded once reads 0.63–1.3. Over the default cases at seeds 0–19: no note on NumPy's
float32 run, the NumPy adapter, the five summation orders of tests/fixtures/orders.py, torch's
three idioms or jax (2,200 groups). The reading from layer k on is made only where layer k's
gradients err SEPARATION times less than NumPy's float32 ones (it costs a Gram matrix of
batch × width columns, ~0.4 s on 784-64-32-16-10 b8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.activations import activation
from reference.case import Case
from reference.operations import COLUMNS, candidates
from reference.simulate import ACCURATE32, simulate, tangents

LEVEL = 1.5
"""ρ at most this (errors' energy over one rounding's) reads `rounded once`; over many numbers
less (`level`)."""
SEPARATION = 4.0
"""NumPy's float32 run of the case must reach SEPARATION × the level for a statistic to be
read: the case can tell float32 from one rounding there."""
CLEAN = 1 / 16
"""Whole tensors' ρ is read on the entries whose float64 noise is below this share of an ulp."""
MIN_DOF = 100
"""The fewest independent numbers a weight-gradient product's own errors are read on: at 48
(784-64-32-16-10 b8, layer 4) a pairwise float32 sum reached ρ = 1.27."""
MIN_WHOLE = 20
"""The fewest a whole layer's are read on (besides P_FALSE, which asks more where float32
leaves more entries within half an ulp)."""
P_FALSE = 1e-9
"""The most a float32 run may have of leaving every entry of a layer within half an ulp."""


@dataclass(frozen=True)
class Statistic:
    """ρ of one set of errors and the (effective) count of numbers it is read on."""

    rho: float
    dof: float
    within: bool = True  # every entry within half an ulp of the reference (whole tensors)
    beyond: float = 0.0  # the share of entries that are not
    ops: tuple[str, ...] = ()  # the operations shown to have run in float64 (`after`)


def _basis(M: np.ndarray) -> np.ndarray:
    """Return an orthonormal basis of M's columns' span; the identity where there are as many
    columns as rows (a batch as large as the layer: nothing is left off the span to read, and
    an SVD of 784 × 65,536 would cost seconds)."""
    if M.shape[1] >= M.shape[0]:
        return np.eye(M.shape[0])
    if not M.size:
        return M
    U, S, _ = np.linalg.svd(M, full_matrices=False)
    return U[:, S > S[0] * 1e-10] if S[0] > 0 else U[:, :0]


def _gram_basis(J: np.ndarray) -> np.ndarray:
    """Return an orthonormal basis of J's columns' span from the eigenvectors of JᵀJ (many rows,
    fewer columns: a tenth of an SVD's time), directions below 10⁻⁵ of the largest dropped."""
    norms = np.linalg.norm(J, axis=0)
    J = J[:, norms > 0] / norms[norms > 0]
    if not J.shape[1]:
        return J
    lam, V = np.linalg.eigh(J.T @ J)
    keep = lam > 1e-10 * max(float(lam[-1]), 1e-300)
    return (J @ V[:, keep]) / np.sqrt(lam[keep])


def _rho(d: np.ndarray, var: np.ndarray, left: np.ndarray | None, right: np.ndarray | None
         ) -> tuple[float, float]:
    """Return (ρ, dof) of the errors d off the spans `left` (of columns) and `right` (of rows);
    dof is the effective count (Satterthwaite's (Σ wv)² / Σ (wv)², w each entry's share left
    after the projections, v its variance): a few large entries weigh as few numbers."""
    lw = np.ones(d.shape[0]) if left is None else 1 - np.sum(left * left, axis=1)
    rw = np.ones(d.shape[1]) if right is None else 1 - np.sum(right * right, axis=1)
    if left is not None:
        d = d - left @ (left.T @ d)
    if right is not None:
        d = d - (d @ right) @ right.T
    wv = np.clip(lw, 0, None)[:, None] * var * np.clip(rw, 0, None)[None, :]
    expected, square = float(wv.sum()), float(np.sum(wv * wv))
    if not expected > 0:
        return np.inf, 0.0
    return float(np.sum(d * d)) / expected, expected * expected / square


def intermediates(case: Case) -> tuple[list, list]:
    """Return a⁽ⁱ⁾ (a[0] = x) and δ⁽ⁱ⁾ (index i is layer i) of the float64 run."""
    L = case.depth
    s = [None, *(activation(layer.sigma) for layer in case.layers)]
    z, a = [None], [case.x]
    for i in range(1, L + 1):
        z.append(a[i - 1] @ case.layers[i - 1].W.T + case.layers[i - 1].b)  # (13)
        a.append(s[i].f(z[i]))
    delta, g = [None] * (L + 1), 2 * (a[L] - case.y)  # (19)
    for i in range(L, 0, -1):
        delta[i] = s[i].df(z[i]) * g  # (22), (24), (26)
        g = delta[i] @ case.layers[i - 1].W  # (28)–(29)
    return a, delta


def level(dof: float) -> float:
    """Return the greatest ρ read as one rounding over dof numbers: six standard deviations of
    one rounding's ρ above its mean 1, never more than LEVEL."""
    return min(LEVEL, 1 + 6 * np.sqrt(0.8 / dof)) if dof > 0 else 0.0


def whole(d: np.ndarray, got: np.ndarray, noise: np.ndarray) -> Statistic:
    """Return the statistic of one layer's errors d (W⁽ⁱ⁾ beside b⁽ⁱ⁾) as they are: ρ over the
    entries whose float64 noise is below CLEAN of an ulp (in saturation a float64 σ′ errs by
    more than a float32 rounding of its tiny value: no rounding shows there), and whether every
    entry lies within half an ulp plus `noise` (`beyond`: the share of clean entries that do
    not)."""
    ulp = np.spacing(np.abs(np.asarray(got, dtype=np.float32))).astype(np.float64)
    clean = noise <= CLEAN * ulp
    rho, dof = _rho(np.where(clean, d, 0.0), np.where(clean, ulp * ulp / 12, 0.0), None, None)
    out = np.abs(d) > ulp / 2 + noise
    beyond = float(np.mean(out[clean])) if clean.any() else 0.0
    return Statistic(rho, dof, not out.any(), beyond)


def own(d: np.ndarray, got: np.ndarray, left: np.ndarray | None, right: np.ndarray
        ) -> Statistic:
    """Return the statistic of ∂W's errors d off the span `right` of a⁽ⁱ⁻¹⁾'s rows and (unless
    its input is exact, as x is: `left` None) the span `left` of δ⁽ⁱ⁾'s columns: the product's
    own errors."""
    ulp = np.spacing(np.abs(np.asarray(got, dtype=np.float32))).astype(np.float64)
    return Statistic(*_rho(d, ulp * ulp / 12, left, right))


KEPT = 16
"""Cases whose case-only quantities (spans, columns, NumPy's float32 statistics) are kept: the
default matrix runs each float32 config over its ten cases in turn."""
_KEPT: dict = {}


def _kept(case: Case, key, make):
    """Return make() for this case and key, computed once while the case is among the last KEPT
    cases asked about (each kept with its case, so an id is never reused)."""
    entry = _KEPT.pop(id(case), None)
    if entry is None or entry[0] is not case:
        entry = (case, {})
    _KEPT[id(case)] = entry  # the most recent last
    while len(_KEPT) > KEPT:
        _KEPT.pop(next(iter(_KEPT)))
    if key not in entry[1]:
        entry[1][key] = make()
    return entry[1][key]


def spans(case: Case) -> dict[int, tuple]:
    """Return, per layer i, the orthonormal bases of δ⁽ⁱ⁾'s columns (None for layer 1, whose
    input x is exact) and of a⁽ⁱ⁻¹⁾'s rows."""
    def make():
        a, delta = intermediates(case)
        return {i: (None if i == 1 else _basis(delta[i].T), _basis(a[i - 1].T))
                for i in range(1, case.depth + 1)}

    return _kept(case, "spans", make)


def statistics(case: Case, got: dict, ref: dict, noise: dict) -> dict[int, tuple]:
    """Return, per layer i, the statistics of W⁽ⁱ⁾ and b⁽ⁱ⁾ whole and of ∂W⁽ⁱ⁾'s own errors."""
    out = {}
    for i, (left, right) in spans(case).items():
        W, b = f"W{i}", f"b{i}"
        d = {k: np.asarray(got[k], dtype=np.float64) - ref[k] for k in (W, b)}
        both = np.concatenate([d[W], d[b][:, None]], axis=1)
        g = np.concatenate([got[W], got[b][:, None]], axis=1)
        n = np.concatenate([noise[W], noise[b][:, None]], axis=1)
        out[i] = (whole(both, g, n), own(d[W], got[W], left, right))
    return out


def _float32(case: Case, float32: dict, ref: dict, noise: dict) -> dict[int, tuple]:
    """Return `statistics` of NumPy's float32 run, computed once per run."""
    run, stats = _kept(case, ("float32", id(float32)),
                       lambda: (float32, statistics(case, float32, ref, noise)))
    return stats if run is float32 else statistics(case, float32, ref, noise)


def _hypothesis(k: int) -> tuple[str, ...]:
    """Return the operations whose float32 errors reach layers k … L when everything from σ of
    layer k on ran in float64: z⁽ᵏ⁾'s product and (below it) a⁽ᵏ⁻¹⁾, which carry every error
    of the float32 layers before them."""
    return (f"forward layer {k}",) + ((f"σ of layer {k - 1}",) if k > 1 else ())


def _numbers(case: Case, k: int, W: dict, b: dict, Q: np.ndarray) -> np.ndarray:
    """Return layers k … L's values (W⁽¹⁾ on the inputs' span: its rows times Q), one vector;
    W[i] and b[i] may carry leading axes (the columns')."""
    parts = []
    for i in range(k, case.depth + 1):
        w = W[i] @ Q if i == 1 else W[i]
        parts += [w.reshape(*w.shape[:-2], -1), b[i]]
    return np.concatenate(parts, axis=-1)


def _columns(case: Case, k: int, Q: np.ndarray) -> np.ndarray:
    """Return the first-order effect on layers k … L's numbers of one float32 ulp in each
    element of `_hypothesis(k)`'s operations, a column per (unit, sample)."""
    def make():
        cols = []
        for op in _hypothesis(k):
            delta, a, units = tangents(case, op)
            for dd, da in units:
                W = {i: np.einsum("bi,bk->bik", dd[i], a[i - 1])
                     + np.einsum("bi,bk->bik", delta[i], da[i - 1])
                     for i in range(k, case.depth + 1)}
                cols.append(_numbers(case, k, W, {i: dd[i] for i in W}, Q))
        return np.concatenate(cols, axis=0).T

    return _kept(case, ("columns", k), make)


def after(case: Case, got: dict, ref: dict, noise: dict, k: int, claims: bool = True
          ) -> Statistic:
    """Return the statistic of layers k … L's errors off the span of `_hypothesis(k)`'s effects
    (each number weighted by one rounding's deviation; W⁽¹⁾ read on the inputs' span, its part
    off it being ∂W⁽¹⁾'s own, read by `own`): ρ ≈ 1 when everything from σ of layer k on ran
    in float64, rounded once at the end. Where it is, `ops` are the element-wise operations of
    those layers whose float32 errors would have shown (`_effects`, SEPARATION × the level off
    the span): those ran in float64; relu's σ, exact on a float32 z, never shows."""
    L, Q = case.depth, spans(case)[1][1]
    d = {k_: np.asarray(got[k_], dtype=np.float64) - ref[k_] for k_ in ref}
    ulp = {k_: np.spacing(np.abs(np.asarray(got[k_], dtype=np.float32))).astype(np.float64)
           for k_ in ref}
    var = {k_: u * u / 12 for k_, u in ulp.items()}
    clean = {k_: noise[k_] <= CLEAN * ulp[k_] for k_ in ref}
    y = _numbers(case, k, {i: d[f"W{i}"] for i in range(k, L + 1)},
                 {i: d[f"b{i}"] for i in range(k, L + 1)}, Q)
    v = _numbers(case, k, {i: var[f"W{i}"] for i in range(k, L + 1)},
                 {i: var[f"b{i}"] for i in range(k, L + 1)}, Q * Q)
    ok = _numbers(case, k, {i: np.where(clean[f"W{i}"].all(axis=1, keepdims=True), 1.0, 0.0)
                            * np.ones_like(var[f"W{i}"]) for i in range(k, L + 1)},
                  {i: clean[f"b{i}"].astype(float) for i in range(k, L + 1)},
                  np.abs(Q) / np.maximum(np.abs(Q).sum(axis=0), 1e-300)) > 1 - 1e-9
    ok &= v > 0
    sd = np.sqrt(v[ok])
    U = _gram_basis(_columns(case, k, Q)[ok] / sd[:, None])
    left = float(np.sum(1 - np.sum(U * U, axis=1)))

    def rho(e: np.ndarray) -> float:  # e's energy off the span, per number left, in roundings
        z = e[ok] / sd
        r = z - U @ (U.T @ z)
        return float(r @ r) / left if left > 0 else np.inf

    found = Statistic(rho(y), left)
    if not claims or not found.rho <= level(left):
        return found
    seen = tuple(op for op, e in _effects(case, k, Q).items()
                 if rho(e) >= SEPARATION * level(left))
    return Statistic(found.rho, left, ops=seen)


def _effects(case: Case, k: int, Q: np.ndarray) -> dict[str, np.ndarray]:
    """Return, per element-wise operation of layers k … L (σ, and σ′ where it can err), layers
    k … L's numbers changed by that operation alone made float32-accurate (its argument and
    value rounded: what the most accurate float32 σ does) in a float64 run."""
    def make():
        L, base = case.depth, simulate(case, "float64")
        ops = [op for op in candidates(case) if op.startswith("σ")
               and int(op.rsplit(" ", 1)[-1]) >= k]
        out = {}
        for op in ops:
            g = simulate(case, ACCURATE32, (op,))
            out[op] = _numbers(case, k, {i: g[f"W{i}"] - base[f"W{i}"] for i in range(k, L + 1)},
                               {i: g[f"b{i}"] - base[f"b{i}"] for i in range(k, L + 1)}, Q)
        return out

    return _kept(case, ("effects", k), make)


@dataclass(frozen=True)
class Precise:
    """What a float32 group computed more precisely: the layers whose W⁽ⁱ⁾ and b⁽ⁱ⁾ agree with
    float64 arithmetic rounded once (`whole`), the first layer k from whose σ on everything ran
    in float64 (`after`, 0: none), and the layers whose weight-gradient product alone did
    (`products`)."""

    whole: tuple[int, ...]
    products: tuple[int, ...]
    after: int = 0
    depth: int = 0
    ops: tuple[str, ...] = ()  # from layer `after` on, the operations shown float64

    def __bool__(self) -> bool:
        return bool(self.whole or self.products or self.after)

    def __str__(self) -> str:
        tensors = lambda layers: ", ".join(f"W{i}, b{i}" for i in layers)  # noqa: E731
        k, parts = self.after, []
        if k == 1 and 1 in self.whole:
            parts.append(f"the whole run agrees with float64 arithmetic rounded once to float32 "
                         f"({tensors(range(1, self.depth + 1))})")
        else:
            if self.whole:
                parts.append(f"{tensors(self.whole)} agree with float64 arithmetic rounded once "
                             "to float32")
            if k:
                parts.append(f"{', '.join(self.ops)} ran in float64 "
                             f"({tensors(range(k, self.depth + 1))} agree with float64 "
                             f"arithmetic from a float32 z⁽{k}⁾ on, rounded once)")
        if self.products:
            many = len(self.products) > 1
            parts.append(f"the weight-gradient product{'s' if many else ''} of layer"
                         f"{'s' if many else ''} {', '.join(map(str, self.products))} (δᵀa, "
                         f"summed over the batch) ran in float64 and "
                         f"{'were' if many else 'was'} rounded once")
        return "more precise than asked: " + "; ".join(parts)


def read(case: Case, got: dict, ref: dict, noise: dict, float32: dict) -> Precise:
    """Return which layers of a float32 group were computed in float64 and rounded once
    (`noise`: the float64 tier, twice over: the reference's and the run's; `float32`: NumPy's
    float32 run of the case, which says where the case can tell)."""
    mine, theirs = statistics(case, got, ref, noise), _float32(case, float32, ref, noise)
    whole_ = tuple(i for i in mine if _whole_once(mine[i][0], theirs[i][0]))
    k, ops = 0, ()
    for i in (i for i in mine if _gate(mine, theirs, i) and _columns_of(case, i) <= COLUMNS):
        s = after(case, got, ref, noise, i)
        if s.ops and _once(s, _float32_after(case, float32, ref, noise, i)):
            k, ops = i, s.ops
            break
    covered = set(range(k, case.depth + 1)) if k else set()
    products = tuple(i for i in mine if i not in whole_ and i not in covered
                     and _own_once(mine[i][1], theirs[i][1]))
    return Precise(whole_, products, k, case.depth, ops)


def _columns_of(case: Case, k: int) -> int:
    """Return how many columns the reading from layer k on regresses on (`_hypothesis`)."""
    B, n = case.x.shape[0], case.sizes
    return B * (n[k] + (n[k - 1] if k > 1 else 0))


def _gate(mine: dict, theirs: dict, k: int) -> bool:
    """Say whether layer k's gradients err SEPARATION times less than NumPy's float32 ones (in
    ρ): only then is the costlier reading from layer k on (`after`) made."""
    return mine[k][0].rho * SEPARATION <= theirs[k][0].rho


def _float32_after(case: Case, float32: dict, ref: dict, noise: dict, k: int) -> Statistic:
    """Return `after` of NumPy's float32 run, computed once per run."""
    run, stat = _kept(case, ("float32 after", k, id(float32)),
                      lambda: (float32, after(case, float32, ref, noise, k, claims=False)))
    return stat if run is float32 else after(case, float32, ref, noise, k, claims=False)


def _whole_once(s: Statistic, f32: Statistic) -> bool:
    """Say whether a layer's gradients are one rounding of float64 ones where float32 could not
    be: every entry within half an ulp, ρ at one rounding's level, and a float32 run (whose
    entries lie beyond half an ulp at the rate NumPy's do) left every entry within with
    probability (1 − p)^dof ≤ P_FALSE."""
    p = f32.beyond
    return (s.within and s.dof >= MIN_WHOLE and _once(s, f32, MIN_WHOLE) and p > 0
            and s.dof * np.log1p(-min(p, 1 - 1e-16)) <= np.log(P_FALSE))


def _once(s: Statistic, f32: Statistic, fewest: float = MIN_DOF) -> bool:
    """Say whether a statistic reads one rounding where the case can tell (NumPy's float32 run
    reaches SEPARATION × the level or more), over at least `fewest` numbers."""
    return (s.dof >= fewest and s.rho <= level(s.dof)
            and f32.rho >= SEPARATION * level(s.dof))


_own_once = _once
