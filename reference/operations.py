"""Which operation of a float64 run lost precision: the group's errors set against the span of
each operation's first-order effect on the gradients.

An operation computed float32-accurately inside a float64 run (an `exp` evaluated in float32, a
product run in float32) errs by a few float32 ulps in each element it computes, and those errors
reach the gradients through that operation's Jacobian J: the errors d = got − ref lie in the span
of J's columns, one column per element (sample b, unit j), up to second-order terms (u² ≈ 2⁻⁴⁸
of the values) and the run's own float64 noise (2⁻⁵³). Another operation's span leaves a residual
of the errors' own size. The implementation's error in each element is never reproduced (MLX's
float64 `exp` errs by up to 6 float32 ulps, unlike any rounding one could simulate); only where
it enters is. So the reading is by orders of magnitude, not by a statistic: the operations named
leave a residual below RESIDUAL of the errors (2⁻¹⁰; measured ≤ 3·10⁻⁸ where the operation is
right, ≥ 10⁻⁴ where it is not), the errors fitted to each element have float32's size (ULPS),
and at least MIN_DF numbers are
left over after the columns named (`reference.compare.MIN_DF`): on the 1-1-1 chain (4 numbers)
nothing is ever named.

Operations are the element-wise ones, `σ of layer i` and `σ′ of layer i` (σ′ of relu and
identity is 0 or 1 in any arithmetic: never named), and the products that feed them,
`forward layer i` (z⁽ⁱ⁾) and `backward layer i` (∂C/∂a⁽ⁱ⁻¹⁾). Some have the same span, and
the label says so rather than guess: in the output layer σ, σ′ and the forward product all move
δ⁽ᴸ⁾ only (`σ or σ′ of layer L`); `backward layer i` moves δ⁽ⁱ⁻¹⁾ as σ′ of layer i − 1 does;
`forward layer i` moves σ and σ′ of layer i together, as one float32 value of z does (σ and σ′
evaluated from a float32 z, or σ′ from a float32 σ). Matrix products are told by the weight
gradient ∂W1 = δ⁽¹⁾ᵀx: every other operation's effect on W1 lies in the span of the inputs' rows
(x is exact), so W1's errors off that span are ∂W1's own; when they have float32's size in most
rows the products ran in float32, and W's entries (all of them in ∂W's span) are left out of the
rest of the reading.

An element's float32 scale is its first-order size, and for σ′ also its float32 budget
(`reference.activations`, 8u·σ for sigmoid): a σ′ taken as σ(1 − σ) from a float32 σ is 0
where σ rounds to 1, off by u absolutely, 10¹¹ of σ′'s own ulps in saturation. Where the
operations named share their span with others (`_alike`), the fit with the smaller errors
stands. Past RESIDUAL the reading goes on while an operation takes most of what is left, down
to NOISE, so that an operation whose errors stand just under the cut is named on every seed
alike; then an operation the others make redundant is dropped (`_prune`): a greedy first pick
can take in what a later one explains better. relu and identity compute nothing but z or 0 (no
budget): their σ is never named, and a float32 z before them reads as the forward product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.case import Case
from reference.simulate import ACCURATE32, exact32, simulate, tangents

RESIDUAL = 2.0**-10
"""The operations named must leave less than this share of the errors (in norm) unexplained."""
NOISE = 2.0**-20
"""Past RESIDUAL the reading goes on naming operations while what is left exceeds this share:
a float64 run's own roundoff is 2⁻²⁹ of float32's errors, so what stands above it is an
operation's. Near zero (parameters × 2⁻¹²) tanh's float32 σ leaves 10⁻⁴–10⁻³ of the errors
beside its σ′, on either side of RESIDUAL by seed: read to this level, the label is one."""
STANDS = 0.75
"""Past RESIDUAL an operation is named only where it takes this share of what is left: its
errors stand out of the rest, not a least-squares crumb of them."""
ULPS = (2.0**-8, 2.0**16)
"""The largest fitted error of any element, in float32 ulps of the element's scale, must lie in
this range: float32-accurate operations err by a fraction of an ulp to a few (MLX's softplus at
most 0.12 ulps of its scale on a 5-4-3 batch of 3, its `exp` by up to 6), a float64 one by 2⁻²⁹
of that, and a wrong gradient whose errors happen to lie in some operations' span (one bias
entry of the output layer is in the span of δ⁽ᴸ⁾'s elements at a batch of 32) needs far more in
some element. The fit is the least-norm one, so no smaller errors explain the field."""
LEVEL = 16.0
"""W1's errors off the inputs' span are ∂W1's float32 errors when, in the median row, they lie
within a factor LEVEL of the simulated ∂W1's (a float32 sum's order changes them by less)."""


COLUMNS = 1024
"""The most columns one operation's Jacobian may have (samples × units): past it the reading
costs seconds to minutes (a Gram matrix and its eigenvectors per operation; 784-64-32-16-10 at
batch 8 has 512 and takes ~2 s), and the level reading stands in."""


def readable(case: Case) -> bool:
    """Say whether the case is small enough for the operation reading (COLUMNS)."""
    return case.x.shape[0] * max(case.sizes[1:]) <= COLUMNS


@dataclass(frozen=True)
class Reading:
    """What the operation reading found: the operations named (in the order read), whether the
    matrix products ran in float32, the residual share, the numbers left over, and the largest
    fitted element error in float32 ulps; `evidence` is False when too few numbers were left to
    name anything."""

    named: tuple[str, ...]
    products: bool
    residual: float
    left: int
    ulps: float
    evidence: bool = True

    @property
    def explained(self) -> bool:
        """Say whether the operations named explain the errors as float32 errors."""
        return (self.evidence and (bool(self.named) or self.products)
                and self.residual <= RESIDUAL and ULPS[0] <= self.ulps <= ULPS[1])


def candidates(case: Case) -> tuple[str, ...]:
    """Return the operations that can err in float32, element-wise ones first: the order that
    names an operation by its element-wise name when a product has the same span."""
    out = []
    for i in range(1, case.depth + 1):
        out += [op for op in (f"σ of layer {i}", f"σ′ of layer {i}") if not exact32(case, op)]
    out += [f"forward layer {i}" for i in range(1, case.depth + 1)]
    return (*out, *(f"backward layer {i}" for i in range(2, case.depth + 1)))


class _Coordinates:
    """The gradients as the reading's numbers: W1 on the inputs' span (its rows projected on an
    orthonormal basis Q of x's rows), every other tensor as is, each row of W divided by its
    RMS float32 bound and each bias entry by its own."""

    def __init__(self, case: Case, norm: dict, skip: tuple[str, ...] = ()):
        U, S, _ = np.linalg.svd(case.x.T, full_matrices=False)
        self.Q = U[:, S > S[0] * 1e-12] if S.size and S[0] > 0 else U[:, :0]
        self.w, self.depth, self.skip = {}, case.depth, set(skip)
        for k, n in norm.items():
            w = np.sqrt(np.mean(n * n, axis=1)) if n.ndim == 2 else np.asarray(n, float)
            self.w[k] = np.where(w > 0, w, max(float(w.max(initial=0.0)), 1e-300))

    def data(self, d: dict) -> np.ndarray:
        """Return the errors d as the reading's numbers."""
        parts = []
        for i in range(1, self.depth + 1):
            if f"W{i}" not in self.skip:
                W = d["W1"] @ self.Q if i == 1 else d[f"W{i}"]
                parts.append((W / self.w[f"W{i}"][:, None]).ravel())
            parts.append(d[f"b{i}"] / self.w[f"b{i}"])
        return np.concatenate(parts)

    def off_span(self, d: dict) -> np.ndarray:
        """Return each row of W1's errors off the inputs' span, in norm, over its bound."""
        W = d["W1"]
        return np.linalg.norm(W - (W @ self.Q) @ self.Q.T, axis=1) / self.w["W1"]

    def columns(self, case: Case, op: str) -> np.ndarray:
        """Return the operation's Jacobian in these numbers, a column per (unit, sample), each
        for one float32 ulp of the element's scale (`reference.simulate.tangents`)."""
        delta, a, units = tangents(case, op)
        xQ, cols = case.x @ self.Q, []
        for ddelta, da in units:
            parts = []
            for i in range(1, self.depth + 1):
                if f"W{i}" not in self.skip:
                    W = np.einsum("bi,bk->bik", ddelta[1], xQ) if i == 1 else (
                        np.einsum("bi,bk->bik", ddelta[i], a[i - 1])
                        + np.einsum("bi,bk->bik", delta[i], da[i - 1]))
                    parts.append((W / self.w[f"W{i}"][None, :, None]).reshape(len(W), -1))
                parts.append(ddelta[i] / self.w[f"b{i}"][None, :])
            cols.append(np.concatenate(parts, axis=1))
        return np.concatenate(cols, axis=0).T


def _basis(J: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Return an orthonormal basis of J's columns' span off `basis`'s."""
    if basis.shape[1]:
        J = J - basis @ (basis.T @ J)
    norms = np.linalg.norm(J, axis=0)
    J = J[:, norms > 0] / norms[norms > 0]  # unit columns: a small element's is no less a column
    if not J.shape[1]:
        return J
    lam, V = np.linalg.eigh(J.T @ J)  # J's singular directions; near-dependent ones dropped
    keep = lam > 1e-12 * max(float(lam[-1]), 1e-300)
    return (J @ V[:, keep]) / np.sqrt(lam[keep])


def _select(D: np.ndarray, cols: dict, order: tuple[str, ...], min_df: int,
            sized: bool = False):
    """Return the operations read greedily (each the one whose span takes most of what is
    left; ties to the earlier in `order`), the residual share, the numbers left over, whether
    the numbers ran out first, and the fitted errors. `sized`: an operation whose fit needs
    some element to err past ULPS is passed over for the next (few numbers and a wide span,
    the biases of the saturated relu-sigmoid case against layer 1's 32 elements, fit anything
    with errors of 10⁹ ulps)."""
    basis, r, chosen, short = np.zeros((D.size, 0)), D.copy(), [], False
    total, passed = float(np.linalg.norm(D)), set()
    spans = {o: _basis(cols[o], basis) for o in order}
    while total > 0 and np.linalg.norm(r) > NOISE * total:
        done = np.linalg.norm(r) <= RESIDUAL * total
        gains = {o: float(np.sum((spans[o].T @ r) ** 2)) for o in order
                 if o not in chosen and o not in passed}
        if not gains:
            break
        top = max(gains.values())
        if top <= (STANDS if done else 1e-6) * float(r @ r):
            break
        best = next(o for o in order if o in gains and gains[o] >= top * (1 - 1e-3))
        if sized and _ulps(D, cols, (*chosen, best)) > ULPS[1]:
            passed.add(best)
            continue
        U = _basis(spans[best], basis)
        if D.size - basis.shape[1] - U.shape[1] < min_df:
            short = not done
            break
        chosen.append(best)
        basis, r = np.hstack([basis, U]), r - U @ (U.T @ r)
    share = float(np.linalg.norm(r)) / total if total > 0 else 0.0
    fitted = (np.linalg.lstsq(np.hstack([cols[o] for o in chosen]), D, rcond=1e-10)[0]
              if chosen else np.zeros(0))
    return tuple(chosen), share, D.size - basis.shape[1], short, fitted


def _prune(D: np.ndarray, cols: dict, named: tuple[str, ...], share: float, left: int,
           fitted: np.ndarray) -> tuple[tuple[str, ...], float, int, np.ndarray]:
    """Return the operations read with each dropped that the others make redundant: one whose
    removal leaves the residual within RESIDUAL and takes less than STANDS of what is then
    left. The greedy reading keeps what it picked first, and a first pick can take in what a
    later one explains better (δ⁽¹⁾ and δ⁽²⁾ rounded to float32 at batch 1: σ of layer 1's span
    reaches δ⁽²⁾ through z⁽²⁾, and was named beside σ′ of layer 1 on some seeds)."""
    total = float(np.linalg.norm(D))
    dropped = True
    while dropped and len(named) > 1:
        dropped = False
        for op in reversed(named[:-1]):
            rest = tuple(o for o in named if o != op)
            C = np.hstack([cols[o] for o in rest])
            coef, *_ = np.linalg.lstsq(C, D, rcond=1e-10)
            r = float(np.linalg.norm(D - C @ coef))
            if r <= RESIDUAL * total and r * r * (1 - STANDS) <= (share * total) ** 2:
                rank = _basis(C, np.zeros((D.size, 0))).shape[1]
                named, share, left, fitted = rest, r / total, D.size - rank, coef
                dropped = True
                break
    return named, share, left, fitted


def _ulps(D: np.ndarray, cols: dict, named: tuple[str, ...]) -> float:
    """Return the largest element error, in float32 ulps, of the least-norm fit to `named`."""
    fitted = np.linalg.lstsq(np.hstack([cols[o] for o in named]), D, rcond=1e-10)[0]
    return float(np.abs(fitted).max(initial=0.0))


def read(case: Case, got: dict, ref: dict, norm: dict, min_df: int) -> Reading:
    """Return which operations' float32 errors the float64 group's errors are (`norm`: the
    case's float32 bounds, for scale)."""
    d = {k: np.asarray(got[k], dtype=np.float64) - ref[k] for k in ref}
    products = _products32(case, d, norm)
    skip = tuple(f"W{i}" for i in range(1, case.depth + 1)) if products else ()
    coords = _Coordinates(case, norm, skip)
    order = candidates(case)
    if products:  # a product's name first where an element-wise one has the same span
        order = (*(o for o in order if not o.startswith("σ")),
                 *(o for o in order if o.startswith("σ")))
    D = coords.data(d)
    cols = {o: coords.columns(case, o) for o in order}
    named, share, left, short, fitted = _select(D, cols, order, min_df)
    if len(named) > 1 and not short:
        named, share, left, fitted = _prune(D, cols, named, share, left, fitted)
    ulps = _least_ulps(D, cols, named, float(np.abs(fitted).max(initial=0.0)), case.depth)
    if ulps > ULPS[1]:  # read again, passing over operations that need errors past float32's
        again = _select(D, cols, order, min_df, sized=True)
        u = _least_ulps(D, cols, again[0], float(np.abs(again[4]).max(initial=0.0)), case.depth)
        if again[1] <= RESIDUAL and u <= ULPS[1]:
            (named, share, left, short, _), ulps = again, u
    if products and short:  # ∂W1's own evidence stands; the rest cannot be told at this size
        named, share, ulps = (), 0.0, 1.0
    return Reading(named, products, share, left, ulps, evidence=not (short and share > RESIDUAL))


def _alike(op: str, depth: int) -> tuple[str, ...]:
    """Return the operations with op's span that `describe` names alike: σ, σ′ and the forward
    product of the output layer (each moves δ⁽ᴸ⁾ only), and `backward layer i` with σ′ of
    layer i − 1 (each moves δ⁽ⁱ⁻¹⁾ element by element)."""
    kind, i = op.rsplit(" ", 1)[0], int(op.rsplit(" ", 1)[-1])
    if i == depth and kind != "backward layer":
        return tuple(f"{k} {depth}" for k in ("σ of layer", "σ′ of layer", "forward layer"))
    if kind == "backward layer" or (kind == "σ′ of layer" and i < depth):
        j = i - 1 if kind == "backward layer" else i
        return (f"σ′ of layer {j}", f"backward layer {j + 1}")
    return (op,)


def _least_ulps(D: np.ndarray, cols: dict, named: tuple[str, ...], ulps: float,
                depth: int) -> float:
    """Return the least largest fitted element error over the operations of the same span as
    those named: one field, fitted to σ of the output layer or to its σ′, gives errors that
    differ by σ′'s size (10¹¹ in saturation, where a σ′ taken from a float32 σ is off by u
    absolutely), and the field is float32-sized if either reading is."""
    for k, op in enumerate(named):
        for alt in _alike(op, depth):
            if alt == op or alt not in cols or alt in named:
                continue
            trial = (*named[:k], alt, *named[k + 1:])
            top = _ulps(D, cols, trial)
            if top < ulps:
                named, ulps = trial, top
    return ulps


def _products32(case: Case, d: dict, norm: dict) -> bool:
    """Say whether W1's errors off the inputs' span have, in the median row, the size of ∂W1
    computed in float32."""
    coords = _Coordinates(case, norm)
    if coords.Q.shape[1] >= case.x.shape[1]:
        return False  # the inputs span every direction: nothing of W1 is ∂W1's alone
    base = simulate(case, "float64")
    sim = simulate(case, ACCURATE32, ("∂W1",))
    theirs = coords.off_span({k: sim[k] - base[k] for k in base})
    mine = coords.off_span(d)
    ok = theirs > 0
    if not ok.any():
        return False
    level = float(np.median(mine[ok] / theirs[ok]))
    return 1 / LEVEL <= level <= LEVEL
