"""Time the default conformance matrix, cold, against the floor measured in the same run.

    python tests/bench/bench_matrix.py [--repeat 3] [-- extra pytest args]

Floor: a fresh `python -c` that imports numpy and every built-in framework that is installed
(torch, jax, tensorflow, keras, autograd, tinygrad, flax, equinox: the matrix imports each of
them too, and TensorFlow alone takes seconds) and computes one gradient (the torch adapter on
the seed's 784-16-10 case). Matrix: a fresh `python -m pytest` of
tests/test_conformance.py with the given arguments (default: the README's main command's).
Both run as new processes each time, so nothing is warm but the OS file cache. Prints the
median of each and their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORTS = ("torch", "jax", "tensorflow", "keras", "autograd", "tinygrad", "flax", "equinox")
INSTALLED = [m for m in IMPORTS if importlib.util.find_spec(m) is not None]
FLOOR = (
    "import os\n"
    "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')\n"
    "os.environ['KERAS_BACKEND'] = 'tensorflow'\n"
    f"import numpy, {', '.join(INSTALLED)}\n"
    "from reference.case import make_case\n"
    "from adapters.torch import TorchAutograd\n"
    "TorchAutograd().gradients(make_case((784, 16, 10), 1, 0, 'sigmoid', 'sigmoid'), "
    "'float32', 'cpu')\n"
)
MATRIX = [sys.executable, "-m", "pytest", "tests/test_conformance.py", "-q",
          "--require-frameworks"]


def wall(cmd: list[str]) -> float:
    """Run a command in the checkout and return its wall time; stop if it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:4])}… exited {done.returncode}:\n{done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("pytest_args", nargs="*", help="after --: extra arguments for pytest")
    args = ap.parse_args()
    floor, matrix = [], []
    for _ in range(args.repeat):
        floor.append(wall([sys.executable, "-c", FLOOR]))
        matrix.append(wall(MATRIX + args.pytest_args))
    f, m = statistics.median(floor), statistics.median(matrix)
    print(f"floor  (import numpy, {', '.join(INSTALLED)} + one gradient): median {f:.2f} s of "
          f"{', '.join(f'{t:.2f}' for t in floor)}")
    print(f"matrix ({' '.join(MATRIX[2:] + args.pytest_args)}): median {m:.2f} s of "
          f"{', '.join(f'{t:.2f}' for t in matrix)}")
    print(f"ratio  {m / f:.2f}× the floor")


if __name__ == "__main__":
    main()
