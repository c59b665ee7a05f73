"""The CUDA check: every adapter on the GPU, per precision setting, against the expectations.

    python tests/bench/gpu_check.py [--quick]

Runs each built-in adapter on device cuda, float32 and float64, under each float32 matmul
setting, on the seed's 784-16-10 net at batch 1, 32 and 1024; prints per config the items
passed, the greatest ratio |g − ref| / bound, the fingerprint and the median gradient time;
then checks what DESIGN.md measured on an H200: every float64 config passes, torch float32
passes by default and under "highest", torch "high" and JAX's default float32 read tf32 and
fail, JAX "highest" passes. Exit status 0 when every expectation holds, 1 otherwise, 2 when
there is no CUDA device for a framework.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU with torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import adapters  # noqa: E402
from reference.compare import compare, fingerprint  # noqa: E402
from tests.engine import matrix  # noqa: E402
from tests.engine.conformance import bounds_for, case_for, reference_for, simulated_for  # noqa: E402

PRECISIONS = {"torch": ("default", "highest", "high", "medium"),
              "jax": ("default", "highest", "high", "bfloat16")}
EXPECT = [  # (adapter prefix, dtype, precision, passes, fingerprint or None)
    ("torch", "float64", None, True, "float64"),
    ("jax", "float64", None, True, "float64"),
    ("torch", "float32", "default", True, "float32"),
    ("torch", "float32", "highest", True, "float32"),
    ("torch", "float32", "high", False, "tf32"),
    ("jax", "float32", "default", False, "tf32"),
    ("jax", "float32", "highest", True, "float32"),
]


def run_config(adapter, dtype: str, precision: str, specs, repeats: int) -> dict:
    """Return pass counts, greatest ratio, fingerprints and timing of one config."""
    setting = {} if precision == "default" else {"precision": precision}
    passed = total = 0
    worst, prints, times = 0.0, set(), []
    for spec in specs:
        call = functools.partial(adapter.gradients, case_for(spec), dtype, "cuda", **setting)
        got = call()
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        ref = reference_for(spec)
        for t in ref:
            cmp = compare(t, got[t], ref[t], bounds_for(spec, dtype)[t], dtype)
            passed, total = passed + cmp.passed, total + 1
            worst = max(worst, cmp.max_ratio)
        prints.add(fingerprint(got, ref, functools.partial(bounds_for, spec),
                               functools.partial(simulated_for, spec)))
    return {"passed": passed, "total": total, "worst": worst, "fingerprint": prints,
            "median_ms": 1e3 * statistics.median(times) if times else float("nan")}


def check(results: dict) -> list[str]:
    """Return one line per expectation, PASS or FAIL."""
    lines = []
    for prefix, dtype, precision, passes, reads in EXPECT:
        rows = {k: v for k, v in results.items() if k[0].split("_")[0] == prefix
                and k[1] == dtype and (precision is None or k[2] == precision)}
        ok = bool(rows) and all((v["passed"] == v["total"]) == passes and
                                (reads is None or v["fingerprint"] <= {reads})
                                for v in rows.values())
        what = f"{prefix} {dtype} {precision or 'every setting'}"
        lines.append(f"{'PASS' if ok else 'FAIL'}  {what}: expected "
                     f"{'pass' if passes else 'fail'}, reads {reads}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 1 and 32 only, no timing")
    args = ap.parse_args()
    batches = (1, 32) if args.quick else (1, 32, 1024)
    specs = matrix.specs(matrix.grid([(784, 16, 10)], list(batches)),
                         [("sigmoid", "sigmoid"), ("relu", "tanh")], range(1))
    results = {}
    print(f"{'adapter':<11}{'dtype':<9}{'setting':<10}{'passed':>9}{'max ratio':>11}"
          f"{'reads':>16}{'ms/grad':>9}")
    for adapter in adapters.builtin(list(adapters.BUILTIN)):
        for dtype in ("float32", "float64"):
            for precision in PRECISIONS[adapter.framework]:
                try:
                    r = run_config(adapter, dtype, precision, specs, 0 if args.quick else 5)
                except adapters.DeviceUnavailable as exc:
                    print(f"no CUDA: {exc}")
                    return 2
                results[(adapter.name, dtype, precision)] = r
                print(f"{adapter.name:<11}{dtype:<9}{precision:<10}"
                      f"{r['passed']:>4}/{r['total']:<4}{r['worst']:>11.3g}"
                      f"{','.join(sorted(r['fingerprint'])):>16}{r['median_ms']:>9.2f}")
    lines = check(results)
    print("\n".join(lines))
    return 0 if all(ln.startswith("PASS") for ln in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
