"""The benchmark scripts still run against the code they measure (smallest settings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / name), *args],
                          cwd=ROOT, capture_output=True, text=True)


def test_separation_prints_the_table_and_a_margin():
    """separation.py on the seed case: correct items inside their bounds and no correct group
    failed; planted value bugs outside; reduced precision caught in every group and named as
    its arithmetic in most (one sample is thin evidence: it may read a wrong gradient)."""
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    done = script("separation.py", "--cases", "seed")
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    found = re.fullmatch(r"separation: correct ≤ (\S+) with 0 groups failed; planted bugs ≥ "
                         r"(\S+) per item; reduced precision caught in every group, named in "
                         r"(\d+) of (\d+), t ≥ (\S+)", last)
    assert found, last
    correct, planted, right, of, t = map(float, found.groups())
    assert correct < 1 < planted and right >= of / 2 and t >= 6


def test_gpu_check_says_when_there_is_no_cuda():
    """gpu_check.py on a machine without CUDA exits 2 naming why; with CUDA it checks."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run tests/bench/gpu_check.py itself")
    done = script("gpu_check.py", "--quick")
    assert done.returncode == 2 and "no CUDA" in done.stdout


def test_orders_bench_prints_a_row_per_order():
    """orders.py on the chain: one row per order and dtype, every one inside its bound."""
    done = script("orders.py", "--sizes", "1x1x1-b1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("9 runs, 0 past their bound")


def test_repro_bench_shrinks_every_planted_bug_and_its_script_fails():
    """repro_bench.py on a small case: every planted bug's script exits 1 with its reading."""
    done = script("repro_bench.py", "--size", "5x4x3-b3", "--pair", "tanh-softplus")
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[2:]
    assert len(rows) == 8 and all(row.split()[8] == "1" for row in rows), done.stdout


def test_entries_bench_prints_the_rate_and_the_floor():
    """entries_bench.py on the chain cases: both rates, and pytest's floor for as many items."""
    pytest.importorskip("torch")
    done = script("entries_bench.py", "--floor", "--", "--cases", "chain")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    found = re.fullmatch(r"entries: (\d+) items; wall \S+ s \(\S+ items/s\), pytest's session "
                         r"\S+ s \(\S+ items/s\); results \S+ MB", lines[0])
    assert found and int(found.group(1)) > 0, lines
    assert lines[1].startswith(f"trivial items, pytest's usual protocol: {found.group(1)} items; "
                               "wall "), lines


def test_hvp_peers_reads_every_planted_second_order_bug():
    """hvp_peers.py: a row per planted second-order bug and per control; the suite reads every
    bug in both dtypes and passes the controls."""
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    done = script("hvp_peers.py", "--size", "3x2x2-b2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = [ln.split(" | ") for ln in lines[2:-1]]
    assert len(rows) == 10 and lines[-1].startswith("hvp_peers: suite caught 8 of 8 ")
    assert all(r[2:4] == ["passed", "passed"] for r in rows if r[0].startswith("control"))
    assert all(r[1] == "passed" for r in rows)  # first order exact, bugs and controls alike


def test_arithmetics_bench_reads_every_planted_arithmetic():
    """arithmetics.py at one seed: 8 planted arithmetics × 10 default cases read, and none
    reads something other than its arithmetic, a pass or too little evidence (the saturated
    relu-sigmoid case's confusions are at other seeds)."""
    done = script("arithmetics.py", "--seeds", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ("80 readings; 0 read neither the arithmetic, a pass "
                                            "nor too little evidence"), done.stdout
