"""The nearest known bug: the gradients a catalogue of plausible mistakes gives, computed from
the reference, and the one a wrong group's gradients match.

Each entry of `MISTAKES` is a class of bug: a name, a function that yields its variants on a
case (one per layer, tensor or batch end it can strike), and the sentence that names it. A
variant is the whole set of gradients the mistake gives, computed in float64 from the
reference's own pass (`Backprop`). A group read as a wrong gradient is set against every
variant (`nearest`): a variant matches when every entry of every tensor the adapter returned
lies within the tier that decides pass/fail (`reference.bounds.bounds`, scaled by the mistake's
own magnitude where it is larger) of the variant's, and the variant differs from the reference
beyond that tier somewhere on this case. A variant that the case cannot tell from the correct
gradients (a batch of 1 for "the first sample only", identity for "σ′ left out", a 1×1 weight
for "transposed") is never named. `MISTAKES` is a tuple: other code extends the catalogue by
adding entries (`MISTAKES + (Mistake(...),)`) and passing its tuple to `nearest`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import NamedTuple

import numpy as np

from reference.activations import activation
from reference.case import Case, tensors
from reference.network import forward_deep


class Variant(NamedTuple):
    """One mistake struck at one place: the gradients it gives, and how it reads."""

    gradients: dict[str, np.ndarray]
    fields: dict  # what the sentence's {placeholders} say: the layer, σ, the tensor, …
    factor: float | None = None  # every entry is factor × the reference
    bounds: Callable[[dict], dict] | None = None  # the tier moved as the entries were
    grow: dict | None = None  # how much larger a tensor's magnitudes run than the reference's


class Mistake(NamedTuple):
    """A class of bug: its name, its variants on a case, and the sentence that names one."""

    name: str
    variants: Callable[[Backprop, dict], Iterator[Variant]]  # (the pass, the adapter's tensors)
    sentence: str  # formatted with the variant's fields


class Match(NamedTuple):
    """The known bugs a group's gradients match: their names and the reading."""

    names: tuple[str, ...]
    label: str


class Backprop:
    """The reference's pass, in float64, kept layer by layer so that a mistake can redo it from
    any layer down: z, a, ∂C/∂a and δ of every layer i = 1 … L (index 0 unused, a[0] = x);
    with the reference's gradients and the tier the adapter's are judged by."""

    def __init__(self, case: Case, ref: dict[str, np.ndarray], bound: dict[str, np.ndarray]):
        self.case, self.ref, self.bound, self.L = case, ref, bound, case.depth
        self.z, self.a = forward_deep(case)
        self.sigma = (None, *(activation(layer.sigma) for layer in case.layers))
        self.dC_da: list = [None] * (self.L + 1)
        dC_da = 2.0 * (self.a[self.L] - case.y)  # (19) differentiated
        for i in range(self.L, 0, -1):
            self.dC_da[i] = dC_da
            if i > 1:
                dC_da = (self.sigma[i].df(self.z[i]) * dC_da) @ case.layers[i - 1].W  # (28)–(29)

    def own(self, i: int, delta: np.ndarray, which: str = "Wb") -> dict[str, np.ndarray]:
        """Return the reference with layer i's own gradients (W and/or b) taken from `delta`."""
        g = dict(self.ref)
        if "W" in which:
            g[f"W{i}"] = delta.T @ self.a[i - 1]  # (21)–(22)/(26)
        if "b" in which:
            g[f"b{i}"] = delta.sum(axis=0)  # (23)–(24)
        return g

    def down(self, i: int, delta: np.ndarray) -> dict[str, np.ndarray]:
        """Return the reference with δ_i replaced by `delta` and carried down to layer 1."""
        g = dict(self.ref)
        for j in range(i, 0, -1):
            g[f"W{j}"], g[f"b{j}"] = delta.T @ self.a[j - 1], delta.sum(axis=0)
            if j > 1:
                delta = self.sigma[j - 1].df(self.z[j - 1]) * (delta @ self.case.layers[j - 1].W)
        return g

    @cached_property
    def deltas(self) -> list:
        """Return δ_i = σ_i′(z_i) ⊙ ∂C/∂a_i of every layer (index 0 unused)."""
        return [None] + [self.sigma[i].df(self.z[i]) * self.dC_da[i] for i in range(1, self.L + 1)]


def _scaled(bp: Backprop, c: float, **fields) -> Iterator[Variant]:
    yield Variant({k: c * v for k, v in bp.ref.items()}, fields, c)


def _mean_batch(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """The cost averaged over the batch: every gradient / B."""
    yield from _scaled(bp, 1.0 / bp.case.batch, B=bp.case.batch)


def _mean_outputs(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """The cost averaged over the outputs: every gradient / n_L."""
    yield from _scaled(bp, 1.0 / bp.case.sizes[-1], n=bp.case.sizes[-1])


def _mean_both(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """The cost averaged over the batch and the outputs (nn.MSELoss's default): / (B·n_L);
    with one sample or one output it is one of the means alone, and read as that."""
    B, n = bp.case.batch, bp.case.sizes[-1]
    if B > 1 and n > 1:
        yield from _scaled(bp, 1.0 / (B * n), B=B, n=n)


def _half(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """½ in the cost: every gradient / 2, alone or with a mean (each mean only where it is one:
    over more than one sample, more than one output)."""
    B, n = bp.case.batch, bp.case.sizes[-1]
    means = [(1, ""), (B, f", averaged over the {B} samples"), (n, f", averaged over the {n} "
             "outputs"), (B * n if min(B, n) > 1 else 1, f", averaged over the batch and the "
             f"outputs ({B}×{n})")]
    for c, mean in means:
        if c > 1 or not mean:
            yield from _scaled(bp, 0.5 / c, mean=mean)


def _twice(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """Gradients accumulated twice: every gradient × 2."""
    yield from _scaled(bp, 2.0)


def _sign(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """The sign flipped: every gradient × −1."""
    yield from _scaled(bp, -1.0)


SCOPES = (("down", "δ{l} and every layer below it"),
          ("Wb", "W{l} and b{l} (the δ passed on is right)"), ("W", "∂C/∂W{l} only"))
"""Where a wrong δ_l can go: carried down through every layer below, into layer l's own
gradients only, or into its weight gradient only ((22) as the seed prints it)."""


def _wrong_delta(bp: Backprop, prime: Callable) -> Iterator[Variant]:
    """Yield δ_l = prime(σ_l, z_l) ⊙ ∂C/∂a_l in every layer l and scope; the tensors it reaches
    round with δ_l's magnitudes, so their tier grows with its largest entry's."""
    for i in range(1, bp.L + 1):
        delta = prime(bp.sigma[i], bp.z[i]) * bp.dC_da[i]
        name = bp.case.layers[i - 1].sigma
        top = float(np.abs(bp.deltas[i]).max(initial=0.0))
        ratio = float(np.abs(delta).max(initial=0.0)) / top if top > 0 else 1.0
        for scope, where in SCOPES:
            g = bp.down(i, delta) if scope == "down" else bp.own(i, delta, scope)
            below = range(1, i + 1) if scope == "down" else (i,)
            yield Variant(g, {"l": i, "sigma": name, "where": where.format(l=i)},
                          grow={f"{p}{j}": ratio for j in below for p in "Wb"})


def _prime_missing(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """σ′ left out of δ_l: δ_l = ∂C/∂a_l."""
    yield from _wrong_delta(bp, lambda s, z: 1.0)


def _sigma_as_prime(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """σ used where σ′ belongs: δ_l = σ_l(z_l) ⊙ ∂C/∂a_l."""
    yield from _wrong_delta(bp, lambda s, z: s.f(z))


def _bias_one_sample(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """The bias gradient of one sample (the first or the last), not summed over the batch: in
    every layer, or in one."""
    for end, k in (("first", 0), ("last", -1)):
        every = dict(bp.ref)
        for i in range(1, bp.L + 1):
            every[f"b{i}"] = bp.deltas[i][k]
            yield Variant({**bp.ref, f"b{i}": bp.deltas[i][k]}, {"end": end, "T": f"∂C/∂b{i}"})
        if bp.L > 1:
            yield Variant(every, {"end": end, "T": "every bias gradient"})


def _transposed(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """A square weight gradient transposed; a non-square one's (in, out) layout read as
    (out, in)."""
    for i in range(1, bp.L + 1):
        W = bp.ref[f"W{i}"]
        if W.shape[0] == W.shape[1]:
            yield Variant({**bp.ref, f"W{i}": W.T}, {"T": f"∂C/∂W{i}", "how": "is transposed"},
                          bounds=_moved(f"W{i}", lambda b: b.T))
        else:
            flat = np.ascontiguousarray(W.T).reshape(W.shape)
            yield Variant({**bp.ref, f"W{i}": flat},
                          {"T": f"∂C/∂W{i}", "how": "is laid out (in, out) and read as (out, in)"},
                          bounds=_moved(f"W{i}", lambda b: np.ascontiguousarray(b.T).reshape(
                              b.shape)))


def _moved(names: str | tuple[str, ...], move: Callable) -> Callable[[dict], dict]:
    """Return the function that moves the named tensors' bounds as their entries moved."""
    names = (names,) if isinstance(names, str) else names
    return lambda b: {**b, **{k: move(b[k]) for k in names}}


def _rows_permuted(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """A tensor's rows (a bias's entries) permuted, alone or with its layer's other tensor by
    the same permutation: each row the adapter returned is matched to a reference row it lies
    within the tier of."""
    for i in range(1, bp.L + 1):
        perm = _permutation(bp.ref[f"W{i}"], seen.get(f"W{i}"), bp.bound[f"W{i}"])
        if perm is None:
            perm = _permutation(bp.ref[f"b{i}"], seen.get(f"b{i}"), bp.bound[f"b{i}"])
        if perm is None:
            continue
        moved = int((perm != np.arange(perm.size)).sum())
        for names in ((f"W{i}",), (f"b{i}",), (f"W{i}", f"b{i}")):
            g = {**bp.ref, **{k: bp.ref[k][perm] for k in names}}
            what = " and ".join(f"∂C/∂{k}" for k in names)
            yield Variant(g, {"T": what, "moved": moved, "rows": perm.size},
                          bounds=_moved(names, lambda b, p=perm: b[p]))


def _permutation(ref: np.ndarray, got, bound: np.ndarray) -> np.ndarray | None:
    """Return, for each row of `got`, a reference row it lies within the tier of, each taken
    once, if that is a permutation other than the identity; None if there is none."""
    if got is None or np.shape(got) != ref.shape or ref.shape[0] < 2:
        return None
    r = ref.reshape(ref.shape[0], -1)
    g = np.asarray(got, dtype=np.float64).reshape(r.shape)
    t = _tolerance(ref, ref, bound).reshape(r.shape)
    fits = [[int(j) for j in np.flatnonzero((np.abs(row - r) <= t).all(axis=1))] for row in g]
    perm = _matching(fits)
    return None if perm is None or (perm == np.arange(perm.size)).all() else perm


def _matching(fits: list[list[int]]) -> np.ndarray | None:
    """Return a perfect matching of rows to the columns each fits (Kuhn's augmenting paths),
    None if there is none."""
    owner: dict[int, int] = {}

    def place(i: int, seen: set) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    if not all(place(i, set()) for i in range(len(fits))):
        return None
    perm = np.empty(len(fits), dtype=int)
    for j, i in owner.items():
        perm[i] = j
    return perm


def _zero(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """One tensor's gradient zero."""
    for k in tensors(bp.L):
        yield Variant({**bp.ref, k: np.zeros_like(bp.ref[k])}, {"T": f"∂C/∂{k}"})


def _swapped(bp: Backprop, seen: dict) -> Iterator[Variant]:
    """Two layers' gradients returned in each other's place (alike shapes)."""
    for i in range(1, bp.L + 1):
        for j in range(i + 1, bp.L + 1):
            if bp.ref[f"W{i}"].shape == bp.ref[f"W{j}"].shape:
                g = {**bp.ref, f"W{i}": bp.ref[f"W{j}"], f"W{j}": bp.ref[f"W{i}"],
                     f"b{i}": bp.ref[f"b{j}"], f"b{j}": bp.ref[f"b{i}"]}
                yield Variant(g, {"i": i, "j": j}, bounds=lambda b, g=g, i=i, j=j: {
                    **b, f"W{i}": b[f"W{j}"], f"W{j}": b[f"W{i}"], f"b{i}": b[f"b{j}"],
                    f"b{j}": b[f"b{i}"]})


MISTAKES: tuple[Mistake, ...] = (
    Mistake("mean-batch", _mean_batch, "the cost is averaged over the {B} samples of the batch "
            "(C/B)"),
    Mistake("mean-outputs", _mean_outputs, "the cost is averaged over the {n} outputs (C/n_L)"),
    Mistake("mean-both", _mean_both, "the cost is averaged over the batch and the outputs, "
            "{B}×{n} values (C/(B·n_L), nn.MSELoss's default)"),
    Mistake("half", _half, "the cost carries a ½{mean} (½(a − y)², whose derivative has no 2)"),
    Mistake("twice", _twice, "the gradients are accumulated twice (a second backward pass into "
            "gradients not zeroed)"),
    Mistake("sign", _sign, "the sign is flipped (the gradient of −C: y − a for a − y)"),
    Mistake("prime-missing", _prime_missing, "σ′ of layer {l} ({sigma}) is left out of δ{l}, "
            "in {where}"),
    Mistake("sigma-as-prime", _sigma_as_prime, "σ of layer {l} ({sigma}) is used where its σ′ "
            "belongs, in {where}"),
    Mistake("bias-one-sample", _bias_one_sample, "{T} is the {end} sample's δ only, not summed "
            "over the batch"),
    Mistake("transposed", _transposed, "{T} {how}"),
    Mistake("rows-permuted", _rows_permuted, "the rows of {T} are permuted ({moved} of {rows} "
            "moved)"),
    Mistake("zero", _zero, "{T} is zero (the parameter is not on the tape, or its gradient "
            "is dropped)"),
    Mistake("swapped", _swapped, "the gradients of layers {i} and {j} are returned in each "
            "other's place"),
)
"""The catalogue, in the order a reading lists matches."""


RELATIVE_CAP = 2.0**-10
"""The most a row's floor (`_tolerance`) may allow, relative to the row: catalogued mistakes lie
O(1) apart, so three decimal digits in every row still tell each from the others."""


def _tolerance(ref: np.ndarray, mine: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Return how far the adapter's entries may lie from a mistake's: the reference's tier,
    times how much larger the mistake's row is than the reference's, up to GROW_CAP (its
    roundings scale with it; a bias's entries are rows of one), and at least the tier's
    typical share of an entry (its median bound/|ref|, at most RELATIVE_CAP) of the row's
    largest entry. A mistake gives
    values where the reference's bound is 0: the rows of a dead relu unit once relu′ is left
    out, whose sums cancel."""
    seen = (ref != 0) & (bound > 0)
    typical = float(np.median(bound[seen] / np.abs(ref[seen]))) if seen.any() else 0.0
    mine_rows, ref_rows = _rows(mine), _rows(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        grow = np.where(ref_rows > 0, np.clip(mine_rows / ref_rows, 1.0, GROW_CAP), 1.0)
    floor = min(typical, RELATIVE_CAP) * mine_rows
    # an entry the reference holds exact (bound 0: a unit relu switched off) that the mistake
    # makes nonzero is computed as its live neighbours are, in the same arithmetic: it carries
    # their typical share uncapped (saturated float32, where σ′ of a sigmoid output may be
    # taken as 0, lets a live entry err by 10⁵ of itself, and a dead unit's row under σ′ left
    # out by as much)
    opened = (bound == 0) & (mine != 0)
    return np.maximum(bound * grow, np.where(opened, typical * mine_rows, floor))


def _rows(a: np.ndarray) -> np.ndarray:
    """Return each row's largest |entry| (a vector's entries are rows of one)."""
    return np.abs(a).max(axis=-1, keepdims=True) if a.ndim > 1 else np.abs(a)


GROW_CAP = 16.0
"""The most a variant's `grow` widens the tier: it widens the tier's absolute floors too (the
activations' budgets, which do not grow with the mistake), and σ′ left out of a saturated layer
grows δ 10¹²-fold; such a mistake, computed in the adapter's arithmetic, is read a wrong
gradient rather than taken in with the reference beside it."""
SEPARATED = 4.0
"""Where a mistake lies this many tiers (the reference's and its own) from the reference, the
adapter's entry must lie nearer the mistake than the reference: a tier grown with a mistake's
magnitude (σ′ left out of a saturated layer, 10¹² larger) would otherwise take in the
reference itself."""


def _matches(v: Variant, got: dict, ref: dict, bound: dict) -> bool:
    """Say whether the adapter's tensors lie within `_tolerance` of the variant's on every
    entry (a tensor the variant leaves right: within the reference's own tier), nearer the
    variant than the reference wherever the two lie SEPARATED of either tier apart, and the variant
    leaves the reference's tier somewhere (the case can tell them apart)."""
    apart, moved = False, bound if v.bounds is None else v.bounds(bound)
    for k in reversed(list(ref)):  # the last layer's tensors first: the smallest, as a rule
        mine = np.asarray(v.gradients[k], dtype=np.float64)
        g = np.asarray(got[k], dtype=np.float64)
        if mine is ref[k] or np.array_equal(mine, ref[k]):  # left right: it must pass the tier
            tol = bound[k]
        else:
            grow = min(max(1.0, (v.grow or {}).get(k, 1.0)), GROW_CAP)
            # an entry the mistake leaves as it is keeps the reference's tier: a row fixed by
            # a permutation may not take the floor, which is as loose as tf32 (a tf32 run on
            # the saturated relu-sigmoid case matched "rows of ∂W2 permuted" through its
            # one fixed failing row)
            tol = np.where(mine == ref[k], bound[k], _tolerance(ref[k], mine, moved[k]) * grow)
        off = np.abs(mine - ref[k])
        far = off > SEPARATED * np.maximum(bound[k], tol)
        if not np.all(np.abs(g - mine) <= tol) or np.any(
                np.abs(g - mine)[far] >= np.abs(g - ref[k])[far]):
            return False
        apart = apart or bool(np.any(off > bound[k]))
    return apart


def nearest(case: Case, got: dict, ref: dict, bound: dict,
            catalogue: tuple[Mistake, ...] = MISTAKES) -> Match | None:
    """Return the known bugs whose gradients the adapter's match on this case, None if none
    does: `every entry is 0.1× the reference: the cost is averaged over the 10 outputs (C/n_L)`,
    or `W2, b2 match a known bug: …` when the mistake is not a factor."""
    if any(k not in got or np.shape(got[k]) != np.shape(ref[k]) for k in ref):
        return None
    bp = Backprop(case, ref, bound)
    found: list[tuple[str, Variant]] = []
    for mistake in catalogue:
        for v in mistake.variants(bp, got):
            if _matches(v, got, ref, bound):
                found.append((mistake.name, v))
    if not found:
        return None
    found = _nearest_factor(found, got, ref)
    causes = list(dict.fromkeys(m.sentence.format(**v.fields) for name, v in found
                                for m in catalogue if m.name == name))
    names = tuple(dict.fromkeys(name for name, _ in found))
    first = found[0][1]
    if first.factor is not None and all(v.factor == first.factor for _, v in found):
        head = f"every entry is {first.factor:.4g}× the reference"
    else:
        changed = [k for k in ref if any(not np.array_equal(v.gradients[k], ref[k])
                                         for _, v in found)]
        head = f"{', '.join(changed)} {'matches' if len(changed) == 1 else 'match'} a known bug"
    tail = "" if len(causes) == 1 else " (this case cannot tell them apart)"
    return Match(names, f"{head}: {' or '.join(causes)}{tail}")


def _nearest_factor(found: list, got: dict, ref: dict) -> list:
    """Return the factor mistakes whose factor lies nearest the least-squares factor of the
    adapter's gradients on the reference (every one when a match is no factor): a tier wider
    than a tiny factor takes in its half too (C/(B·n_L) and ½ of it at batch 4096)."""
    if any(v.factor is None for _, v in found):
        return found
    rr = sum(float(np.sum(ref[k] * ref[k])) for k in ref)
    fitted = sum(float(np.sum(np.asarray(got[k], dtype=np.float64) * ref[k])) for k in ref) / rr
    gap = min(abs(v.factor - fitted) for _, v in found)
    return [(n, v) for n, v in found if abs(v.factor - fitted) <= gap * 1.5 + 1e-3 * abs(fitted)]


def open_to(diagnosis) -> bool:
    """Say whether a diagnosis is tried against the catalogue (`named`): a wrong gradient, or
    a reduced arithmetic (a float64 run's float32 included) read with entries outside their
    bound. Near zero (parameters × 2⁻¹²) tanh′ = 1 − z² differs from 1 by less than a float32
    ulp, so σ′ left out there is also a float32-accurate σ′; the mistake's match, within the
    float64 tier of its own gradients, is the sharper reading."""
    from reference.compare import REDUCED, WRONG

    return diagnosis is not None and (diagnosis.reads == WRONG or (
        diagnosis.reads in {*REDUCED.values(), "float32"} and diagnosis.failing > 0))


def named(diagnosis, case: Case, got: dict, ref: dict, bound: dict,
          catalogue: tuple[Mistake, ...] = MISTAKES):
    """Return the diagnosis with the known bug its wrong gradient matches, if one does.

    A group read as a reduced arithmetic with entries outside their bound is tried too, and a
    matching mistake replaces the reading: a mistake matches only where every entry lies
    within the tier of the mistake's own gradients, which no rounding of operands comes near,
    while an arithmetic's fit needs only explain half of the errors (on the saturated
    relu-sigmoid case a flipped sign, whose errors lie in the few directions of Δz, fitted
    tf32 in ∂W2)."""
    from reference.compare import WRONG, Diagnosis

    if not open_to(diagnosis):
        return diagnosis
    match = nearest(case, got, ref, bound, catalogue)
    if match is None:
        return diagnosis
    if diagnosis.reads != WRONG:
        return Diagnosis(WRONG, diagnosis.failing, mistake=match.label)
    return dataclasses.replace(diagnosis, mistake=match.label)


__all__ = ["MISTAKES", "Backprop", "Match", "Mistake", "Variant", "named", "nearest", "open_to"]
