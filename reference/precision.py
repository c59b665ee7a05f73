"""More precise than asked: which parts of a float32 group were computed in float64 and rounded
once to float32 at the end.

A float64 value rounded once to float32 errs by its own rounding, r, uniform in ± half an ulp
of the value: E r² = ulp²/12, independent from entry to entry. A float32 computation adds the
rounding of every operation that led to the value. So the reading compares a set of errors
with the energy one rounding would give them: ρ = Σ d² / Σ ulp²/12.

- Whole tensors (`all`): d = g − ref. For W⁽ⁱ⁾ and b⁽ⁱ⁾ computed in float64 from float64
  inputs, ρ ≈ 1, and every entry lies within half an ulp of the reference (plus the reference's
  float64 noise, 2⁻²⁹ of the float32 tier): every operation up to that layer's gradients ran in
  float64.
- A weight gradient's own product (`own`): ∂W⁽ⁱ⁾ = δ⁽ⁱ⁾ᵀ a⁽ⁱ⁻¹⁾ summed over the batch. Errors
  carried in from δ or a (float32 or not) are dδᵀa + δᵀda: each row in the span of a⁽ⁱ⁻¹⁾'s rows,
  each column in the span of δ⁽ⁱ⁾'s columns (reference/operations.py's argument for W1, where x
  is exact, so only the right side is needed). What is left off both spans is the product's own
  error: ρ ≈ 1 when the product and its batch sum ran in float64 and were rounded once, more
  than that when B float32 roundings summed up there.

The reading never names anything a genuine float32 computation could give. Each statistic is
read only where NumPy's own float32 run of the case (`reference.simulate.simulate(case,
"float32")`) lies at least SEPARATION above the level (at batch 1 a float32 ∂W is one rounding
of one product, the same as a float64 one: nothing is named there), and only over at least
MIN_DOF independent numbers: ρ's spread under one rounding is √(0.8/dof) (the squared uniform's
variance is 4/5 of its mean squared), so at MIN_DOF = 100 the LEVEL of 1.5 lies 5.6 standard
deviations above one rounding's mean, and a float32 run must err below LEVEL/SEPARATION of its
own simulated level to reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.activations import activation
from reference.case import Case

LEVEL = 1.5
"""ρ at most this (errors' energy over one rounding's) reads `rounded once`."""
SEPARATION = 4.0
"""NumPy's float32 run of the case must reach ρ ≥ SEPARATION × LEVEL for the statistic to be
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


def _ulp_var(g: np.ndarray) -> np.ndarray:
    """Return one float32 rounding's variance at each value, ulp²/12."""
    ulp = np.spacing(np.abs(np.asarray(g, dtype=np.float32))).astype(np.float64)
    return ulp * ulp / 12


def _basis(M: np.ndarray) -> np.ndarray:
    """Return an orthonormal basis of M's columns' span."""
    if not M.size:
        return M
    U, S, _ = np.linalg.svd(M, full_matrices=False)
    return U[:, S > S[0] * 1e-10] if S[0] > 0 else U[:, :0]


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


def own(d: np.ndarray, got: np.ndarray, a_prev: np.ndarray, delta: np.ndarray, exact: bool
        ) -> Statistic:
    """Return the statistic of ∂W's errors d off the span of a⁽ⁱ⁻¹⁾'s rows and (unless its input
    is `exact`, as x is) of δ⁽ⁱ⁾'s columns: the product's own errors."""
    left = None if exact else _basis(delta.T)
    ulp = np.spacing(np.abs(np.asarray(got, dtype=np.float32))).astype(np.float64)
    return Statistic(*_rho(d, ulp * ulp / 12, left, _basis(a_prev.T)))


def statistics(case: Case, got: dict, ref: dict, noise: dict) -> dict[int, tuple]:
    """Return, per layer i, the statistics of W⁽ⁱ⁾ and b⁽ⁱ⁾ whole and of ∂W⁽ⁱ⁾'s own errors."""
    a, delta = intermediates(case)
    out = {}
    for i in range(1, case.depth + 1):
        W, b = f"W{i}", f"b{i}"
        d = {k: np.asarray(got[k], dtype=np.float64) - ref[k] for k in (W, b)}
        both = np.concatenate([d[W], d[b][:, None]], axis=1)
        g = np.concatenate([got[W], got[b][:, None]], axis=1)
        n = np.concatenate([noise[W], noise[b][:, None]], axis=1)
        out[i] = (whole(both, g, n), own(d[W], got[W], a[i - 1], delta[i], i == 1))
    return out


@dataclass(frozen=True)
class Precise:
    """What a float32 group computed more precisely: the layers whose W⁽ⁱ⁾ and b⁽ⁱ⁾ agree with
    float64 arithmetic rounded once (`whole`), and those whose weight-gradient product alone
    did (`products`)."""

    whole: tuple[int, ...]
    products: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.whole or self.products)

    def __str__(self) -> str:
        parts = []
        if self.whole:
            names = ", ".join(f"W{i}, b{i}" for i in self.whole)
            parts.append(f"{names} agree with float64 arithmetic rounded once to float32")
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
    mine, theirs = statistics(case, got, ref, noise), statistics(case, float32, ref, noise)
    whole_ = tuple(i for i in mine if _whole_once(mine[i][0], theirs[i][0]))
    products = tuple(i for i in mine if i not in whole_ and _own_once(mine[i][1], theirs[i][1]))
    return Precise(whole_, products)


def _whole_once(s: Statistic, f32: Statistic) -> bool:
    """Say whether a layer's gradients are one rounding of float64 ones where float32 could not
    be: every entry within half an ulp, ρ at one rounding's level, and a float32 run (whose
    entries lie beyond half an ulp at the rate NumPy's do) left every entry within with
    probability (1 − p)^dof ≤ P_FALSE."""
    p = f32.beyond
    return (s.within and s.dof >= MIN_WHOLE and s.rho <= level(s.dof)
            and f32.rho >= SEPARATION * level(s.dof) and p > 0
            and s.dof * np.log1p(-min(p, 1 - 1e-16)) <= np.log(P_FALSE))


def _own_once(s: Statistic, f32: Statistic) -> bool:
    """Say whether a weight-gradient product's own errors are one rounding's where the case can
    tell (NumPy's float32 product errs SEPARATION × the level or more)."""
    return (s.dof >= MIN_DOF and s.rho <= level(s.dof)
            and f32.rho >= SEPARATION * level(s.dof))
