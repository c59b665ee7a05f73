"""Print what the suite reads of every planted per-product arithmetic (tf32 or bf16 in some or
all matrix products of a float32 run, tests/fixtures/planted.py), over the default cases and
seeds: per adapter, the groups not read as its arithmetic, with their reading.

    python tests/bench/arithmetics.py [--seeds 6]

`pass` is a group whose errors the case cannot show (every entry within its bound, no fit);
`not enough evidence` one too small to name an arithmetic (the 1-1-1 chain's 2 rows).
"""

from __future__ import annotations

import argparse
import collections
import functools
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reference.bounds import bounds  # noqa: E402
from reference.compare import diagnose  # noqa: E402
from reference.mistakes import named  # noqa: E402
from reference.network import gradients  # noqa: E402
from reference.simulate import simulate  # noqa: E402
from tests.engine import matrix  # noqa: E402
from tests.fixtures import planted  # noqa: E402

PLANTED = {planted.RoundedOperands: "tf32", planted.TruncatedOperands: "tf32",
           planted.BF16Operands: "bfloat16", planted.TruncatedBF16Operands: "bfloat16",
           planted.TF32Forward: "tf32", planted.BF16FirstLayer: "bfloat16",
           planted.BF16OneProduct: "bfloat16", planted.AutocastOutputs: "bfloat16"}
"""Each planted arithmetic and the name its reading must begin with."""


def reading(adapter, spec: matrix.Spec) -> str:
    """Return the reading of the adapter's float32 gradients on the spec's case."""
    case = matrix.draw(spec)
    got, ref = adapter.gradients(case, "float32", "cpu"), gradients(case)
    bounds_of = functools.cache(functools.partial(bounds, case))
    diag = diagnose(got, ref, "float32", bounds_of, functools.partial(simulate, case), case=case)
    diag = named(diag, case, got, ref, bounds_of("float32"))
    return "pass" if not diag.fails else str(diag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0 … N−1 (default 6)")
    args = parser.parse_args()
    specs = matrix.specs(matrix.named(list(matrix.CASES)), None, range(args.seeds))
    total = wrong = 0
    for adapter, reads in PLANTED.items():
        off: collections.Counter = collections.Counter()
        for spec in specs:
            text = reading(adapter(), spec)
            total += 1
            if not text.startswith(reads):
                off[re.sub(r"-s\d+", "", spec.id), text] += 1
                wrong += not (text == "pass" or text.endswith("name an arithmetic"))
        print(f"{adapter.name} (reads {reads})")
        for (case, text), n in sorted(off.items()):
            print(f"  {n}× {case}: {text}")
    print(f"{total} readings; {wrong} read neither the arithmetic, a pass nor too little "
          "evidence")


if __name__ == "__main__":
    main()
