"""Print what the suite reads of every planted catalogued mistake (reference/mistakes.py), per
case and dtype: the mistake's name where it is named, `wrong: k` where only a count is, `pass`
where the case cannot tell the mistake from the correct gradients.

    python tests/bench/mistakes.py [--large]

Cases: the default matrix (each case with each of its activation tuples, seed 0), a 2-layer
and a 4-layer net with square and alike layers (16-16-10 and 784-16-16-16-10, batch 8), and
with --large 784-256-10 at batch 4096. Also the one-entry bug (`OffByOneEntry`, 1e-9 in
float64, 1e-3 in float32), which must read `wrong gradient: 1 entry` wherever it fails.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from reference.bounds import bounds  # noqa: E402
from reference.compare import WRONG, diagnose  # noqa: E402
from reference.mistakes import nearest, open_to  # noqa: E402
from reference.network import gradients  # noqa: E402
from reference.simulate import simulate  # noqa: E402
from tests.engine import matrix  # noqa: E402
from tests.fixtures import planted  # noqa: E402
from tests.test_mistakes import SPECS  # noqa: E402


def specs(large: bool) -> list[matrix.Spec]:
    """Return the cases the table reads, in its column order."""
    out = matrix.specs(matrix.named(list(matrix.CASES)), None, range(1)) + list(SPECS)
    if large:
        out.append(matrix.Spec((784, 256, 10), 4096, 0, ("relu", "sigmoid")))
    return out


class OneEntry(planted.NumpyAdapter):
    """The largest ∂W1 entry off by a relative 1e-9 (float64) or 1e-3 (float32)."""

    name = "one_entry"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        i = np.unravel_index(np.argmax(np.abs(g["W1"])), g["W1"].shape)
        g["W1"][i] *= 1 + (1e-9 if dtype == "float64" else 1e-3)
        return g


def reading(adapter, case, dtype: str) -> tuple[str, str, float]:
    """Return the short reading, the full one, and the seconds `nearest` took."""
    got, ref = adapter.gradients(case, dtype, "cpu"), gradients(case)
    if any(np.shape(got[k]) != ref[k].shape for k in ref):
        return "shape", "a tensor of the wrong shape (a contract failure, not read)", 0.0
    bounds_of = functools.cache(functools.partial(bounds, case))
    diag = diagnose(got, ref, dtype, bounds_of, functools.partial(simulate, case), case=case)
    if not open_to(diag):
        return ("pass" if not diag.fails else diag.reads), str(diag), 0.0
    start = time.perf_counter()
    match = nearest(case, got, ref, bounds_of(dtype))
    seconds = time.perf_counter() - start
    if match is not None:
        return "+".join(match.names), match.label, seconds
    if diag.reads != WRONG:
        return diag.reads, str(diag), seconds
    return f"wrong: {diag.failing}", str(diag), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add 784-256-10 at batch 4096")
    args = parser.parse_args()
    columns = specs(args.large)
    rows = {**{n: (a(), m) for n, (a, m) in planted.KNOWN.items()}, "one_entry": (OneEntry(),
                                                                                  "1 entry")}
    wrong, slowest = [], 0.0
    for c, spec in enumerate(columns):
        print(f"[{c}] {spec.id}")
    for name, (adapter, expect) in rows.items():
        print(f"\n{name} (expect {expect})")
        for c, spec in enumerate(columns):
            case = matrix.draw(spec)
            cells = []
            for dtype in ("float32", "float64"):
                short, full, seconds = reading(adapter, case, dtype)
                slowest = max(slowest, seconds)
                cells.append(f"{dtype[-2:]}: {short}")
                named = (expect in short.split("+") or (expect == "1 entry" and short == "wrong: 1")
                         or (expect == "mean-both" and spec.batch == 1 and short == "mean-outputs"))
                if short not in ("pass", "shape") and not named:
                    wrong.append(f"{name} {spec.id} {dtype}: {full}")
            print(f"  [{c}] " + "  ".join(cells))
    print(f"\nslowest nearest: {slowest:.2f} s")
    print(f"not named as planted: {len(wrong)}")
    for line in wrong:
        print("  " + line)


if __name__ == "__main__":
    main()
