"""Print how far each summation order's correct adapter stays inside the bound, size by size.

    python tests/bench/orders.py [--sizes 784x16x10-b1024,…] [--orders sequential_sums,…]
                                 [--dtypes float32,float64] [--pairs sigmoid-sigmoid] [--seed 0]

For every order (tests/fixtures/orders.py) × dtype × size: the greatest |g − ref| / bound of
each tensor (bounds from tests.engine.conformance.bounds_for, the suite's own) and the adapter's
time. A correct adapter must stay ≤ 1 everywhere; a row past 1 is marked FAIL. Per size it also
prints how long the reference gradients and the float32 bounds took. fma_sums runs in float32
only (in float64 it sums as sequential_sums does).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reference.compare import compare  # noqa: E402
from tests.engine import conformance  # noqa: E402
from tests.engine.matrix import Spec  # noqa: E402
from tests.fixtures.orders import ORDERS  # noqa: E402

LADDER = (
    "784x16x10-b1", "784x16x10-b32", "784x16x10-b1024", "784x16x10-b8192", "784x16x10-b65536",
    "784x256x10-b1024", "784x256x10-b8192", "784x4096x10-b32",
    "5x4x3-b262144", "5x4x3-b1048576",
)
TENSORS = ("W1", "b1", "W2", "b2")


def parse_size(text: str) -> tuple[tuple[int, int, int], int]:
    """Return ((n0, n1, n2), batch) of `784x16x10-b1024`."""
    sizes, batch = text.split("-b")
    n0, n1, n2 = (int(v) for v in sizes.split("x"))
    return (n0, n1, n2), int(batch)


def timed(f, *args):
    """Return f(*args) and the seconds it took."""
    t = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t


def run_size(spec: Spec, orders: list[str], dtypes: list[str]) -> list[tuple]:
    """Print and return one row per (order, dtype) of one size."""
    ref, t_ref = timed(conformance.reference_for, spec)
    rows = []
    for dtype in dtypes:
        bound, t_bound = timed(conformance.bounds_for, spec, dtype)
        print(f"# {spec.id} {dtype}: reference {t_ref:.2f} s, bounds {t_bound:.2f} s", flush=True)
        for name in orders:
            if name == "fma_sums" and dtype == "float64":
                continue
            got, t = timed(ORDERS[name]().gradients, conformance.case_for(spec), dtype, "cpu")
            r = [compare(k, got[k], ref[k], bound[k], dtype).max_ratio for k in TENSORS]
            rows.append((spec, dtype, name, r, t))
            print(row(*rows[-1]), flush=True)
    for cache in (conformance.case_for, conformance.reference_for, conformance.bounds_for):
        cache.cache_clear()  # one large case alive at a time
    return rows


def row(spec: Spec, dtype: str, name: str, r: list[float], t: float) -> str:
    """Return one printed line: case, dtype, order, ratio per tensor, greatest, time."""
    n0, n1, n2 = spec.sizes
    case = f"{n0}x{n1}x{n2}-b{spec.batch}"
    flag = "FAIL" if max(r) > 1 else ""
    return (f"{case:<20}{dtype:<9}{name:<17}" + "".join(f"{v:>9.3g}" for v in r)
            + f"{max(r):>9.3g}{t:>8.2f}s {flag}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(LADDER))
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--pairs", default="sigmoid-sigmoid")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    orders = args.orders.split(",")
    unknown = set(orders) - set(ORDERS)
    if unknown:
        ap.error(f"unknown orders {sorted(unknown)}; known: {', '.join(ORDERS)}")
    print(f"{'case':<20}{'dtype':<9}{'order':<17}" + "".join(f"{t:>9}" for t in TENSORS)
          + f"{'max':>9}{'time':>9}")
    rows = []
    for size in args.sizes.split(","):
        sizes, batch = parse_size(size)
        for pair in args.pairs.split(","):
            sigmas = tuple(pair.split("-"))
            rows += run_size(Spec(sizes, batch, args.seed, sigmas), orders, args.dtypes.split(","))
    failing = [r for r in rows if max(r[3]) > 1]
    print(f"{len(rows)} runs, {len(failing)} past their bound; greatest ratio "
          f"{max(max(r[3]) for r in rows):.3g}")
    for r in failing:
        print("FAIL", row(*r))


if __name__ == "__main__":
    main()
