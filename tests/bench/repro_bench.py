"""Print how each planted bug shrinks and how long its exported script takes to run alone.

    python tests/bench/repro_bench.py [--size 784x16x10-b32] [--pair relu-sigmoid]
                                      [--seconds 30]

For every planted value bug (tests/fixtures/planted.py): the reading on the start case, the
shrunk case, how many cases the search judged and its seconds, then the script's exit status and
wall time when run as a maintainer would (`python -I`, another folder, no PYTHON* variables).
The scripts are written where `--repro reports/out/…` puts them, inside the checkout, so that
they find the suite and the planted adapters relative to themselves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.engine.matrix import Config  # noqa: E402
from tests.engine.repro import export  # noqa: E402
from tests.engine.shrink import sigmas_of, size_text, spec_of  # noqa: E402
from tests.fixtures import planted  # noqa: E402

BUGS = (  # adapter, dtype, tensor
    (planted.RoundedOperands, "float32", "W1"), (planted.TruncatedOperands, "float32", "W1"),
    (planted.BF16Operands, "float32", "W1"), (planted.TruncatedBF16Operands, "float32", "W1"),
    (planted.Float32Leak, "float64", "W1"), (planted.MissingPrime, "float64", "W2"),
    (planted.MeanLoss, "float32", "W1"), (planted.OffByOneEntry, "float64", "W1"),
)


def run_alone(script: Path, cwd: str) -> tuple[int, float, str]:
    """Return (exit status, seconds, last line) of the script run isolated, elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-I", str(script)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    last = (proc.stdout.strip().splitlines() or [proc.stderr.strip()[-80:]])[-1]
    return proc.returncode, time.perf_counter() - start, last


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="784x16x10-b32")
    p.add_argument("--pair", default="relu-sigmoid")
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    sizes, batch = args.size.split("-b")
    print(f"start: {args.size} {args.pair}, seed 0")
    spec = spec_of([int(n) for n in sizes.split("x")], int(batch), 0, args.pair.split("-"))
    print(f"{'adapter':24} {'dtype':8} {'tensor':6} {'shrunk to':22} {'cases':>5} "
          f"{'shrink s':>8} {'exit':>4} {'run s':>6}  reads")
    out = ROOT / "reports" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as folder, tempfile.TemporaryDirectory() as away:
        for cls, dtype, tensor in BUGS:
            config = Config(cls.name, "cpu", dtype)
            text, shrunk = export(cls(), config, spec, tensor, "bench", args.seconds, folder)
            script = Path(folder) / f"{cls.name}.py"
            script.write_text(text)
            rc, seconds, last = run_alone(script, away)
            to = f"{size_text(shrunk.spec)} {'-'.join(sigmas_of(shrunk.spec))}"
            print(f"{cls.name:24} {dtype:8} {tensor:6} {to:22} {shrunk.evaluations:>5} "
                  f"{shrunk.seconds:8.2f} {rc:>4} {seconds:6.2f}  {shrunk.reads}"
                  + ("" if shrunk.complete else " (budget spent)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
