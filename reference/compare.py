"""The verdict: per-entry difference, bound, ratio and bits of agreement, and the fingerprint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from reference.bounds import U

MANTISSA_BITS = {"float64": 53, "float32": 24}
ARITHMETICS = ("float64", "float32", "tf32", "bfloat16")
"""What a config's errors can be consistent with, most precise first."""
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
        """Say whether every entry is inside its bound."""
        return not self.failing.any()

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


MATCH = 8
"""The errors *are* a simulated arithmetic's when the gradients lie within 1/MATCH of their
error level from its simulation. Measured with the planted tf32 (rounded and truncated) and
bf16 adapters of tests/planted.py, which sum in another order than the simulation, on the
784-16-10 net at batch 1, 32, 256 and 1024, 5-4-3 and 1-1-1, three seeds each: the matching
simulation lay within 0.006 of the level, every other one 0.82 or more away; 1/8 sits between,
a factor of 20 and of 6.6 from either."""

REDUCED = {"tf32": "tf32", "tf32-truncated": "tf32", "bfloat16": "bfloat16",
           "bfloat16-truncated": "bfloat16"}
"""Each simulated reduced arithmetic (`reference.simulate`) and the name the fingerprint reads."""


def fingerprint(
    got: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    bounds_of: Callable[[str], dict[str, np.ndarray]],
    simulate_of: Callable[[str], dict[str, np.ndarray]],
) -> str:
    """Return the arithmetic the errors are consistent with, or 'wrong gradient'.

    float64 and float32 are told apart from each other and from the reduced arithmetics by
    their bounds alone (2^29 and 2^13 apart, far more than a bound's slack). Past float32:

    1. A reduced arithmetic whose simulation (`reference.simulate`: the case run with matrix
       product operands rounded, or truncated, to tf32's 10 or bf16's 7 bits) the gradients
       match to within 1/MATCH of their error level is read. Operand rounding is the same on
       any device; only the summation order differs, and that is a float32-sized difference.
       Truncated tf32 matters: it errs like bf16 in level (its error is biased, so it grows
       with the sum's length), and a level test alone reads it as bf16 or worse.
    2. Otherwise the error *level* decides, as for an arithmetic not simulated: the RMS of
       |g − ref| / float32 bound against the same case's rounded tf32 and bf16 simulations.
       Up to the geometric middle of the two levels it reads tf32 (if within the tf32 bound);
       up to one more half-step (√8) past bf16's, bf16 (if within the bf16 bound); beyond,
       wrong gradient.
    `bounds_of(a)` and `simulate_of(a)` return the case's bounds and simulated gradients.
    """

    def holds(arithmetic: str) -> bool:
        b = bounds_of(arithmetic)
        return all(compare(k, got[k], ref[k], b[k], arithmetic).passed for k in ref)

    for arithmetic in ("float64", "float32"):
        if holds(arithmetic):
            return arithmetic
    norm = bounds_of("float32")
    level = error_level(got, ref, norm)
    sims = {a: simulate_of(a) for a in REDUCED}
    distance = {a: error_level(got, sim, norm) for a, sim in sims.items()}
    nearest = min(distance, key=distance.get)
    if MATCH * distance[nearest] <= level:
        return REDUCED[nearest]
    if not holds("bfloat16"):
        return WRONG
    tf32, bf16 = (error_level(sims[a], ref, norm) for a in ("tf32", "bfloat16"))
    if holds("tf32") and level * level <= tf32 * bf16:
        return "tf32"
    return "bfloat16" if level * level <= 8 * bf16 * bf16 else WRONG


def error_level(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], norm: dict) -> float:
    """Return the RMS over all entries of |g − ref| / norm (entries with norm 0 left out)."""
    parts = []
    for k in ref:
        d, n = np.abs(np.asarray(got[k], dtype=np.float64) - ref[k]), norm[k]
        parts.append((d[n > 0] / n[n > 0]).ravel())
    e = np.concatenate(parts)
    return float(np.sqrt(np.mean(e * e))) if e.size else 0.0


__all__ = [
    "ARITHMETICS", "MATCH", "REDUCED", "U", "WRONG", "Comparison", "Entry", "compare",
    "error_level", "fingerprint",
]
