"""The verdict: per-entry difference, bound, ratio and bits of agreement, and the diagnosis of a
group's whole field of errors (which arithmetic it fits, or a wrong gradient)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from reference.bounds import U

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
        """Say whether every entry is inside its bound (NaN and Inf never are)."""
        return bool((self.ratio <= 1.0).all())

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
        for name, a in zip(("diff", "ratio", "bits"), arrays[3:]):
            one.__dict__[name] = a  # cached_property keeps its value in __dict__
        one.__dict__["of"] = (self, flat)
        return one

    def flat_index(self, index: tuple[int, ...]) -> int | None:
        """Return the row-major position of an index of this tensor, None if it is not one."""
        shape = self.ref.shape
        if type(index) is not tuple or len(index) != len(shape):
            return None
        flat = 0
        for i, n in zip(index, shape):
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


Z = 6.0
"""How many standard errors the fitted share of a reduced arithmetic's simulated error must
stand above zero before the errors are read as that arithmetic (see `fit`). With independent,
sign-symmetric noise per row, z exceeds Z by chance with probability at most exp(−Z²/2) ≈
1.5·10⁻⁸; rows are not always independent (they share upstream errors) and a tiny net has two,
so z alone is not trusted (on correct 1-1-1 and 5-4-3 runs it reached 111 at a share of
0.0003): a reading also needs the share in BETA. A correct float32 run's
errors are its own summation noise, whose projection on the simulated operand rounding is
measured at shares below 10⁻³ (tests/bench/separation.py prints the greatest share and z of
every correct group's fits, over every summation order of tests/orders.py), so a false reading
needs the noise to mimic half the simulated field."""
BETA = (0.5, 2.0)
"""The fitted share must also lie in this range: the errors have that arithmetic's size, not
an eighth of it (bf16 against a tf32 run) or eight times (tf32 against a bf16 run)."""
LEAK = 1 / 16
"""A float64 request reads float32 when its median entry errs between LEAK and 1/LEAK times
what a float32 computation of the case errs (a float32 leak errs about as much; float64 2⁻²⁹
of it; a wrong gradient far more)."""

REDUCED = {"tf32": "tf32", "tf32-truncated": "tf32", "bfloat16": "bfloat16",
           "bfloat16-truncated": "bfloat16"}
"""Each simulated reduced arithmetic (`reference.simulate`) and the name the diagnosis reads."""


@dataclass(frozen=True)
class Fit:
    """How much of a simulated arithmetic's error field the framework's errors contain.

    The errors d = got − ref are regressed on the simulated effect s = sim − sim_float32 (the
    arithmetic's operand rounding, with the simulation's own float32 noise taken out), every
    entry weighted by 1/(its float32 bound). `beta` is the least-squares share of s in d;
    `z` is beta over its standard error, with the residuals summed per row (a row of W and
    its bias entry share their upstream errors, so rows, not entries, are the independent
    units). `expected_z` is the z a framework running that arithmetic would reach, with the
    simulation's float32 noise standing in for its own: below Z it cannot be seen here.
    """

    arithmetic: str
    beta: float
    z: float
    expected_z: float
    rows: int

    @property
    def matches(self) -> bool:
        """Say whether the errors are that arithmetic's."""
        return self.z >= Z and BETA[0] <= self.beta <= BETA[1]

    @property
    def detectable(self) -> bool:
        """Say whether that arithmetic would be seen at this size."""
        return self.expected_z >= Z


def fit(arithmetic: str, got: dict, ref: dict, sim: dict, base: dict, norm: dict) -> Fit:
    """Return the fit of the errors got − ref on the simulated effect sim − base."""
    d = {k: np.asarray(got[k], dtype=np.float64) - ref[k] for k in ref}
    s = {k: sim[k] - base[k] for k in ref}
    beta, z, rows = _regress(d, s, _noise(d, s, norm))
    expect = {k: s[k] + base[k] - ref[k] for k in ref}
    _, expected, _ = _regress(expect, s, _noise(expect, s, norm))
    return Fit(arithmetic, beta, z, expected, rows)


def _noise(d: dict, s: dict, norm: dict) -> dict:
    """Return each entry's weight scale: its bound times its tensor's RMS residual in bounds.

    A framework sums each tensor in its own order (BLAS blocks for W, a left-to-right column
    sum for b, say), so the noise beside the simulated field differs from tensor to tensor by
    orders of magnitude. A first fit's residuals measure it per tensor, and the second fit
    weights each tensor by it (feasible weighted least squares): a left-to-right b₁ at batch
    2²⁰ then no longer drowns the W entries that carry the signal. Measured on 5-4-3 at 2²⁰,
    three seeds: tf32 operands read at z 31–3,300 where one fit reached −1.8–600; correct runs
    stay within |z| < 3.3 either way.
    """
    beta, _, _ = _regress(d, s, norm)
    out = {}
    for k in d:
        m = norm[k] > 0
        r = (d[k] - beta * s[k])[m] / norm[k][m]
        rms = float(np.sqrt(np.mean(r * r))) if r.size else 0.0
        out[k] = norm[k] * rms if rms > 0 else norm[k]
    return out


def _regress(d: dict, s: dict, norm: dict) -> tuple[float, float, int]:
    """Return (beta, z, rows) of the row-clustered weighted regression of d on s."""
    dots, sqs = {}, {}
    for k in d:
        w2 = np.zeros_like(norm[k])
        np.divide(1.0, norm[k] ** 2, out=w2, where=norm[k] > 0)
        row = k[1:]  # W2 and b2 are layer 2 (W10, b10 layer 10): b2[j] joins row j of W2
        p, q = w2 * d[k] * s[k], w2 * s[k] * s[k]
        if p.ndim > 1:
            p, q = p.reshape(len(p), -1).sum(axis=1), q.reshape(len(q), -1).sum(axis=1)
        dots[row] = dots.get(row, 0.0) + p.reshape(-1)
        sqs[row] = sqs.get(row, 0.0) + q.reshape(-1)
    P, Q = np.concatenate(list(dots.values())), np.concatenate(list(sqs.values()))
    total = float(Q.sum())
    if not total > 0:
        return 0.0, 0.0, int(P.size)
    beta = float(P.sum()) / total
    se = float(np.sqrt(np.sum((P - beta * Q) ** 2))) / total
    z = beta / se if se > 0 else (np.inf if beta > 0 else 0.0)
    return beta, float(z), int(P.size)


def leak_level(got: dict, ref: dict, sim32: dict, norm: dict) -> float:
    """Return the median entry error over the median error of the float32 simulation."""
    mine = _median_level(got, ref, norm)
    theirs = _median_level(sim32, ref, norm)
    return mine / theirs if theirs > 0 else (np.inf if mine > 0 else 0.0)


def _median_level(got: dict, ref: dict, norm: dict) -> float:
    parts = [np.abs(np.asarray(got[k], dtype=np.float64) - ref[k])[norm[k] > 0]
             / norm[k][norm[k] > 0] for k in ref]
    e = np.concatenate([p.ravel() for p in parts])
    if not e.size:
        return 0.0
    m = float(np.median(e))
    return m if m > 0 else float(np.mean(e))


@dataclass(frozen=True)
class Diagnosis:
    """What a group's errors are consistent with, and whether that fails it.

    `reads` is float64, float32, tf32, bfloat16 or wrong gradient; `field` is set when the
    whole field of errors matched an arithmetic other than the one asked for (the group fails
    even where every entry is inside its bound); `failing` counts entries outside the bound.
    """

    reads: str
    failing: int
    field: str | None = None
    fits: tuple[Fit, ...] = ()
    leak: float | None = None
    matched: str | None = None  # the simulated arithmetic read, e.g. tf32-truncated

    def __str__(self) -> str:
        if self.reads == WRONG:
            return f"{WRONG}: {self.failing} {'entry' if self.failing == 1 else 'entries'}"
        return self.reads

    @property
    def fails(self) -> bool:
        """Say whether the group fails as a whole."""
        return self.field is not None or self.failing > 0

    def evidence(self) -> str:
        """Return the statistic behind a field reading, for the failure message."""
        if self.field is None:
            return ""
        if self.leak is not None and self.field == "float32":
            return f"median entry error {self.leak:.2g}× a float32 computation's"
        best = next((f for f in self.fits if f.arithmetic == self.matched), None)
        if best is None:
            return ""
        return (f"errors fit the simulated {best.arithmetic} products: share {best.beta:.3g}, "
                f"z {best.z:.3g} over {best.rows} rows")


def diagnose(
    got: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    dtype: str,
    bounds_of: Callable[[str], dict[str, np.ndarray]],
    simulate_of: Callable[[str], dict[str, np.ndarray]],
) -> Diagnosis:
    """Return what a group's errors are consistent with, judged on the whole field of errors.

    1. float32 asked: each reduced arithmetic's simulated error field is fitted (`fit`); one
       that matches (z ≥ Z, share in BETA) is read, the best fitting first, and fails the
       group, in bound or not. Operand rounding is reproducible; a summation order is not,
       and only adds noise to the fit.
    2. float64 asked: a median entry error within a factor 1/LEAK of a float32 computation's
       is a float32 leak, read as float32, and fails the group.
    3. Otherwise entries outside their bound read `wrong gradient` with their count, whatever
       their size: no arithmetic is named without its field matching.
    `bounds_of(a)` and `simulate_of(a)` return the case's bounds and simulated gradients.
    """
    own = bounds_of(dtype)
    failing = sum(int(compare(k, got[k], ref[k], own[k], dtype).failing.sum()) for k in ref)
    norm = own if dtype == "float32" else bounds_of("float32")
    base = simulate_of("float32")
    if dtype == "float32":
        fits = tuple(fit(a, got, ref, simulate_of(a), base, norm) for a in REDUCED)
        matching = [f for f in fits if f.matches]
        if matching:
            best = min(matching, key=lambda f: abs(np.log(f.beta)))
            name = REDUCED[best.arithmetic]
            return Diagnosis(name, failing, name, fits, matched=best.arithmetic)
        return Diagnosis(dtype if not failing else WRONG, failing, None, fits)
    leak = leak_level(got, ref, base, norm)
    if LEAK <= leak <= 1 / LEAK:
        return Diagnosis("float32", failing, "float32", (), leak)
    return Diagnosis(dtype if not failing else WRONG, failing, None, (), leak)


def fingerprint(got, ref, bounds_of, simulate_of, dtype: str | None = None) -> str:
    """Return what the errors are consistent with, as text (`diagnose`, for scripts)."""
    if dtype is None:
        dtype = "float64" if all(np.asarray(g).dtype == np.float64 for g in got.values()) \
            else "float32"
    return str(diagnose(got, ref, dtype, bounds_of, simulate_of))


__all__ = [
    "BETA", "LEAK", "REDUCED", "U", "WRONG", "Z", "Comparison", "Diagnosis",
    "Entry", "Fit", "compare", "diagnose", "fingerprint", "fit",
]
