"""Shrink a failing group: the smallest case on which the adapter still fails the same way.

"The same way" is the suite's own verdict on each candidate (`verdict`): the same tensor
fails (renamed, W3 → W2, when a layer before it goes), and the group's diagnosis reads the
same (tf32, float32, wrong gradient, …). Once a candidate has entries of that tensor outside
their bound, only such candidates are kept (a standalone script checks entries, not a field
of errors).

The search is greedy and deterministic: fewer layers, then each width, then the batch, each
tried from the smallest ladder value up, the first that still fails taken; then each σ
replaced by identity; passes repeat until none shrinks. Then the seeds of SEEDS are tried from
the result, and the smallest case wins (ties: the lower seed). A time budget cuts the search
(the original case is always judged first); `Shrunk.complete` says whether it ran to the end
(only then is the result the same on every machine).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np

from reference.compare import Diagnosis, compare, diagnose
from tests.engine import isolation
from tests.engine.conformance import (
    _well_formed,
    bounds_for,
    case_for,
    reference_for,
    simulated_for,
)
from tests.engine.copies import fresh
from tests.engine.matrix import Config, Spec

SEEDS = (0, 1, 2)
"""Seeds tried once the search settles; the first of them is the simplest."""
BUDGET = 30.0
"""Seconds a search may take by default."""


def spec_of(sizes, batch: int, seed: int, sigmas) -> Spec:
    """Return the Spec of a candidate."""
    return Spec(tuple(sizes), batch, seed, tuple(sigmas))


def sigmas_of(spec) -> tuple[str, ...]:
    """Return a spec's activations, one per layer."""
    return tuple(getattr(spec, "sigmas", None) or (spec.sigma1, spec.sigma2))


def numbers(spec) -> int:
    """Return how many numbers a case holds: its parameters and its batch of x and y."""
    s = spec.sizes
    return sum(a * b + b for a, b in zip(s, s[1:], strict=False)) + spec.batch * (s[0] + s[-1])


def size_text(spec) -> str:
    """Return a case's size as people read it: `784x16x10 b32`."""
    return f"{'x'.join(map(str, spec.sizes))} b{spec.batch}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the suite says of one candidate: the tensor's fate and the group's reading."""

    fails: bool  # the tensor fails: entries outside their bound, or the group's field
    entries: int  # entries of the tensor outside their bound
    diagnosis: Diagnosis | None

    @property
    def reads(self) -> str | None:
        """Return the diagnosis without its count: `tf32`, `float32`, `wrong gradient`; for a
        matched simulation its exact arithmetic (`tf32-truncated`), so that a shrunken case
        never trades truncation for rounding where the two coincide."""
        if self.diagnosis is None:
            return None
        return self.diagnosis.matched or self.diagnosis.reads


def verdict(adapter, config: Config, spec, tensor: str) -> Verdict:
    """Call the adapter once on the spec's case and judge it as the suite does."""
    setting = {} if config.precision == "default" else {"precision": config.precision}
    try:
        got = isolation.call(adapter, fresh(case_for(spec)), config.dtype, config.device,
                         **setting)
    except Exception:  # noqa: BLE001 - a candidate the adapter cannot run does not reproduce
        return Verdict(False, 0, None)
    ref = reference_for(spec)
    if not _well_formed(got, ref) or tensor not in ref:
        return Verdict(False, 0, None)
    # the level reading, not the operation reading: a search judges dozens of candidates
    diag = diagnose(got, ref, config.dtype, functools.partial(bounds_for, spec),
                    functools.partial(simulated_for, spec))
    own = bounds_for(spec, config.dtype)
    bad = int(compare(tensor, got[tensor], ref[tensor], own[tensor], config.dtype).failing.sum())
    return Verdict(bool(bad) or diag.field is not None, bad, diag)


@dataclasses.dataclass
class Shrunk:
    """How a search went: the case it started from, the smallest that still fails, and cost."""

    original: Spec
    spec: Spec
    tensor: str  # the failing tensor of the original case
    shrunk_tensor: str  # its name in the shrunk case (a layer before it may have gone)
    reads: str | None  # what the original read; None if it did not fail when called again
    verdict: Verdict | None
    evaluations: int
    seconds: float
    complete: bool

    @property
    def reproduced(self) -> bool:
        """Say whether the original failure came back when the adapter was called again."""
        return self.reads is not None

    def summary(self) -> str:
        """Return one line: `784x16x10 b32 → 8x2x1 b2 (41 cases, 0.8 s, complete)`."""
        if not self.reproduced:
            return f"{size_text(self.original)}: did not fail again ({self.seconds:.2g} s)"
        how = "complete" if self.complete else "budget spent, smallest so far"
        return (f"{size_text(self.original)} → {size_text(self.spec)} s{self.spec.seed} "
                f"{'-'.join(sigmas_of(self.spec))} ({self.evaluations} cases, "
                f"{self.seconds:.2g} s, {how})")


def ladder(n: int) -> list[int]:
    """Return the widths to try below n, smallest first: 1, 2, 3, 4, 6, 8, 12, 16, 24, …"""
    out, p = [], 1
    while p < n:
        out += [v for v in dict.fromkeys((p, p + p // 2)) if v < n]
        p *= 2
    return out


class _Search:
    """One deterministic greedy search, cut by a deadline."""

    def __init__(self, adapter, config: Config, reads: str, deadline: float):
        self.adapter, self.config, self.reads = adapter, config, reads
        self.deadline = deadline
        self.seen: dict[tuple[Spec, str], Verdict] = {}
        self.out_of_time = False

    def judge(self, spec, tensor: str) -> Verdict | None:
        """Return the candidate's verdict, None once the time is spent."""
        if (spec, tensor) not in self.seen:
            if time.monotonic() > self.deadline:
                self.out_of_time = True
                return None
            self.seen[spec, tensor] = verdict(self.adapter, self.config, spec, tensor)
        return self.seen[spec, tensor]

    def same(self, spec, tensor: str, entries: bool) -> Verdict | None:
        """Return the verdict when the candidate fails as the original did, else None."""
        v = self.judge(spec, tensor)
        if v is None or not v.fails or v.reads != self.reads or (entries and not v.entries):
            return None
        return v

    @staticmethod
    def candidates(spec, tensor: str):
        """Yield groups of smaller neighbours (sizes, batch, σs, tensor) in a fixed order."""
        sizes, sigmas = list(spec.sizes), list(sigmas_of(spec))
        part, layer = tensor[0], int(tensor[1:])
        for i in range(1, len(sizes) - 1):  # fewer layers: layers i and i + 1 become one
            name = f"{part}{layer - 1}" if layer > i else tensor  # its layer moved down
            yield [(sizes[:i] + sizes[i + 1:], spec.batch, sigmas[:i - 1] + sigmas[i:], name)]
        for i in range(len(sizes)):
            yield [(sizes[:i] + [n] + sizes[i + 1:], spec.batch, sigmas, tensor)
                   for n in ladder(sizes[i])]
        yield [(sizes, b, sigmas, tensor) for b in ladder(spec.batch)]
        for i, s in enumerate(sigmas):
            if s != "identity":
                yield [(sizes, spec.batch, sigmas[:i] + ["identity"] + sigmas[i + 1:], tensor)]

    def run(self, spec, tensor: str, v: Verdict) -> tuple[Spec, str, Verdict]:
        """Shrink from a failing spec until no neighbour fails the same way."""
        changed = True
        while changed and not self.out_of_time:
            changed = False
            for group in self.candidates(spec, tensor):
                for sizes, batch, sigmas, name in group:
                    try:
                        cand = spec_of(sizes, batch, spec.seed, sigmas)
                    except ValueError:
                        continue
                    w = self.same(cand, name, bool(v.entries))
                    if w is not None:
                        spec, tensor, v, changed = cand, name, w, True
                        break
                if self.out_of_time:
                    break
        return spec, tensor, v


def shrink(adapter, config: Config, spec, tensor: str, budget: float = BUDGET) -> Shrunk:
    """Return the smallest case found within `budget` seconds that fails like `spec` does."""
    start = time.monotonic()
    search = _Search(adapter, config, "", start + budget)
    first = search.seen[spec, tensor] = verdict(adapter, config, spec, tensor)  # always
    if not first.fails:
        return Shrunk(spec, spec, tensor, tensor, None, first, 1, time.monotonic() - start, True)
    search.reads = first.reads
    best, name, v = search.run(spec, tensor, first)
    for seed in SEEDS:
        if search.out_of_time or seed == best.seed:
            continue
        cand = spec_of(best.sizes, best.batch, seed, sigmas_of(best))
        w = search.same(cand, name, bool(v.entries))
        if w is None:
            continue
        other, other_name, w = search.run(cand, name, w)
        if (numbers(other), other.seed) < (numbers(best), best.seed):
            best, name, v = other, other_name, w
    return Shrunk(spec, best, tensor, name, first.reads, v, len(search.seen),
                  time.monotonic() - start, not search.out_of_time)


def failing_entries(adapter, config: Config, spec, tensor: str, most: int = 8) -> list[dict]:
    """Return the tensor's entries outside their bound, greatest ratio first, at most `most`."""
    setting = {} if config.precision == "default" else {"precision": config.precision}
    got = isolation.call(adapter, fresh(case_for(spec)), config.dtype, config.device,
                         **setting)
    ref, bound = reference_for(spec)[tensor], bounds_for(spec, config.dtype)[tensor]
    cmp = compare(tensor, np.asarray(got[tensor]), ref, bound, config.dtype)
    return [{"index": e.index, "got": e.got, "ref": e.ref, "bound": e.bound, "ratio": e.ratio}
            for e in cmp.worst(most)]
