"""Shrinking and exported reproductions: each planted bug shrinks to a case that fails the same
way, and its script fails alone, in a fresh interpreter without the suite on sys.path; a script
names no path of the machine that wrote it, quotes what it read as data, and says by its exit
status whether it reproduces (1), is fixed (0) or could not run (2)."""

from __future__ import annotations

import ast
import copy
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reports import repro as render
from tests.engine.matrix import Config
from tests.engine.repro import data, export
from tests.engine.shrink import ladder, numbers, shrink, spec_of, verdict
from tests.fixtures import planted

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
START = spec_of((40, 16, 10), 8, 0, ("tanh", "sigmoid"))
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


def run_alone(script: Path, cwd: Path = ROOT, env: dict | None = None
              ) -> tuple[subprocess.CompletedProcess, float]:
    """Run a script as a maintainer would: isolated (-I: no PYTHONPATH, no script folder or
    cwd on sys.path), by default from the suite's checkout (where a script written outside it
    finds it), with `env` added; return the process and its seconds."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BPC_"))},
           **(env or {})}
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
    text, shrunk = export(bug(), config, START, tensor, f"{config.id}-{START.id}-{tensor}",
                          folder=tmp_path)
    assert shrunk.complete and shrunk.reads == reads
    assert shrunk.verdict.reads == reads and shrunk.verdict.entries
    assert numbers(shrunk.spec) <= numbers(START)
    assert shrink(bug(), config, START, tensor).spec == shrunk.spec  # deterministic
    script = tmp_path / "repro.py"
    script.write_text(text)
    proc, seconds = run_alone(script)
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
    imports = [ln.split()[1].split(".")[0] for ln in map(str.strip, text.splitlines())
               if ln.startswith(("import ", "from "))]
    assert framework in imports and set(imports) <= {framework, "numpy", "sys", "platform"}
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
        CONFORMANCE, "-p", "no:randomly", "--adapter", "tests.fixtures.planted:MissingPrime",
        "--adapter", "adapters.example:adapter", "--cases", "small", "--repro", str(out),
        "--results", "r.json", "--report", "r.html")
    result.assert_outcomes(failed=2, passed=14)
    scripts = sorted(p.name for p in out.iterdir())
    assert scripts == [f"repro-planted_missing_prime-cpu-{dt}-identity-1x1-b1-s0-W1.py"
                       for dt in ("float32", "float64")]  # named by the shrunk case
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
    proc, _ = run_alone(pytester.path / "cli.py")
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
    from tests.engine.repro import NotExported

    with pytest.raises(NotExported, match="did not fail again"):
        export(NumpyAdapter(), Config("numpy", "cpu", "float32"), START, "W1", "item")


def test_an_unshrunk_case_embeds_every_input_and_still_fails(tmp_path):
    """With no time to shrink, the script carries the whole original case, wrapped in lines,
    and fails on it."""
    bug, config = planted.Float32Leak(), Config("planted_float32_leak", "cpu", "float64")
    text, shrunk = export(bug, config, START, "W1", "item", budget=0.0, folder=tmp_path)
    assert shrunk.spec == START and "budget spent" in text
    assert max(map(len, text.splitlines())) < 140
    script = tmp_path / "repro.py"
    script.write_text(text)
    proc, _ = run_alone(script)
    assert proc.returncode == 1 and "computed in float32" in proc.stdout
    assert proc.stdout.count("W1[") == 8  # the eight worst of the failing entries


# Handing over a finding: what a script carries, what it refuses, and where it goes.


@pytest.fixture(scope="module")
def found_once(tmp_path_factory):
    """A run of the planted missing prime (float64, the small case) with --repro: its folder,
    results file and failing item."""
    where = tmp_path_factory.mktemp("found")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", CONFORMANCE, "-p", "no:randomly", "-n", "0", "--adapter",
         "tests.fixtures.planted:MissingPrime", "--cases", "small", "--dtypes", "float64",
         "--repro", str(where / "repro"), "--results", str(where / "r.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    doc = json.loads((where / "r.json").read_text())
    return where, doc


@pytest.fixture
def found(found_once):
    """The run's folder, a copy of its results to change, and that copy's failing item."""
    where, doc = found_once
    doc = copy.deepcopy(doc)
    return where, doc, next(i for i in doc["items"] if i["outcome"] == "failed")


def reports_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_an_item_id_is_quoted_as_data_in_the_script(found, tmp_path):
    """An item id holding triple quotes and code (a results file is data from anywhere) lands
    in the docstring as text: the script runs as it would, and the code never does."""
    where, doc, item = found
    planted_file = tmp_path / "PWNED"
    hostile = f'x""";open({str(planted_file)!r},"w").close();"""\\'
    item["id"] = hostile
    (tmp_path / "r.json").write_text(json.dumps(doc))
    cli = reports_cli("repro", tmp_path / "r.json", hostile, "-o", tmp_path / "h.py")
    assert cli.returncode == 0, cli.stderr
    text = (tmp_path / "h.py").read_text()
    assert hostile in ast.get_docstring(ast.parse(text))
    proc, _ = run_alone(tmp_path / "h.py")
    assert proc.returncode == 1 and "wrong gradient" in proc.stdout, proc.stderr
    assert not planted_file.exists()


def test_the_docstring_records_the_versions_it_was_found_with(found, tmp_path):
    """`reports repro` writes the versions, device and commit of the run that found the
    failure (from the results), not only those of the machine that shrinks it."""
    where, doc, item = found
    doc["runs"][0]["provenance"]["versions"]["numpy"] = "1.99.7"
    (tmp_path / "r.json").write_text(json.dumps(doc))
    cli = reports_cli("repro", tmp_path / "r.json", item["id"], "-o", tmp_path / "v.py")
    assert cli.returncode == 0, cli.stderr
    doc_text = " ".join(ast.get_docstring(ast.parse((tmp_path / "v.py").read_text())).split())
    assert f"python {platform.python_version()}, numpy 1.99.7" in doc_text
    assert "cpu: " in doc_text and "suite commit " in doc_text
    assert doc["runs"][0]["id"] in doc_text


def test_repro_refuses_to_overwrite_its_input(found, tmp_path):
    """`-o` naming the results file itself is refused in one line; the file is left as it was."""
    where, doc, item = found
    results = tmp_path / "r.json"
    shutil.copy(where / "r.json", results)
    before = results.read_bytes()
    cli = reports_cli("repro", results, item["id"], "-o", results)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "is the input" in cli.stderr and results.read_bytes() == before


@pytest.mark.parametrize("seconds", ["0", "-5", "nan"])
def test_repro_seconds_must_be_more_than_zero(found, tmp_path, seconds):
    """`--seconds` is refused as pytest's --repro-seconds is: in one line, nothing written."""
    where, doc, item = found
    cli = reports_cli("repro", where / "r.json", item["id"], "-o", tmp_path / "s.py",
                      f"--seconds={seconds}")
    assert cli.returncode == 2 and cli.stderr.strip() == (
        f"reports: --seconds must be more than 0, got {float(seconds):g}")
    assert not (tmp_path / "s.py").exists()


@pytest.mark.parametrize("script", [
    "javascript:alert(1)", "https://evil.example/r.py", "/etc/passwd", "//evil.example/r.py",
    "C:\\repro\\r.py", "repro/\x00r.py"])
def test_a_results_file_links_only_a_safe_relative_script(found, script):
    """`details.repro.script` becomes a link only as a plain relative path; anything else is
    shown by its name, unlinked."""
    from reports.html import render

    where, doc, item = found
    item["details"]["repro"]["script"] = script
    page = render(doc)
    shown = re.search(r'<p class="repro">(.*?)</p>', page, re.S).group(1)
    assert "<a" not in shown and "href" not in shown, shown


def test_the_report_links_a_script_relative_to_itself(found, tmp_path):
    """The page's link leads from the page's own folder to the script (the results' path starts
    from the run's working folder), so that the folders can move together."""
    where, doc, item = found
    script = ROOT / item["details"]["repro"]["script"]
    assert script.is_file() and not Path(item["details"]["repro"]["script"]).is_absolute()
    page_path = tmp_path / "sub" / "page.html"
    cli = reports_cli("html", where / "r.json", "-o", page_path)
    assert cli.returncode == 0, cli.stderr
    href = re.search(r'<p class="repro">reproduction: <a href="([^"]+)"',
                     page_path.read_text()).group(1)
    assert not href.startswith(("/", "file:")) and (page_path.parent / href).resolve() == \
        script.resolve()


FACTOR_ADAPTER = '''
from adapters.example import NumpyAdapter


def make(factor):
    class Scaled(NumpyAdapter):
        """Every gradient times `factor`, a class defined in a function that takes arguments."""

        name = "scaled"

        def __init__(self, factor):
            self.factor = factor

        def dC_daL(self, aL, y):
            return self.factor * 2 * (aL - y)

    return Scaled(factor)


adapter = make(2.0)
'''


def exported(pytester, file_name: str) -> Path:
    """Return the one script --repro writes for FACTOR_ADAPTER saved as `file_name` (its 4
    float64 items of the small case fail)."""
    (pytester.path / file_name).write_text(FACTOR_ADAPTER)
    result = pytester.runpytest_inprocess(
        CONFORMANCE, "-p", "no:randomly", "--adapter", f"{file_name}:adapter", "--cases",
        "small", "--dtypes", "float64", "--repro", "out")
    result.assert_outcomes(failed=4)
    (script,) = (pytester.path / "out").iterdir()
    return script


def test_a_third_party_adapter_script_imports_the_adapter_object_and_moves(pytester, tmp_path):
    """An adapter from a file whose name is no identifier (`my-adapter.py`), an instance of a
    class defined in a function that takes arguments: its script fetches that very object,
    names no absolute path, still runs once the folder moves (exit 1: reproduces), and exits
    2 when it cannot run (the adapter's file gone; the adapter raising)."""
    script = exported(pytester, "my-adapter.py")
    text = script.read_text()
    assert str(pytester.path) not in text and str(ROOT) not in text and "'../my-adapter.py'" \
        in text
    assert f"numpy {np.__version__}" in ast.get_docstring(ast.parse(text))
    moved = tmp_path / "elsewhere"
    shutil.move(pytester.path / "out", moved / "out")
    shutil.move(pytester.path / "my-adapter.py", moved / "my-adapter.py")
    proc, _ = run_alone(moved / "out" / script.name)
    assert proc.returncode == 1 and "wrong gradient" in proc.stdout, proc.stdout + proc.stderr
    (moved / "my-adapter.py").unlink()
    proc, _ = run_alone(moved / "out" / script.name)
    assert proc.returncode == 2 and proc.stderr.startswith("could not run: ImportError")
    assert len(proc.stderr.strip().splitlines()) == 1
    (moved / "my-adapter.py").write_text(FACTOR_ADAPTER.replace(
        "return self.factor", "raise RuntimeError('out of memory'); return self.factor"))
    proc, _ = run_alone(moved / "out" / script.name)
    assert proc.returncode == 2 and proc.stderr.strip() == "could not run: RuntimeError: out of " \
        "memory"


def test_a_script_finds_a_far_adapter_and_checkout_where_it_is_told(pytester, tmp_path):
    """A script moved where its relative paths to the checkout and the adapter point nowhere,
    run from neither, exits 2 naming BPC_SUITE and BPC_ADAPTER; given them it reproduces (1),
    and prints the version of the adapter's framework, as installed where it runs."""
    script = exported(pytester, "far-adapter.py")
    far = tmp_path / "far" / "deeper" / "still"  # its relative paths now point nowhere
    far.mkdir(parents=True)
    shutil.move(script, far / script.name)
    shutil.move(pytester.path / "far-adapter.py", tmp_path / "far-adapter.py")
    proc, _ = run_alone(far / script.name, cwd=far)
    assert proc.returncode == 2 and "set BPC_SUITE" in proc.stderr, proc.stderr
    env = {"BPC_SUITE": str(ROOT), "BPC_ADAPTER": str(tmp_path / "far-adapter.py")}
    proc, _ = run_alone(far / script.name, cwd=far, env=env)
    assert proc.returncode == 1 and "wrong gradient" in proc.stdout, proc.stdout + proc.stderr
    assert f"(numpy {np.__version__})" in proc.stdout.splitlines()[0], proc.stdout


def test_a_float32_ratio_is_computed_in_float64(tmp_path):
    """A float32 gradient that is the reference rounded to float32 differs from it by a little:
    the script's ratio is that difference over the bound, not 0 (a float32 subtraction would
    round the float64 reference to the same float32 first)."""
    bug, config = planted.MissingPrime(), Config("planted_missing_prime", "cpu", "float32")
    cut = shrink(bug, config, START, "W2", budget=0.0)  # W1 of this adapter is right
    from tests.engine.conformance import case_for, reference_for

    got = bug.gradients(case_for(START), "float32", "cpu")["W1"]
    ref = reference_for(START)["W1"]
    index = next(ix for ix in np.ndindex(ref.shape)
                 if got[ix] == np.float32(ref[ix]) and float(got[ix]) != ref[ix])
    d = data(bug, config, cut, "item", tmp_path)
    d.update(tensor="W1", shape=ref.shape, entries=[
        {"index": index, "ref": float(ref[index]), "bound": abs(float(got[index]) - ref[index]) / 2,
         "sim": None, "got": float(got[index]), "ratio": 2.0}])
    (tmp_path / "f.py").write_text(render.render(d))
    proc, _ = run_alone(tmp_path / "f.py")
    assert proc.returncode == 1 and re.search(r", ratio 2\n", proc.stdout), proc.stdout


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_an_unusable_repro_folder_is_refused_at_the_start(pytester, where):
    """--repro naming a file, or a folder that cannot be made, is a one-line usage error before
    anything runs, not a traceback in every failing item's message."""
    (pytester.path / "a-file").write_text("")
    result = pytester.runpytest_inprocess(
        CONFORMANCE, "-p", "no:randomly", "--adapter", "tests.fixtures.planted:MissingPrime",
        "--cases", "small", "--dtypes", "float64", "--repro", where)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(ln.startswith(f"ERROR: --repro {where}: ") for ln in result.errlines), \
        result.errlines


INTERRUPTED_ADAPTER = '''
from tests.fixtures.planted import MissingPrime


class Interrupted(MissingPrime):
    """Fails W2, then Ctrl-C as soon as it is called on another case (shrinking)."""

    name = "interrupted"

    def gradients(self, case, dtype, device):
        if case.sizes != (5, 4, 3):
            raise KeyboardInterrupt
        return super().gradients(case, dtype, device)
'''


def test_ctrl_c_while_shrinking_keeps_the_failure(pytester):
    """A Ctrl-C while an item's failure is shrunk stops the run, and the item stays what it
    was: failed, with its comparison; the export says it was interrupted."""
    (pytester.path / "interrupted_adapter.py").write_text(INTERRUPTED_ADAPTER)
    result = pytester.runpytest_subprocess(  # a Ctrl-C in process would stop this run too
        CONFORMANCE, "-p", "no:randomly", "--adapter", "interrupted_adapter.py:Interrupted",
        "--cases", "small", "--dtypes", "float64", "--repro", "out", "--results", "r.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    items = {i["tensor"]: i for i in json.loads((pytester.path / "r.json").read_text())["items"]}
    w2 = items["W2"]
    assert w2["outcome"] == "failed" and w2["comparison"]["failing"] == 12
    assert "interrupted" in w2["details"]["repro"]["error"]
    assert not list((pytester.path / "out").iterdir())


def test_groups_that_shrink_to_one_case_share_one_script_and_the_terminal_says_where(pytester):
    """Two failing groups (seeds 0 and 1) that shrink to the same case get one script, the
    second pointing to the first; the run ends with one line naming the folder."""
    result = pytester.runpytest_inprocess(
        CONFORMANCE, "-p", "no:randomly", "--adapter", "tests.fixtures.planted:MissingPrime",
        "--cases", "small", "--dtypes", "float64", "--seeds", "2", "--repro", "out",
        "--results", "r.json")
    result.assert_outcomes(failed=2, passed=6)
    (script,) = (pytester.path / "out").iterdir()
    failing = [i for i in json.loads((pytester.path / "r.json").read_text())["items"]
               if i["outcome"] == "failed"]
    exports = [i["details"]["repro"] for i in failing]
    assert {e["script"] for e in exports} == {os.path.relpath(script, pytester.path)}
    assert [e.get("same_as") for e in exports] == [None, failing[0]["id"]]
    line = (f"conformance repro: 1 script for 2 failing groups (1 shrank to the case of "
            f"another) in {(pytester.path / 'out').resolve()}")
    assert line in result.outlines
