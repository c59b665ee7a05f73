"""Print the planted bugs the any-order bound let through, and how the tier catches each now.

    python tests/bench/recaught.py [--seeds 404] [--groups 2004]

Each bug with the cases it is planted on, and the smallest greatest-ratio over its groups (a
bug is caught where the greatest |g − ref| / tier of its broken tensor exceeds 1):
- one ∂W2 entry (the largest) shifted by 1e-4 of the tensor's largest magnitude, float32, on
  every default spec;
- ∂W1 and ∂b1 of the two hidden units with the largest ∂W1 rows swapped, float32 and
  float64, over --seeds seeds of the seed and minibatch cases;
- one ∂W1 entry off by a relative 1e-9, float64, at 5-4-3 batch 2²⁰;
- σ′ missing in layer 2 of a 4-layer tanh net (784-64-32-16-10 at batch 8), float32;
- tf32 products (operands rounded to 10 bits) on --groups float32 groups of the default
  cases over seeds: how many fail.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from adapters.example import NumpyAdapter  # noqa: E402
from reference.bounds import bounds  # noqa: E402
from reference.compare import compare, diagnose  # noqa: E402
from reference.network import gradients  # noqa: E402
from reference.simulate import simulate  # noqa: E402
from tests.engine import matrix  # noqa: E402
from tests.fixtures import planted  # noqa: E402

DEFAULT = ["seed", "minibatch", "chain", "small", "deep", "nearzero"]


def ratio(case, got, tensor, dtype) -> float:
    ref, b = gradients(case)[tensor], bounds(case, dtype)[tensor]
    return compare(tensor, got[tensor], ref, b, dtype).max_ratio


def shifted_entry(specs) -> float:
    worst = np.inf
    for spec in specs:
        case = matrix.draw(spec)
        got = NumpyAdapter().gradients(case, "float32", "cpu")
        g = got["W2"].reshape(-1)
        i = int(np.argmax(np.abs(g)))
        g[i] += 1e-4 * abs(g[i])
        worst = min(worst, ratio(case, got, "W2", "float32"))
    return worst


def swapped_rows(specs) -> tuple[float, int]:
    worst, n = np.inf, 0
    for spec in specs:
        case = matrix.draw(spec)
        for dtype in ("float32", "float64"):
            got = NumpyAdapter().gradients(case, dtype, "cpu")
            j, k = np.argsort(-np.abs(got["W1"]).sum(axis=1))[:2]  # two live units (relu
            for t in ("W1", "b1"):  # can leave units dead, their rows both zero)
                got[t][[j, k]] = got[t][[k, j]]
            worst = min(worst, max(ratio(case, got, k, dtype) for k in ("W1", "b1")))
            n += 1
    return worst, n


def off_entry_long_batch() -> float:
    spec = matrix.Spec((5, 4, 3), 1 << 20, 0, ("sigmoid", "sigmoid"))
    case = matrix.draw(spec)
    got = planted.OffByOneEntry().gradients(case, "float64", "cpu")
    return ratio(case, got, "W1", "float64")


def missing_prime_middle() -> float:
    spec = matrix.Spec((784, 64, 32, 16, 10), 8, 0, ("tanh",) * 4)
    case = matrix.draw(spec)
    got = planted.MissingPrimeMiddle().gradients(case, "float32", "cpu")
    return max(ratio(case, got, k, "float32") for k in ("W2", "b2"))


def tf32_groups(specs) -> tuple[int, int, float]:
    failed, least = 0, np.inf
    for spec in specs:
        case = matrix.draw(spec)
        got = planted.RoundedOperands().gradients(case, "float32", "cpu")
        ref = gradients(case)
        b = functools.partial(bounds, case)
        diag = diagnose(got, ref, "float32", b, functools.partial(simulate, case))
        failed += diag.fails
        least = min(least, max(compare(k, got[k], ref[k], b("float32")[k], "float32").max_ratio
                               for k in ref))
    return failed, len(specs), least


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=404)
    ap.add_argument("--groups", type=int, default=2004)
    args = ap.parse_args()
    default = matrix.specs(matrix.named(DEFAULT), None, range(1))
    print(f"one ∂W2 entry + 1e-4·max, float32, {len(default)} default specs: smallest ratio "
          f"{shifted_entry(default):.3g}", flush=True)
    rows = matrix.specs(matrix.named(["seed", "minibatch"]), None, range(args.seeds))
    worst, n = swapped_rows(rows)
    print(f"two live hidden units swapped in ∂W1, ∂b1: {n} groups, smallest ratio {worst:.3g}",
          flush=True)
    print(f"one ∂W1 entry × (1 + 1e-9), float64, 5-4-3 at 2²⁰: ratio {off_entry_long_batch():.3g}",
          flush=True)
    print(f"σ′ missing in layer 2 of 784-64-32-16-10 tanh b8, float32: ratio "
          f"{missing_prime_middle():.3g}", flush=True)
    shapes = matrix.named(["seed", "minibatch", "small", "deep", "nearzero"])
    per = -(-args.groups // sum(len(s[2]) for s in shapes))
    specs = matrix.specs(shapes, None, range(per))[:args.groups]
    failed, n, least = tf32_groups(specs)
    print(f"tf32 products: {failed} of {n} float32 groups fail; smallest greatest ratio "
          f"{least:.3g}", flush=True)


if __name__ == "__main__":
    main()
