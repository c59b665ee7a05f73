"""Print, over the ladder of reduced-precision issue sizes, how the tier and the per-product
reading do: one line per (size, batch, adapter, dtype).

    python tests/bench/products_ladder.py [--sizes 784x16x10,…] [--batches 1,8,…]
                                          [--adapters torch,jax,…|all] [--pair tanh-sigmoid]

Lines:
- correct runs (every built-in framework and the order adapters of tests/fixtures/orders.py, float32
  and float64): the greatest |g − ref| / tier and what the diagnosis read (it must pass);
- torch under `medium` (`torch_medium`): where this CPU runs a product in bf16 it must fail
  reading bfloat16; elsewhere pass;
- each planted per-product arithmetic (tests/fixtures/planted.py PER_PRODUCT, and every product in
  tf32 or bf16): outcome, the greatest ratio, the reading;
- per case: the median single-entry relative change the float32 tier catches, per W tensor,
  and the seconds of the reference gradient, the tier, and the tier plus the detection.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import adapters  # noqa: E402
from reference.bounds import bounds  # noqa: E402
from reference.compare import compare, diagnose  # noqa: E402
from reference.network import forward, gradients  # noqa: E402
from reference.simulate import simulate  # noqa: E402
from tests.engine.matrix import Spec, draw  # noqa: E402
from tests.fixtures import orders, planted  # noqa: E402

SIZES = ("784x16x10", "784x64x10", "784x256x10", "784x64x32x16x10",
         "784x64x64x64x64x64x64x64x10")
BATCHES = (1, 8, 64, 512, 4096, 65536)
ORDER_WORK = 2e9
"""Products beyond which the NumPy order adapters (vectorised, not BLAS) are left out."""
FRAMEWORK_WORK = 2e10
"""Products beyond which only torch and jax run (the others take minutes there)."""


def work(sizes, batch) -> float:
    return batch * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


class Medium:
    """torch's raw-autograd idiom under `torch.set_float32_matmul_precision("medium")`."""

    name = "torch_medium"
    framework = "torch"

    def gradients(self, case, dtype, device):
        from adapters.torch import TorchAutograd

        return TorchAutograd().gradients(case, dtype, device, precision="medium")


def line(case_name, name, dtype, got, ref, tier, diag) -> str:
    ratio = max(compare(k, got[k], ref[k], tier[k], dtype).max_ratio for k in ref)
    outcome = "FAIL" if diag.fails else "pass"
    return f"{case_name:<30}{name:<26}{dtype:<9}{outcome:<6}{ratio:>10.3g}  {diag}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--adapters", default="all")
    ap.add_argument("--pair", default="tanh-sigmoid", help="σ of the hidden layers - σ of the last")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    hidden, last = args.pair.split("-")
    names = list(adapters.BUILTIN) if args.adapters == "all" else args.adapters.split(",")
    built = adapters.builtin([n for n in names if n in adapters.BUILTIN])
    extra = [orders.ORDERS[n]() for n in orders.ORDERS if args.adapters == "all" or n in names]
    reduced = [*planted.PER_PRODUCT.values(), planted.RoundedOperands, planted.BF16Operands]
    print(f"{'case':<30}{'adapter':<26}{'dtype':<9}{'':<6}{'ratio':>10}  reading")
    for text in args.sizes.split(","):
        sizes = tuple(int(v) for v in text.split("x"))
        for batch in map(int, args.batches.split(",")):
            if batch > 4096 and len(sizes) > 3:
                continue  # 65,536 on the 2-layer nets only
            spec = Spec(sizes, batch, args.seed, (hidden,) * (len(sizes) - 2) + (last,))
            case, name = draw(spec), f"{text}-b{batch}"
            t = time.perf_counter()
            ref = gradients(case)
            t_ref = time.perf_counter() - t
            fwd = forward(case)
            t = time.perf_counter()
            tier32 = bounds(case, "float32", fwd)
            t_tier = time.perf_counter() - t
            tiers = {"float32": tier32, "float64": bounds(case, "float64", fwd)}
            bounds_of = tiers.__getitem__
            simulate_of = functools.cache(lambda a, r=None, c=case: simulate(c, a, r))
            t = time.perf_counter()
            diagnose(simulate_of("float32"), ref, "float32", bounds_of, simulate_of)
            t_detect = time.perf_counter() - t
            medians = {k: float(np.median((tier32[k] / np.abs(ref[k]))[ref[k] != 0]))
                       for k in ref if k.startswith("W")}
            print(f"# {name}: reference {t_ref:.3f} s, tier {t_tier:.3f} s, detection "
                  f"{t_detect:.3f} s ((tier + detection) / reference "
                  f"{(t_tier + t_detect) / max(t_ref, 1e-9):.2f}); median single-entry change "
                  "caught (float32): " + ", ".join(f"{k} {v:.2g}" for k, v in medians.items()),
                  flush=True)
            runs = [a for a in built if work(sizes, batch) <= FRAMEWORK_WORK
                    or a.framework in ("torch", "jax")]
            runs += [a for a in extra if work(sizes, batch) <= ORDER_WORK]
            if args.adapters == "all" or "torch_medium" in names:
                runs.append(Medium())
            for a in runs:
                for dtype in ("float32", "float64"):
                    if getattr(a, "name", "") == "fma_sums" and dtype == "float64":
                        continue
                    if isinstance(a, Medium) and dtype == "float64":
                        continue
                    try:
                        got = a.gradients(case, dtype, "cpu")
                    except Exception as exc:  # noqa: BLE001 - say which adapter and go on
                        print(f"{name:<30}{a.name:<26}{dtype:<9}could not run: {exc!r}"[:200])
                        continue
                    diag = diagnose(got, ref, dtype, bounds_of, simulate_of)
                    print(line(name, a.name, dtype, got, ref, tiers[dtype], diag), flush=True)
            for cls in reduced:
                got = cls().gradients(case, "float32", "cpu")
                diag = diagnose(got, ref, "float32", bounds_of, simulate_of)
                print(line(name, cls.name, "float32", got, ref, tier32, diag), flush=True)


if __name__ == "__main__":
    main()
