"""Print how far correct adapters stay inside their bounds and planted bugs fall outside.

    python tests/bench/separation.py [--soak N] [--all-idioms] [--cases seed,chain,…]

For every item of the default matrix: the greatest |g − ref| / bound. Correct adapters (the
built-in ones, the NumPy example, and NumPy summing term by term): the largest over all their
items (aim ≤ 0.25). Each planted numerical bug: the smallest over the
items it breaks (aim ≥ 4), and for TF32 the smallest per-case maximum (a case's tensors
together), since one rounding may by chance leave a single tensor of a tiny net unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import adapters  # noqa: E402
from reference.compare import compare  # noqa: E402
from tests import matrix, planted  # noqa: E402
from tests.conformance import bounds_for, case_for, reference_for  # noqa: E402

BREAKS = {  # planted bug → which items it breaks
    "planted_missing_prime": lambda c, s, t: t == "W2",
    "planted_mean_loss": lambda c, s, t: s.batch * s.sizes[2] > 1,
    "planted_float32_leak": lambda c, s, t: c.dtype == "float64",
    "planted_off_entry": lambda c, s, t: c.dtype == "float64" and t == "W1",
    "planted_tf32": lambda c, s, t: c.dtype == "float32",
    "planted_tf32_truncated": lambda c, s, t: c.dtype == "float32",
}
TF32 = ("planted_tf32", "planted_tf32_truncated")


def item_ratios(adapter, specs, dtypes=matrix.DTYPES):
    """Yield (config, spec, tensor, greatest ratio) for every item of one adapter."""
    for spec in specs:
        case = case_for(spec)
        ref = reference_for(spec)
        for dtype in dtypes:
            got = adapter.gradients(case, dtype, "cpu")
            config = matrix.Config(adapter.name, "cpu", dtype)
            for t in ref:
                cmp = compare(t, got[t], ref[t], bounds_for(spec, dtype)[t], dtype)
                yield config, spec, t, cmp.max_ratio


def case_name(spec) -> str:
    return "{}x{}x{}-b{}".format(*spec.sizes, spec.batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soak", type=int, default=0)
    ap.add_argument("--all-idioms", action="store_true")
    ap.add_argument("--cases", default=",".join(matrix.CASES))
    args = ap.parse_args()
    specs = matrix.specs(matrix.named(args.cases.split(",")), None, range(args.soak + 1))
    correct = adapters.builtin(list(adapters.BUILTIN), args.all_idioms)
    correct += [adapters.load("adapters.example:adapter"), planted.SequentialSums()]

    worst = defaultdict(float)  # (case, dtype) → greatest ratio of any correct item
    for a in correct:
        for c, s, _, r in item_ratios(a, specs):
            key = (case_name(s), c.dtype)
            worst[key] = max(worst[key], r)
    least = defaultdict(lambda: float("inf"))  # (bug, case, dtype) → smallest broken item
    tf32_case = defaultdict(float)  # (bug, spec, dtype) → greatest ratio over the case's tensors
    for name, cls in planted.NUMERIC.items():
        for c, s, t, r in item_ratios(cls(), specs):
            if BREAKS[name](c, s, t):
                key = (name, case_name(s), c.dtype)
                least[key] = min(least[key], r)
                if name in TF32:
                    tf32_case[(name, s, c.dtype)] = max(tf32_case[(name, s, c.dtype)], r)
    report(worst, least, tf32_case, len(specs))


def report(worst, least, tf32_case, n_specs) -> None:
    """Print the separation table."""
    bugs = list(BREAKS)
    print(f"{n_specs} (case, σ pair, seed) specs; cells: greatest ratio of correct items, "
          "smallest ratio of each bug's broken items")
    print(f"{'case':<16}{'dtype':<9}{'correct':>9}" + "".join(f"{b[8:]:>16}" for b in bugs))
    for (case, dtype), w in sorted(worst.items()):
        cells = [least.get((b, case, dtype)) for b in bugs]
        print(f"{case:<16}{dtype:<9}{w:>9.3g}" +
              "".join(f"{'—' if v is None else f'{v:.3g}':>16}" for v in cells))
    by_case = defaultdict(lambda: float("inf"))  # (bug, case) → smallest greatest ratio
    for (name, spec, _), r in tf32_case.items():
        key = (name, case_name(spec))
        by_case[key] = min(by_case[key], r)
    for name in TF32:
        print(f"{name[8:]}, smallest over σ pairs and seeds of a case's greatest ratio: " +
              ", ".join(f"{k} {v:.3g}" for (b, k), v in sorted(by_case.items()) if b == name))
    per_item = min(v for (b, *_), v in least.items() if b not in TF32)
    print(f"separation: correct ≤ {max(worst.values()):.3g}; planted bugs ≥ {per_item:.3g} "
          f"per item (tf32 aside), tf32 ≥ {min(by_case.values()):.3g} per case")


if __name__ == "__main__":
    main()
