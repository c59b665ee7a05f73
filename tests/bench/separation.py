"""Print how far correct adapters stay inside their bounds and how planted bugs are caught.

    python tests/bench/separation.py [--soak N] [--all-idioms] [--cases seed,chain,…]
    python tests/bench/separation.py --ladder [--sizes 784x16x10,…] [--batches 1,32,…]

Default: every group of the default matrix. Correct adapters (the built-in ones, the NumPy
example, and NumPy summing in every order of tests/fixtures/orders.py): the largest
|g − ref| / bound over all their items (aim ≤ 0.25), and how many of their groups the diagnosis
failed (aim 0).
Each planted value bug: the smallest ratio over the items it breaks (aim ≥ 4). Each planted
reduced arithmetic (tf32, bf16; rounded or truncated operands): what its float32 groups read
and the smallest z of the matching field fit (the group fails when it reads the arithmetic,
in bound or not).

--ladder: the same questions over a size ladder (784-16-10 and 784-256-10 at batch 1 … 65,536,
5-4-3 at 2²⁰): per size the correct adapters' greatest ratio, each reduced arithmetic's
reading and its greatest t, the smallest single-entry relative change a float32 and a float64
item catches, and the time of the reference, the bound and the detection.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import adapters  # noqa: E402
from reference.bounds import bounds  # noqa: E402
from reference.compare import WRONG, compare, diagnose  # noqa: E402
from reference.network import forward, gradients  # noqa: E402
from reference.simulate import simulate  # noqa: E402
from tests.engine import matrix  # noqa: E402
from tests.fixtures import orders, planted  # noqa: E402

BREAKS = {  # planted value bug → which items it breaks
    "planted_missing_prime": lambda c, s, t: t == f"W{len(s.sizes) - 1}",
    "planted_mean_loss": lambda c, s, t: s.batch * s.sizes[-1] > 1,
    "planted_float32_leak": lambda c, s, t: c.dtype == "float64",
    "planted_off_entry": lambda c, s, t: c.dtype == "float64" and t == "W1",
}
REDUCED = {  # planted reduced arithmetic → what its float32 groups must read
    "planted_tf32": "tf32", "planted_tf32_truncated": "tf32", "planted_bf16": "bfloat16",
    "planted_bf16_truncated": "bfloat16",
}
LADDER = ([((784, 16, 10), b) for b in (1, 32, 1024, 8192, 65536)]
          + [((784, 256, 10), b) for b in (1, 32, 1024, 8192, 65536)] + [((5, 4, 3), 1 << 20)])
ORDER_WORK = 3e9
"""Products beyond which the NumPy order adapters (vectorised, but not BLAS) are left out."""


class Case:
    """One case with its reference, bounds and simulations, each computed once, timed."""

    def __init__(self, sizes, batch, seed, *sigmas, scale=0):
        self.case = matrix.draw(matrix.Spec(tuple(sizes), batch, seed, tuple(sigmas), scale))
        self.name = f"{'x'.join(map(str, sizes))}-b{batch}"
        start = time.perf_counter()
        self.ref = gradients(self.case)
        self.t_ref = time.perf_counter() - start
        self.fwd = forward(self.case)
        self.bounds = functools.cache(lambda a: bounds(self.case, a, self.fwd))
        self.simulate = functools.cache(lambda a, reduced=None: simulate(self.case, a, reduced))

    def judge(self, got: dict, dtype: str):
        """Return (greatest ratio, diagnosis) of one group."""
        b = self.bounds(dtype)
        ratio = max(compare(k, got[k], self.ref[k], b[k], dtype).max_ratio for k in self.ref)
        return ratio, diagnose(got, self.ref, dtype, self.bounds, self.simulate)

    def smallest_change(self, dtype: str) -> tuple[float, float]:
        """Return the smallest and the median relative change of one entry that fails it."""
        rel = np.concatenate([(self.bounds(dtype)[k] / np.abs(self.ref[k]))[self.ref[k] != 0]
                              for k in self.ref])
        return float(rel.min()), float(np.median(rel))

    def timed_detection(self) -> tuple[float, float]:
        """Return the seconds of the float32 bound and of every simulation, computed afresh."""
        start = time.perf_counter()
        bounds(self.case, "float32", self.fwd)
        middle = time.perf_counter()
        for a in ("float32", "tf32", "tf32-truncated", "bfloat16", "bfloat16-truncated"):
            simulate(self.case, a)
        return middle - start, time.perf_counter() - middle


def correct_adapters(all_idioms: bool) -> list:
    out = adapters.builtin(list(adapters.BUILTIN), all_idioms)
    return out + [adapters.load("adapters.example:adapter")] + [a() for a in orders.ORDERS.values()]


def planted_adapters() -> dict:
    return {n: planted.NUMERIC[n]() for n in (*BREAKS, *REDUCED)}


def default_matrix(args) -> None:
    specs = matrix.specs(matrix.named(args.cases.split(",")), None, range(args.soak + 1))
    worst, alarms, groups, share = defaultdict(float), defaultdict(int), 0, [0.0, 0.0]
    least = defaultdict(lambda: float("inf"))
    reads, zs = defaultdict(set), defaultdict(lambda: float("inf"))
    named = defaultdict(list)  # what each planted arithmetic's groups read
    bad = planted_adapters()
    for spec in specs:
        c = Case(spec.sizes, spec.batch, spec.seed, *spec.sigmas, scale=spec.scale)
        key = c.name
        for a in correct_adapters(args.all_idioms):
            for dtype in matrix.DTYPES:
                ratio, diag = c.judge(a.gradients(c.case, dtype, "cpu"), dtype)
                worst[(key, dtype)] = max(worst[(key, dtype)], ratio)
                alarms[(key, dtype)] += diag.fails
                groups += 1
                share = _null_fit(share, diag)
        for name, a in bad.items():
            for dtype in matrix.DTYPES:
                got = a.gradients(c.case, dtype, "cpu")
                config = matrix.Config(name, "cpu", dtype)
                if name in BREAKS:
                    b = c.bounds(dtype)
                    for t in c.ref:
                        if BREAKS[name](config, spec, t):
                            r = compare(t, got[t], c.ref[t], b[t], dtype).max_ratio
                            least[(name, key, dtype)] = min(least[(name, key, dtype)], r)
                elif dtype == "float32":
                    _, diag = c.judge(got, dtype)
                    reads[(name, key)].add(str(diag))
                    named[(name, key)].append(diag.reads)
                    fit = [f for f in diag.fits if f.matches]
                    if fit:
                        zs[(name, key)] = min(zs[(name, key)], max(fit[0].z))
    print(f"{len(specs)} (case, σ pair, seed) specs, {groups} correct groups; cells: greatest "
          "ratio of correct items (groups failed), smallest ratio of each bug's broken items")
    print(f"{'case':<16}{'dtype':<9}{'correct':>14}" + "".join(f"{b[8:]:>16}" for b in BREAKS))
    for (case, dtype), w in sorted(worst.items()):
        cells = [least.get((b, case, dtype)) for b in BREAKS]
        print(f"{case:<16}{dtype:<9}{f'{w:.3g} ({alarms[(case, dtype)]})':>14}" +
              "".join(f"{'—' if v is None else f'{v:.3g}':>16}" for v in cells))
    for name in REDUCED:
        print(f"{name[8:]} (float32 groups): " + ", ".join(
            f"{case} reads {'/'.join(sorted(r))} z ≥ {zs[(n, case)]:.3g}"
            for (n, case), r in sorted(reads.items()) if n == name))
    print(f"correct groups' reduced fits: greatest share {share[0]:.3g} (a reading needs ≥ 0.5), "
          f"greatest z {share[1]:.3g}")
    said = [(REDUCED[n], r) for (n, _), rs in named.items() for r in rs]
    right = sum(r == want for want, r in said)
    caught = all(r in (want, WRONG) for want, r in said)  # thin evidence names nothing
    t = min(zs.values(), default=float("inf"))
    print(f"separation: correct ≤ {max(worst.values()):.3g} with {sum(alarms.values())} groups "
          f"failed; planted bugs ≥ {min(least.values()):.3g} per item; reduced precision "
          f"{'caught' if caught else 'MISREAD'} in every group, named in {right} of "
          f"{len(said)}, t ≥ {t:.3g}")


def ladder(args) -> None:
    shapes = LADDER
    if args.sizes or args.batches:
        sizes = [tuple(map(int, s.split("x"))) for s in (args.sizes or "784x16x10").split(",")]
        shapes = [(s, int(b)) for s in sizes for b in (args.batches or "1").split(",")]
    s1, s2 = args.pair.split("-")
    correct = correct_adapters(False)
    reduced = {n: planted.NUMERIC[n]() for n in REDUCED}
    print(f"σ pair {args.pair}, seed {args.seed}. correct: greatest ratio over "
          f"{len(correct)} adapters × float32/float64 (groups failed); reduced: reading, z / "
          "the t its fit needs; change: smallest (median) relative change of "
          "one entry that fails an item; times: reference, bound, all five simulations")
    for sizes, batch in shapes:
        c = Case(sizes, batch, args.seed, s1, s2)
        worst, alarms, skipped, share = 0.0, 0, 0, [0.0, 0.0]
        for a in correct:
            if a.name in orders.ORDERS and batch * (sizes[0] + sizes[2]) * sizes[1] > ORDER_WORK:
                skipped += 1
                continue
            for dtype in ("float32", "float64"):
                ratio, diag = c.judge(a.gradients(c.case, dtype, "cpu"), dtype)
                worst, alarms = max(worst, ratio), alarms + diag.fails
                share = _null_fit(share, diag)
        cells = []
        for name, a in reduced.items():
            _, diag = c.judge(a.gradients(c.case, "float32", "cpu"), "float32")
            own = [f for f in diag.fits if f.arithmetic == _simulated(name)][0]
            cells.append(f"{name[8:]} {diag} t {max(own.z):.3g} (needs {own.threshold:.3g})")
        f32, f64 = c.smallest_change("float32"), c.smallest_change("float64")
        t_bound, t_sims = c.timed_detection()
        left = f" ({skipped} order adapters left out)" if skipped else ""
        print(f"{c.name}: correct ≤ {worst:.3g} ({alarms} failed, greatest share {share[0]:.2g}, "
              f"z {share[1]:.2g}){left}; " + "; ".join(cells) +
              f"; change float32 {f32[0]:.2g} ({f32[1]:.2g}), float64 {f64[0]:.2g} ({f64[1]:.2g})"
              f"; times {c.t_ref:.3g} s, {t_bound:.3g} s, {t_sims:.3g} s "
              f"(bound + detection {(t_bound + t_sims) / c.t_ref:.2g}× the reference)", flush=True)


def _null_fit(share: list, diag) -> list:
    """Return the greatest share and z of any reduced fit so far, over correct groups."""
    fits = diag.fits or ()
    return [max([share[0], *(b for f in fits for b in f.beta)]),
            max([share[1], *(z for f in fits for z in f.z)])]


def _simulated(name: str) -> str:
    base = REDUCED[name]
    return base + "-truncated" if name.endswith("truncated") else base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soak", type=int, default=0)
    ap.add_argument("--all-idioms", action="store_true")
    ap.add_argument("--cases", default=",".join(matrix.CASES))
    ap.add_argument("--ladder", action="store_true")
    ap.add_argument("--sizes")
    ap.add_argument("--batches")
    ap.add_argument("--pair", default="sigmoid-sigmoid")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    (ladder if args.ladder else default_matrix)(args)


if __name__ == "__main__":
    main()
