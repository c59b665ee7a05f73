"""What the terminal says: progress per framework on long runs, --lf working or refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.engine import progress

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
TWO = ("--frameworks=", "--adapter", "adapters.example:adapter", "--adapter",
       "tests.fixtures.planted:OffByOneEntry", "--cases", "small", "--dtypes", "float64")
"""Two adapters (numpy and planted_off_entry, both framework numpy), 4 items each."""


def test_a_long_run_says_each_frameworks_progress_and_the_time_left(pytester, monkeypatch):
    """Past the first seconds (here 0), a line names each framework's items done of its total,
    the time so far and the time left; the last one counts every item."""
    monkeypatch.setattr(progress, "FIRST", 0.0)
    monkeypatch.setattr(progress, "EVERY", 0.0)
    result = pytester.runpytest_inprocess(CONFORMANCE, "-p", "no:cacheprovider", *TWO)
    lines = [ln for ln in result.outlines if ln.startswith("conformance progress")]
    assert len(lines) == 8, result.outlines
    assert re.fullmatch(r"conformance progress \d+:\d\d: numpy 1/8; about \d+:\d\d left",
                        lines[0]), lines[0]
    assert re.fullmatch(r"conformance progress \d+:\d\d: numpy 8/8; about 0:00 left", lines[-1])


def test_a_short_run_prints_no_progress_line(pytester):
    """A run shorter than FIRST seconds looks as pytest's own."""
    result = pytester.runpytest_inprocess(CONFORMANCE, "-p", "no:cacheprovider", *TWO)
    assert progress.FIRST >= 10
    assert not [ln for ln in result.outlines if ln.startswith("conformance progress")]


def test_the_framework_of_an_item_is_its_longest_adapter_name():
    """`torch_nn-cpu-…` is torch_nn's item, not torch's; the suite's own tests are counted
    as other tests, so that the time left is every item's."""
    p = progress.Progress.__new__(progress.Progress)
    p.frameworks = {"torch": "torch", "torch_nn": "torch-nn-idiom", "jax": "jax"}
    assert p.framework("t.py::test_gradient[torch_nn-cpu-float32-x-W1]") == "torch-nn-idiom"
    assert p.framework("t.py::test_gradient[torch-cpu-float32-x-W1]") == "torch"
    assert p.framework("t.py::test_other[jax-1]") == progress.OTHER
    p.total, p.done = {}, {}
    p.collected(["a.py::test_x", "t.py::test_gradient[jax-cpu-x-W1]", "a.py::test_y"])
    assert p.total == {"jax": 1, progress.OTHER: 2}
    p.done = {"jax": 1, progress.OTHER: 1}
    p.started = 0.0
    assert p.line(30.0) == "conformance progress 0:30: jax 1/1 · other tests 1/2; about 0:15 left"


def test_last_failed_reruns_only_the_failures(pytester):
    """--lf reads pytest's cache (on by default) and runs the failing item alone."""
    cache = ("-o", f"cache_dir={pytester.path / 'cache'}")
    first = pytester.runpytest_inprocess(CONFORMANCE, *TWO, *cache)
    first.assert_outcomes(passed=7, failed=1)
    again = pytester.runpytest_inprocess(CONFORMANCE, *TWO, *cache, "--lf")
    again.assert_outcomes(failed=1, deselected=7)


def test_last_failed_without_the_cache_is_refused_in_one_line(pytester):
    """With the cache turned off where pytest still takes --lf (an ini file's addopts), --lf
    is a usage error saying why, not a silent rerun of everything."""
    ini = pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    result = pytester.runpytest_inprocess("-c", str(ini), "--rootdir", str(ROOT), CONFORMANCE,
                                          *TWO, "--lf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--lf needs pytest's cache, which -p no:cacheprovider turned "
                                 "off: without it every item would run again*"])


def test_repro_says_where_no_script_went(pytester):
    """`--repro DIR` on a run with no failing group says so, naming DIR, in one line."""
    folder = pytester.path / "scripts"
    result = pytester.runpytest_inprocess(CONFORMANCE, "-p", "no:cacheprovider", "--frameworks=",
                                          "--adapter", "adapters.example:adapter", "--cases",
                                          "small", "--repro", str(folder))
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines([f"conformance repro: no failing group, no script written to "
                                 f"{folder.resolve()}"])
