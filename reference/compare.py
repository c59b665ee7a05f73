"""The verdict: per-entry difference, bound, ratio and bits of agreement, and the diagnosis of a
group's whole field of errors (which arithmetic it fits, or a wrong gradient)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from reference import operations
from reference.bounds import U
from reference.case import Case
from reference.simulate import OUTPUTS, exact_prime, exact_sigma, products

MANTISSA_BITS = {"float64": 53, "float32": 24}
WRONG = "wrong gradient"


@dataclass(frozen=True)
class Entry:
    """One entry of a gradient: where it is and how far off."""

    index: tuple[int, ...]
    got: float
    ref: float
    bound: float
    ratio: float

    def describe(self, tensor: str) -> str:
        """Return `W1[3, 701]: got … ref … |diff| … bound … ratio …` on one line."""
        where = f"{tensor}[{', '.join(map(str, self.index))}]"
        diff = abs(self.got - self.ref)
        return (
            f"{where}: got {self.got:.17g}, ref {self.ref:.17g}, |diff| {diff:.3g}, "
            f"bound {self.bound:.3g}, ratio {self.ratio:.3g}"
        )


@dataclass(frozen=True, eq=False)
class Comparison:
    """One tensor's gradient from a framework against the reference, entry by entry."""

    tensor: str
    got: np.ndarray
    ref: np.ndarray
    bound: np.ndarray
    dtype: str

    @cached_property
    def diff(self) -> np.ndarray:
        """Return |g − ref|, +inf where g is NaN or infinite."""
        d = np.abs(self.got.astype(np.float64) - self.ref)
        return np.where(np.isfinite(self.got), d, np.inf)

    @cached_property
    def ratio(self) -> np.ndarray:
        """Return |g − ref| / bound; 0 where both are 0, inf where only the bound is."""
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.diff / self.bound
        return np.where(self.diff == 0, 0.0, r)

    @cached_property
    def bits(self) -> np.ndarray:
        """Return how many leading bits of g agree with the reference, 0 … mantissa bits."""
        p = MANTISSA_BITS.get(self.dtype, 53)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = -np.log2(self.diff / np.abs(self.ref))
        return np.clip(np.nan_to_num(b, nan=0.0, posinf=p, neginf=0.0), 0, p)

    @property
    def failing(self) -> np.ndarray:
        """Return a boolean mask of the entries outside their bound (NaN/Inf always are)."""
        return ~(self.ratio <= 1.0)

    @property
    def passed(self) -> bool:
        """Say whether every entry is inside its bound (NaN and Inf never are); one entry's
        (an entry item's) without building an array for it."""
        r = self.ratio
        if r.size == 1:
            return bool(r.reshape(-1)[0] <= 1.0)
        return bool((r <= 1.0).all())

    @property
    def max_ratio(self) -> float:
        """Return the greatest |g − ref| / bound of the tensor."""
        return float(self.ratio.max()) if self.ratio.size else 0.0

    def worst(self, k: int = 5, failing_only: bool = True) -> list[Entry]:
        """Return up to k entries, greatest ratio first."""
        r = self.ratio.ravel()
        order = np.argsort(-r, kind="stable")[:k]
        if failing_only:
            order = order[~(r[order] <= 1.0)]
        return [self._entry(int(i)) for i in order]

    def at(self, index: tuple[int, ...]) -> Comparison:
        """Return the comparison of one entry, its difference, ratio and bits taken from this
        tensor's (computed once for all of a tensor's entry items, `--entries`). The entry's
        arrays are one-element views of this tensor's, flattened once; `of` says which."""
        flat = self.flat_index(index)
        if flat is None:  # not an index of this tensor: numpy says what is wrong with it
            arrays = [np.asarray(a)[index].reshape(1) for a in self._arrays()]
        else:
            arrays = [a[flat:flat + 1] for a in self.flattened]
        one = Comparison(self.tensor, *arrays[:3], self.dtype)
        for name, a in zip(("diff", "ratio", "bits"), arrays[3:], strict=True):
            one.__dict__[name] = a  # cached_property keeps its value in __dict__
        one.__dict__["of"] = (self, flat)
        return one

    def flat_index(self, index: tuple[int, ...]) -> int | None:
        """Return the row-major position of an index of this tensor, None if it is not one."""
        shape = self.ref.shape
        if type(index) is not tuple or len(index) != len(shape):
            return None
        flat = 0
        for i, n in zip(index, shape, strict=True):
            if type(i) is not int or not 0 <= i < n:
                return None
            flat = flat * n + i
        return flat

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (np.asarray(self.got), np.asarray(self.ref), np.asarray(self.bound), self.diff,
                self.ratio, self.bits)

    @cached_property
    def flattened(self) -> tuple[np.ndarray, ...]:
        """Return got, ref, bound, diff, ratio and bits flattened in row-major order."""
        return tuple(np.ascontiguousarray(a).reshape(-1) for a in self._arrays())

    def _entry(self, flat: int) -> Entry:
        idx = np.unravel_index(flat, self.ref.shape)
        return Entry(
            tuple(int(i) for i in idx), float(self.got.ravel()[flat]),
            float(self.ref.ravel()[flat]), float(self.bound.ravel()[flat]),
            float(self.ratio.ravel()[flat]),
        )


def compare(tensor: str, got: np.ndarray, ref: np.ndarray, bound: np.ndarray, dtype: str):
    """Compare one tensor entry by entry; shapes must already agree."""
    return Comparison(tensor, np.asarray(got), ref, bound, dtype)


T_CRITICAL = ((1, 3.2e9), (2, 70711.0), (3, 2226.0), (4, 417.0), (5, 157.0), (6, 84.0),
              (7, 54.0), (8, 40.0), (10, 26.0), (12, 19.4), (15, 15.0), (20, 11.8),
              (25, 10.3), (30, 9.4), (40, 8.5), (50, 8.0), (70, 7.5), (100, 7.1),
              (150, 6.9), (200, 6.8), (300, 6.6), (500, 6.5), (1000, 6.5))
"""Student's t quantile at one-sided 10⁻¹⁰ by degrees of freedom (scipy.stats.t.isf, rounded
up), taken at the largest tabulated df not above the fit's; 6.4 (the normal's) beyond."""
P_FALSE = 1e-10
"""The chance that a product's fit passes its critical value on a correct run, per product
and arithmetic: a group tests at most 5 arithmetics × (3L − 1) products, so a correct group
reads an arithmetic with probability below 1.2·10⁻⁸ at L = 8 (Bonferroni)."""


MIN_DF = 3
"""Below three degrees of freedom (rows less regressors) a fit names nothing: its cluster
variance is then an estimate from one or two numbers, and a uniform error on the 1-1-1
chain's 2 rows fitted tf32 exactly."""


def critical(df: int) -> float:
    """Return the t statistic a product's share must reach with df degrees of freedom
    (inf below MIN_DF)."""
    if df < MIN_DF:
        return np.inf
    return next((t for d, t in reversed(T_CRITICAL) if d <= df), T_CRITICAL[0][1]) \
        if df <= T_CRITICAL[-1][0] else 6.4


BETA = (0.5, 2.0)
"""A product's fitted share must also lie in this range: the errors have that arithmetic's
size, not an eighth of it (bf16 against a tf32 run) or eight times (tf32 against a bf16 run).
Rows are not fully independent (they share upstream errors), and on correct 1-1-1 and 5-4-3
runs a single fit's statistic reached 111 at a share of 0.0003: the share is what a summation
order cannot fake."""
LEAK = 1 / 16
"""A float64 request reads float32 when its median entry errs between LEAK and 1/LEAK times
what a float32 computation of the case errs (a float32 leak errs about as much; float64 2⁻²⁹
of it; a wrong gradient far more)."""

EXPLAINED = 0.5
"""A reading must explain at least half of the group's weighted squared errors: another
arithmetic's regressors can absorb a little of a misfit field (bf16 in layer 1 of a depth-8 net
at batch 1 fitted two tf32 forward products at t past the critical value, explaining 6% of the
errors; bf16 explained 97%)."""

VISIBLE = 0.25
"""A float32 group none of whose entries errs by a quarter of its float32 tier is read as
float32 without fitting: a product is named only where its effect reaches the tier on some entry
(`_visible`) at a share of at least ½, so its errors reach half the tier there, less only the
noise of a fit that matched. Correct float32 groups stay below 0.17 of the tier (measured over
the ladder of the module docstring of reference.bounds), and skip the fits."""

EVERY = "every product"
"""The regressor of every product reduced at once: read when no product stands out alone."""

REDUCED = {"tf32": "tf32", "tf32-truncated": "tf32", "bfloat16": "bfloat16",
           "bfloat16-truncated": "bfloat16", "bfloat16-outputs": "bfloat16"}
"""Each simulated reduced arithmetic (`reference.simulate`) and the name the diagnosis reads."""


@dataclass(frozen=True)
class Fit:
    """How much of each product's simulated error field, in one arithmetic, the framework's
    errors contain.

    The errors d = got − ref are regressed on every product's simulated effect at once,
    s_p = sim(p reduced) − sim_float32 (that product's operand rounding; the simulation's own
    float32 noise cancels), every entry weighted by 1/(its float32 tier × its tensor's residual
    scale). `beta[p]` is the least-squares share of s_p in d; `z[p]` is beta over its
    cluster-robust standard error, rows as clusters (a row of W and its bias entry share
    their upstream errors, so rows, not entries, are the independent units), with the
    small-sample factor R/(R − P). A product matches when z ≥ `critical(R − P)`, the t
    quantile at P_FALSE, and its share lies in BETA.
    """

    arithmetic: str
    products: tuple[str, ...]
    beta: tuple[float, ...]
    z: tuple[float, ...]
    rows: int
    rss: float = 0.0
    visible: tuple[bool, ...] = ()
    energy: float = 0.0  # the weighted sum of squared errors the fit set out to explain

    @property
    def threshold(self) -> float:
        """Return the t statistic a product must reach in this fit."""
        return critical(self.rows - len(self.products))

    @property
    def matched(self) -> tuple[str, ...]:
        """Return the products whose errors are this arithmetic's."""
        t = self.threshold
        seen = self.visible or (True,) * len(self.products)
        return tuple(p for p, b, z, v in zip(self.products, self.beta, self.z, seen, strict=True)
                     if v and np.isfinite(t) and z >= t and BETA[0] <= b <= BETA[1])

    @property
    def explained(self) -> float:
        """Return the share of the weighted squared errors the fit explains (0 … 1)."""
        return 1.0 - self.rss / self.energy if self.energy > 0 else 0.0

    @property
    def matches(self) -> bool:
        """Say whether any product's errors are this arithmetic's, and the products read
        explain at least EXPLAINED of the errors."""
        return bool(self.matched) and self.explained >= EXPLAINED

    @property
    def undetermined(self) -> tuple[str, ...]:
        """Return the products neither matched nor plainly float32 (a share whose upper end,
        three standard errors up, stays below BETA's lower end)."""
        named = set(self.matched)
        return tuple(p for p, b, z in zip(self.products, self.beta, self.z, strict=True)
                     if p not in named and not (z != 0 and b + 3 * abs(b / z) < BETA[0]))


def fit(arithmetic: str, got: dict, ref: dict, effects: dict[str, dict], base: dict,
        norm: dict) -> Fit:
    """Return the fit of the errors got − ref on each product's simulated effect
    (`effects[p]` = the gradients with product p reduced; `base` the float32 simulation)."""
    names = tuple(effects)
    d, S, nrm = {}, {}, {}
    for k in ref:  # per tensor: entries as (rows, columns), regressors as (rows, P, columns)
        rows = ref[k].shape[0] if ref[k].ndim else 1
        d[k] = (np.asarray(got[k], dtype=np.float64) - ref[k]).reshape(rows, -1)
        S[k] = np.stack([(effects[p][k] - base[k]).reshape(rows, -1) for p in names], axis=1)
        nrm[k] = np.asarray(norm[k], dtype=np.float64).reshape(rows, -1)
    weights = _noise(d, S, nrm)
    beta, z, rows, rss, energy = _regress(d, S, weights)
    return Fit(arithmetic, names, tuple(beta), tuple(z), rows, rss, _visible(S, nrm, len(names)),
               energy)


def _visible(S: dict, nrm: dict, P: int) -> tuple[bool, ...]:
    """Say, per regressor, whether its simulated effect reaches the float32 tier on some entry.

    An effect everywhere below float32's own rounding level cannot be told from a summation
    order's noise by its size, and there the errors are a few ulps, not the continuous noise
    the t statistic assumes: on the nearzero case (parameters × 2⁻¹²) JAX's eager float32 fitted
    a tf32-truncated forward product at share 0.50 with t = 5·10¹⁵. Such a product is not named.
    """
    seen = np.zeros(P, dtype=bool)
    for k in S:
        n = nrm[k][:, None, :]
        seen |= ((np.abs(S[k]) >= n) & (n > 0)).any(axis=(0, 2))
    return tuple(bool(v) for v in seen)


def _noise(d: dict, S: dict, nrm: dict) -> dict:
    """Return each entry's weight scale: its bound times its tensor's RMS residual in bounds.

    A framework sums each tensor in its own order (BLAS blocks for W, a left-to-right column
    sum for b, say), so the noise beside the simulated field differs from tensor to tensor by
    orders of magnitude. A first fit's residuals measure it per tensor, and the second fit
    weights each tensor by it (feasible weighted least squares): a left-to-right b₁ at batch
    2²⁰ then no longer drowns the W entries that carry the signal.
    """
    beta, *_ = _regress(d, S, nrm)
    out = {}
    for k in d:
        m = nrm[k] > 0
        r = np.zeros_like(d[k])
        np.divide(d[k] - np.einsum("p,rpc->rc", beta, S[k]), nrm[k], out=r, where=m)
        count = int(m.sum())
        rms = float(np.sqrt(np.sum(r * r) / count)) if count else 0.0
        out[k] = nrm[k] * rms if rms > 0 else nrm[k]
    return out


def _regress(d: dict, S: dict, nrm: dict) -> tuple[np.ndarray, np.ndarray, int, float, float]:
    """Return (beta, z, rows, weighted rss, weighted Σd²) of the row-clustered weighted
    regression of d on the regressors S (per tensor: rows, P, columns), entries weighted by
    1/nrm²."""
    X, G, dd = {}, {}, 0.0
    for k in d:
        w = np.zeros_like(nrm[k])
        np.divide(1.0, nrm[k] * nrm[k], out=w, where=nrm[k] > 0)
        Sw = S[k] * w[:, None, :]
        x = np.matmul(Sw, d[k][:, :, None])[:, :, 0]  # (rows, P)
        g = np.matmul(Sw, S[k].transpose(0, 2, 1))  # (rows, P, P)
        row = k[1:]  # W2 and b2 are layer 2 (W10, b10 layer 10): b2[j] joins row j of W2
        X[row] = X.get(row, 0.0) + x
        G[row] = G.get(row, 0.0) + g
        dd += float(np.sum(w * d[k] * d[k]))
    Xr, Gr = np.concatenate(list(X.values())), np.concatenate(list(G.values()))
    R, P = Xr.shape
    total = Gr.sum(axis=0)
    keep = np.diag(total) > 0
    beta, z = np.zeros(P), np.zeros(P)
    if not keep.any():
        return beta, z, R, dd, dd
    inv = np.linalg.pinv(total[np.ix_(keep, keep)])
    b = inv @ Xr[:, keep].sum(axis=0)
    scores = Xr[:, keep] - np.einsum("rpq,q->rp", Gr[:, keep][:, :, keep], b)
    meat = scores.T @ scores * (R / max(R - P, 1))
    var = np.diag(inv @ meat @ inv)
    with np.errstate(divide="ignore", invalid="ignore"):
        zk = np.where(var > 0, b / np.sqrt(var), np.where(b > 0, np.inf, 0.0))
    beta[keep], z[keep] = b, zk
    rss = dd - 2 * float(b @ Xr[:, keep].sum(axis=0)) + float(b @ total[np.ix_(keep, keep)] @ b)
    return beta, z, R, rss, dd


def leak_level(got: dict, ref: dict, sim32: dict, norm: dict) -> float:
    """Return the median entry error over the median error of the float32 simulation."""
    mine = _median_level(got, ref, norm)
    theirs = _median_level(sim32, ref, norm)
    return mine / theirs if theirs > 0 else (np.inf if mine > 0 else 0.0)


def _median_level(got: dict, ref: dict, norm: dict) -> float:
    parts = [np.abs(np.asarray(got[k], dtype=np.float64) - ref[k])[norm[k] > 0]
             / norm[k][norm[k] > 0] for k in ref]
    e = np.concatenate([p.ravel() for p in parts])
    # the median, never the mean: one wrong entry must not lift a field's level (a float64 run
    # with one entry off by 1e-4 read as a float32 leak through the mean of exact entries)
    return float(np.median(e)) if e.size else 0.0


@dataclass(frozen=True)
class Diagnosis:
    """What a group's errors are consistent with, and whether that fails it.

    `reads` is float64, float32, tf32, bfloat16 or wrong gradient; `field` is set when the
    whole field of errors matched an arithmetic other than the one asked for (the group fails
    even where every entry is inside its bound), with the `products` that ran in it out of
    `of`; `failing` counts entries outside the bound.
    """

    reads: str
    failing: int
    field: str | None = None
    fits: tuple[Fit, ...] = ()
    leak: float | None = None
    matched: str | None = None  # the simulated arithmetic read, e.g. tf32-truncated
    products: tuple[str, ...] = ()
    of: int = 0
    unsure: tuple[str, ...] = ()  # products the fit can say neither way
    among: tuple[str, ...] = ()  # read together: the arithmetic is in some of these products
    operations: operations.Reading | None = None  # a float64 run's float32-accurate operations
    sigmas: tuple[str, ...] = ()  # the case's activations, to name an operation's layer
    thin: bool = False  # too few independent numbers to name an arithmetic
    mistake: str | None = None  # the known bug a wrong gradient matches (reference.mistakes)

    def __str__(self) -> str:
        if self.reads == WRONG:
            n = self.failing
            thin = "; not enough evidence to name an arithmetic" if self.thin else ""
            return self.mistake or f"{WRONG}: {n} {'entry' if n == 1 else 'entries'}{thin}"
        if self.operations is not None:
            return describe(self.operations, self.sigmas)
        how = " (outputs rounded too, as under autocast)" if self.matched == OUTPUTS else ""
        if self.products:
            rest = f" ({len(self.unsure)} more undetermined)" if self.unsure else ""
            return (f"{self.reads}{how} in {len(self.products)} of {self.of} products: "
                    f"{', '.join(self.products)}{rest}")
        if self.among:
            return (f"{self.reads}{how} in one or more of {len(self.among)} of {self.of} "
                    f"products: {', '.join(self.among)} (which cannot be told apart at this "
                    "size)")
        if self.field in REDUCED.values():
            return (f"{self.reads}{how} in its matrix products (which of the {self.of} "
                    f"cannot be told apart at this size)")
        return self.reads

    @property
    def fails(self) -> bool:
        """Say whether the group fails as a whole."""
        return self.field is not None or self.failing > 0

    def evidence(self) -> str:
        """Return the statistic behind a field reading, for the failure message."""
        if self.field is None:
            return ""
        if self.operations is not None:
            r = self.operations
            return (f"the errors lie in the span of the float32 errors of the operations named "
                    f"(residual {r.residual:.2g} of their norm, {r.left} numbers left over, "
                    f"each element's fitted error within {r.ulps:.2g} float32 ulps)"
                    + ("; W1's errors off the inputs' span have ∂W1's float32 size"
                       if r.products else ""))
        if self.leak is not None and self.field == "float32":
            return f"median entry error {self.leak:.2g}× a float32 computation's"
        best = next((f for f in self.fits if f.arithmetic == self.matched and f.matches), None)
        if best is None:
            return ""
        parts = ", ".join(f"{p} share {b:.3g} (t {z:.3g})" for p, b, z in
                          zip(best.products, best.beta, best.z, strict=True) if p in best.matched)
        return (f"errors fit the simulated {best.arithmetic} products ({parts}; each needs "
                f"t ≥ {best.threshold:.3g} over {best.rows} rows)")


def diagnose(
    got: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    dtype: str,
    bounds_of: Callable[[str], dict[str, np.ndarray]],
    simulate_of: Callable[..., dict[str, np.ndarray]],
    arithmetics: tuple[str, ...] = tuple(REDUCED),
    names: tuple[str, ...] | None = None,
    case: Case | None = None,
) -> Diagnosis:
    """Return what a group's errors are consistent with, judged on the whole field of errors.

    1. float32 asked: for each reduced arithmetic, every matrix product's simulated effect is
       a regressor of one fit (`fit`); the products that match (t ≥ the critical value at
       P_FALSE, share in BETA) are read, from the arithmetic whose fit explains the largest
       share of the errors, and fail the group, in bound or not. Operand rounding is reproducible; a
       summation order is not, and only adds noise to the fit.
    2. float64 asked, some entries outside their bound: where the errors are no larger than
       float32's (the median entry within a factor 1/LEAK of a float32 computation's, or
       within the float32 tier, which also holds the float32 implementations whose σ′ = σ(1 − σ)
       cancels in saturation), the operations whose float32 errors span the group's errors
       are named (`reference.operations`, given the `case`): `σ of layer 1 (sigmoid) is
       float32-accurate; everything else is float64`, or the matrix products; the group
       fails. Only failing entries in more than MIN_DF rows can be an operation's (it errs in
       every element it computes); failing entries in fewer, all within the float32 tier,
       read `wrong gradient` with `not enough evidence to name an arithmetic` (the saturated
       relu-sigmoid case shows float32's errors only in its outputs with z < 0). Without the
       case, or past `operations.COLUMNS`, a median entry error within a factor 1/LEAK of a
       float32 computation's reads float32 (a leak), where the case can tell (the float32
       computation's median entry errs beyond the float64 tier: in saturation a correct
       float64 σ′ = σ(1 − σ) errs by u absolutely, more than float32 arithmetic on z does). A
       group of MIN_DF rows or fewer (the 1-1-1 chain) names no arithmetic.
    3. Otherwise entries outside their bound read `wrong gradient` with their count, whatever
       their size: no arithmetic is named without its field matching.
    `bounds_of(a)` returns the case's bounds; `simulate_of(a, products)` its gradients in
    arithmetic a with the named products reduced (`reference.simulate.simulate`);
    `arithmetics` the reduced ones tried (default: every one in REDUCED); `names` the products
    simulate_of knows (default: the gradient's, `reference.simulate.products`; H·v has its own,
    `reference.hvp_simulate.hvp_products`).
    """
    own = bounds_of(dtype)
    failing = sum(int(compare(k, got[k], ref[k], own[k], dtype).failing.sum()) for k in ref)
    norm = own if dtype == "float32" else bounds_of("float32")
    base = simulate_of("float32")
    if dtype == "float32" and not _reaches(got, ref, own, VISIBLE):
        return Diagnosis(WRONG if failing else dtype, failing)  # no arithmetic's size: no fit
    if dtype == "float32":
        names = names or products(_depth(ref))
        fits = tuple(fit(a, got, ref, {p: simulate_of(a, (p,)) for p in names}, base, norm)
                     for a in arithmetics)
        matching = [f for f in fits if f.matches]
        if not matching:  # no product stands out alone: the likely ones together, one regressor
            fits += tuple(t for f in fits for t in _together(f, got, ref, simulate_of, base,
                                                              norm))
            matching = [f for f in fits[len(arithmetics):] if f.matches]
        if matching:  # the arithmetic that explains the largest share of the errors
            best = max(matching, key=lambda f: f.explained)  # rss weights differ per fit
            plain = [f for f in matching if f.arithmetic == "bfloat16"]
            if best.arithmetic == OUTPUTS and plain:  # outputs rounded too only if it must be
                best = plain[0]
            name = REDUCED[best.arithmetic]
            joint = len(best.products) == len(names)  # each product its own regressor
            among = () if joint else _among(best)
            if len(among) == 1:  # one product alone: named as a joint fit names it
                return Diagnosis(name, failing, name, fits, matched=best.arithmetic,
                                 products=among, of=len(names))
            return Diagnosis(name, failing, name, fits, matched=best.arithmetic,
                             products=best.matched if joint else (), of=len(names),
                             unsure=best.undetermined if joint else (), among=among)
        # too few rows for a fit of every product: a one-regressor fit's threshold is then
        # past reach (t ≥ 84 over 7 rows), and the 5-4-3 case's bf16 read as a bare count
        thin = failing > 1 and not any(np.isfinite(f.threshold) for f in fits[:len(arithmetics)])
        return Diagnosis(dtype if not failing else WRONG, failing, None, fits, thin=thin)
    if not failing:
        return Diagnosis(dtype, 0)
    if _rows(ref) <= MIN_DF:  # the 1-1-1 chain's 2 rows: too few to name anything
        return Diagnosis(WRONG, failing, None, (), thin=failing > 1)
    leak = leak_level(got, ref, base, norm)
    readable = case is not None and operations.readable(case)
    sized = leak <= 1 / LEAK or _median_level(got, ref, norm) <= 1  # no error past float32's
    rows = _failing_rows(got, ref, own)
    if readable and sized and rows > MIN_DF:
        reading = operations.read(case, got, ref, norm, MIN_DF)
        sigmas = tuple(layer.sigma for layer in case.layers)
        if reading.explained:
            return Diagnosis("float32", failing, "float32", operations=reading, sigmas=sigmas)
        return Diagnosis(WRONG, failing, thin=failing > 1 and not reading.evidence)
    visible = _median_level(base, ref, own) > 1  # the field's medians tell float32 apart
    if LEAK <= leak <= 1 / LEAK and visible and not readable:
        return Diagnosis("float32", failing, "float32", (), leak)
    few = failing > 1 and rows <= MIN_DF and all(
        np.all(np.abs(np.asarray(got[k], dtype=np.float64) - ref[k]) <= norm[k]) for k in ref)
    return Diagnosis(WRONG, failing, None, (), leak, thin=few)  # float32-sized, too few rows


def _together(joint: Fit, got, ref, simulate_of, base, norm) -> list[Fit]:
    """Return the fits of one regressor each: the products whose joint share is at least half
    of BETA's lower end reduced together, and every product reduced together (the products'
    effects are added only to first order: bf16 in all 23 products of a depth-8 net at batch 1
    is explained 29% by their sum, 100% by the run with all of them reduced), and every
    product of one kind reduced together (each forward product, each ∂W, each backward one: a
    library chooses an arithmetic per kind and shape, and a reduced z⁽¹⁾ moves the operands
    layer 2 rounds, so tf32 in both forward products of 784-16-10 at batch 1 fitted either
    alone at a share of 0.2–0.3 and read `wrong gradient: 11939 entries`); none when no
    product is likely and their shares sum below BETA's lower end."""
    likely = tuple(p for p, b in zip(joint.products, joint.beta, strict=True) if b >= BETA[0] / 2)
    if not likely and sum(joint.beta) < BETA[0]:
        return []
    sets = {likely, joint.products} if likely else {joint.products}
    kinds: dict[str, tuple[str, ...]] = {}
    for p in joint.products:  # every product of a kind: a library chooses per kind and shape
        kind = re.sub(r"\s*\d+$", "", p)
        kinds[kind] = (*kinds.get(kind, ()), p)
    sets |= {c for c in kinds.values() if 1 < len(c) < len(joint.products)}
    return [fit(joint.arithmetic, got, ref,
                {" + ".join(c) if len(c) < len(joint.products) else EVERY:
                 simulate_of(joint.arithmetic, c)}, base, norm) for c in sorted(sets, key=len)]


def _among(f: Fit) -> tuple[str, ...]:
    """Return the products a one-regressor fit reduced together (none named: every one)."""
    return tuple(q for p in f.matched if p != EVERY for q in p.split(" + "))


def _reaches(got: dict, ref: dict, bound: dict, share: float) -> bool:
    """Say whether some entry errs, by at least `share` of its bound (an exact entry whose
    bound is 0, a unit relu has switched off in every arithmetic, errs by nothing: before
    this, such zeros opened the fits on the saturated relu case, and a correct torch H·v read
    tf32 there)."""
    for k in ref:
        diff = np.abs(np.asarray(got[k], dtype=np.float64) - ref[k])
        if np.any((diff >= share * bound[k]) & (diff > 0)):
            return True
    return False


def _failing_rows(got: dict, ref: dict, bound: dict) -> int:
    """Return how many rows (a row of W with its bias entry) hold an entry outside its bound."""
    rows: dict[str, np.ndarray] = {}
    for k in ref:
        bad = ~(np.abs(np.asarray(got[k], dtype=np.float64) - ref[k]) <= bound[k])
        bad = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim else bad.reshape(1)
        rows[k[1:]] = rows.get(k[1:], False) | bad
    return int(sum(int(v.sum()) for v in rows.values()))


def _rows(ref: dict) -> int:
    """Return the independent rows of a group (a row of W with its bias entry)."""
    return sum(v.shape[0] for k, v in ref.items() if k.startswith("b"))


def describe(reading: operations.Reading, sigmas: tuple[str, ...]) -> str:
    """Return the operations read as float32-accurate, by layer: `σ of layer 1 (sigmoid) is
    float32-accurate; everything else is float64` (the labels of `reference.operations`)."""
    L, per = len(sigmas), {}
    for op in reading.named:
        kind, i = op.rsplit(" ", 1)[0], int(op.rsplit(" ", 1)[-1])
        if kind in ("forward layer", "backward layer") and reading.products:
            continue  # one of the matrix products, named together
        at = i - 1 if kind == "backward layer" else i
        exact = exact_sigma(sigmas[at - 1]) and exact_prime(sigmas[at - 1])  # z's rounding
        per.setdefault(at, set()).update({"σ of layer": {"σ"}, "σ′ of layer": {"σ′"},
                                          "forward layer": {"z"} if exact else {"σ", "σ′"},
                                          "backward layer": {"σ′"}}[kind])
    parts = ["the matrix products"] if reading.products else []
    for i in sorted(per):
        if per[i] == {"z"}:
            parts.append(f"the forward product of layer {i} (z, before {sigmas[i - 1]})")
            continue
        ops = ("σ or σ′" if i == L else "σ and σ′" if len(per[i] - {"z"}) == 2
               else next(iter(per[i] - {"z"})))
        parts.append(f"{ops} of layer {i} ({sigmas[i - 1]})")
    if reading.products and not per:  # only ∂W1's evidence: the rest is not established
        return ("float32 in its matrix products (computed in float32 there; the element-wise "
                "operations cannot be told apart at this size)")
    many = len(parts) > 1 or reading.products or (parts and " and " in parts[0])
    return (f"{', '.join(parts)} {'are' if many else 'is'} float32-accurate; everything else "
            f"is float64")


def _depth(ref: dict) -> int:
    return sum(1 for k in ref if k.startswith("W"))


def fingerprint(got, ref, bounds_of, simulate_of, dtype: str | None = None,
                case: Case | None = None) -> str:
    """Return what the errors are consistent with, as text (`diagnose`, for scripts)."""
    if dtype is None:
        dtype = "float64" if all(np.asarray(g).dtype == np.float64 for g in got.values()) \
            else "float32"
    return str(diagnose(got, ref, dtype, bounds_of, simulate_of, case=case))


__all__ = [
    "BETA", "LEAK", "P_FALSE", "REDUCED", "U", "WRONG", "Comparison", "Diagnosis",
    "Entry", "Fit", "compare", "critical", "diagnose", "fingerprint", "fit",
]
