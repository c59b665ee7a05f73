"""Measure entry-granular mode's rate: items a second, serial, recording results.

    python tests/bench/entries_bench.py [--repeat 1] [--floor] [-- extra pytest args]

Runs `pytest tests/test_conformance.py --entries --cases seed --frameworks torch --dtypes
float64 --results TMP` (76,380 items) in a child process and prints its wall time, pytest's
own session time and the items a second by each. With --floor, also times pytest running as
many trivial parametrized items the usual way (what pytest's own per-item protocol costs here).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["tests/test_conformance.py", "--entries", "--cases", "seed", "--frameworks", "torch",
        "--dtypes", "float64", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
TRIVIAL = "import pytest\n\n\n@pytest.mark.parametrize('i', range({n}))\ndef test_t(i):\n    pass\n"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run pytest; return wall seconds, pytest's session seconds and the items that passed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    found = re.search(r"(\d+) passed.* in ([\d.]+)s", last)
    if done.returncode != 0 or not found:
        sys.exit(f"entries_bench: the run failed ({done.returncode}): {last}")
    return wall, float(found.group(2)), int(found.group(1))


def line(name: str, wall: float, session: float, items: int) -> str:
    return (f"{name}: {items} items; wall {wall:.1f} s ({items / wall:,.0f} items/s), "
            f"pytest's session {session:.1f} s ({items / session:,.0f} items/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--floor", action="store_true")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "entries.json"
        for _ in range(args.repeat):
            cmd = [sys.executable, "-m", "pytest", *ARGS, "--results", str(results), *args.extra]
            wall, session, items = timed(cmd, ROOT)
            print(line("entries", wall, session, items) +
                  f"; results {results.stat().st_size / 1e6:.1f} MB", flush=True)
        if args.floor:
            (Path(tmp) / "test_floor.py").write_text(TRIVIAL.format(n=items))
            cmd = [sys.executable, "-m", "pytest", "test_floor.py", "-q", "-p", "no:randomly",
                   "-p", "no:cacheprovider"]
            print(line("trivial items, pytest's usual protocol", *timed(cmd, Path(tmp))))
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
