"""Shrinking and exported reproductions: each planted bug shrinks to a case that fails the same
way, and its script fails alone, in a fresh interpreter without the suite on sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reports import repro as render
from tests import planted
from tests.matrix import Config
from tests.repro import data, export
from tests.shrink import ladder, numbers, shrink, spec_of, verdict

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
START = spec_of((20, 8, 5), 4, 0, ("tanh", "sigmoid"))
"""The case each planted bug is found on before it is shrunk."""

BUGS = {  # planted adapter → (dtype, tensor, what the diagnosis reads, words of its sentence)
    planted.RoundedOperands: ("float32", "W1", "tf32", "rounded to tf32"),
    planted.TruncatedOperands: ("float32", "W1", "tf32-truncated", "truncated to tf32"),
    planted.BF16Operands: ("float32", "W2", "bfloat16", "rounded to bfloat16"),
    planted.Float32Leak: ("float64", "W1", "float32", "computed in float32"),
    planted.MissingPrime: ("float64", "W2", "wrong gradient", "wrong gradient: 1 entry"),
    planted.MeanLoss: ("float32", "b1", "wrong gradient", "wrong gradient"),
    planted.OffByOneEntry: ("float64", "W1", "wrong gradient", "wrong gradient: 1 entry"),
}


def run_alone(script: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run a script as a maintainer would: isolated (-I: no PYTHONPATH, no script folder or
    cwd on sys.path), from another folder; return the process and its seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-I", str(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("bug", list(BUGS), ids=[b.name for b in BUGS])
def test_planted_bug_shrinks_and_its_script_fails_alone(bug, tmp_path, record_property):
    """The shrunk case fails like the original (same tensor, same reading), is no larger,
    is the same on a second search, and its script exits 1 with the same diagnosis."""
    dtype, tensor, reads, words = BUGS[bug]
    config = Config(bug.name, "cpu", dtype)
    assert verdict(bug(), config, START, tensor).reads == reads
    text, shrunk = export(bug(), config, START, tensor, f"{config.id}-{START.id}-{tensor}")
    assert shrunk.complete and shrunk.reads == reads
    assert shrunk.verdict.reads == reads and shrunk.verdict.entries
    assert numbers(shrunk.spec) <= numbers(START)
    assert shrink(bug(), config, START, tensor).spec == shrunk.spec  # deterministic
    script = tmp_path / "repro.py"
    script.write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, seconds = run_alone(script, elsewhere)
    record_property("script_seconds", seconds)
    assert proc.returncode == 1, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert words in last and "ratio" in proc.stdout
    assert "import torch" not in text and "import jax" not in text


@pytest.mark.parametrize("framework", render.FRAMEWORKS)
@pytest.mark.parametrize("precision", ["default", "highest"])
def test_builtin_template_imports_its_framework_only_and_exits_0_where_it_agrees(
        framework, precision, tmp_path):
    """A mean-loss finding rendered for torch or jax recomputes the summed cost with that
    framework alone; the framework is right, so the script says fixed and exits 0."""
    pytest.importorskip(framework)
    bug, config = planted.MeanLoss(), Config("planted_mean_loss", "cpu", "float32")
    d = data(bug, config, shrink(bug, config, START, "W1"), "item")
    text = render.render({**d, "framework": framework, "precision": precision})
    assert "sys.path" not in text
    assert not [ln for ln in text.splitlines() if ln.startswith(("import", "from"))
                and ln.split()[1].split(".")[0] not in (framework, "numpy", "sys", "platform")]
    script = tmp_path / "repro.py"
    script.write_text(text)
    proc, _ = run_alone(script, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("fixed: every entry is inside its bound")
    assert precision == "default" or "highest" in proc.stdout  # applied and printed


def test_ladder_is_small_first():
    """Widths are tried smallest first, each below the current one."""
    assert ladder(13) == [1, 2, 3, 4, 6, 8, 12]
    assert ladder(1) == []


def test_run_exports_one_script_per_failing_group_and_the_report_links_it(pytester):
    """--repro DIR writes a script per failing group and none for a correct adapter; the
    results keep where it went and the shrunk size; the page links it; `python -m reports
    repro` exports an item of the results file."""
    out = pytester.path / "repro"
    result = pytester.runpytest_inprocess(
        CONFORMANCE, "-p", "no:randomly", "--adapter", "tests.planted:MissingPrime",
        "--adapter", "adapters.example:adapter", "--cases", "small", "--repro", str(out),
        "--results", "r.json", "--report", "r.html")
    result.assert_outcomes(failed=2, passed=14)
    scripts = sorted(p.name for p in out.iterdir())
    assert scripts == [f"repro-planted_missing_prime-cpu-{dt}-tanh-softplus-5x4x3-b3-s0.py"
                       for dt in ("float32", "float64")]
    doc = json.loads((pytester.path / "r.json").read_text())
    failing = [i for i in doc["items"] if i["outcome"] == "failed"]
    assert {i["details"]["repro"]["shrunk"] for i in failing} == {"1x1 b1"}  # one layer
    assert all("repro" not in i["details"] for i in doc["items"] if i["outcome"] == "passed")
    page = (pytester.path / "r.html").read_text()
    assert page.count('class="repro"') == 2 and "shrunk from 5x4x3 b3 to <b>1x1 b1</b>" in page
    cli = subprocess.run([sys.executable, "-m", "reports", "repro", str(pytester.path / "r.json"),
                          failing[0]["id"], "-o", str(pytester.path / "cli.py")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    proc, _ = run_alone(pytester.path / "cli.py", pytester.path)
    assert proc.returncode == 1 and "wrong gradient: 1 entry" in proc.stdout
    passed = next(i["id"] for i in doc["items"] if i["outcome"] == "passed")
    cli = subprocess.run([sys.executable, "-m", "reports", "repro", str(pytester.path / "r.json"),
                          passed, "-o", str(pytester.path / "none.py")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "nothing to reproduce" in cli.stderr
    assert not (pytester.path / "none.py").exists()


def test_budget_cuts_the_search_and_says_so():
    """With no time left after the first judgement, the search stops and reports how far it
    got: the original case, marked incomplete, still failing the same way."""
    bug, config = planted.MissingPrime(), Config("planted_missing_prime", "cpu", "float64")
    cut = shrink(bug, config, START, "W2", budget=0.0)
    assert not cut.complete and cut.spec == START and cut.reads == "wrong gradient"
    assert "budget spent" in cut.summary()


def test_a_failure_that_does_not_come_back_is_not_exported():
    """A correct adapter's item does not fail when called again: nothing to shrink."""
    from adapters.example import NumpyAdapter
    from tests.repro import NotExported

    with pytest.raises(NotExported, match="did not fail again"):
        export(NumpyAdapter(), Config("numpy", "cpu", "float32"), START, "W1", "item")


def test_an_unshrunk_case_embeds_every_input_and_still_fails(tmp_path):
    """With no time to shrink, the script carries the whole original case, wrapped in lines,
    and fails on it."""
    bug, config = planted.Float32Leak(), Config("planted_float32_leak", "cpu", "float64")
    text, shrunk = export(bug, config, START, "W1", "item", budget=0.0)
    assert shrunk.spec == START and "budget spent" in text
    assert max(map(len, text.splitlines())) < 140
    script = tmp_path / "repro.py"
    script.write_text(text)
    proc, _ = run_alone(script, tmp_path)
    assert proc.returncode == 1 and "computed in float32" in proc.stdout
    assert proc.stdout.count("W1[") == 8  # the eight worst of the failing entries
