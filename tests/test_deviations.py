"""The known-deviations file: a listed failure is xfailed with its reason, a listed pass fails."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine import deviations
from tests.engine.deviations import SHIPPED, read
from tests.test_plugin import FAST, run

pytest_plugins = ["pytester"]

OFF = ("--adapter", "tests.fixtures.planted:OffByOneEntry", "--cases", "seed", "--dtypes",
       "float64", "-k", "sigmoid-sigmoid")
"""One W1 entry off by 1e-9 in float64: its W1 item fails, the other three tensors pass."""


def listing(pytester: pytest.Pytester, text: str) -> str:
    return str(pytester.makefile(".txt", deviations=text))


def test_a_listed_failure_is_a_documented_deviation(pytester):
    """The failing item, listed by pattern, is xfailed with the file's reason and line."""
    path = listing(pytester, "# planted\nplanted_off_entry-*-W1  planted: one entry off\n")
    result = run(pytester, *OFF, "--deviations", path, "-rx")
    result.assert_outcomes(passed=3, xfailed=1)
    result.stdout.fnmatch_lines(["*documented deviation (deviations.txt:2): planted: one entry*"])
    assert result.ret == pytest.ExitCode.OK


def test_a_listed_item_that_passes_stopped_deviating(pytester):
    """Strict: listing an item that passes fails it, saying it stopped deviating."""
    path = listing(pytester, "planted_off_entry-*-b1  planted: never wrong\n")
    result = run(pytester, *OFF, "--deviations", path)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*stopped deviating: *-b1* passed, but deviations.txt:1 "
                                 "lists it*remove or narrow that line*"])


def test_brackets_in_a_pattern_are_literal(pytester):
    """An entry item's id has brackets: a pattern names it as written, not as a class."""
    path = listing(pytester, "planted_off_entry-*-b2[1]  listed entry (it passes)\n")
    result = run(pytester, "--adapter", "tests.fixtures.planted:OffByOneEntry", "--cases", "small",
                 "--dtypes", "float32", "--entries", "-k", "b2", "--deviations", path)
    result.assert_outcomes(passed=2, failed=1)  # b2[1] alone, not b2[0] or b2[2]
    result.stdout.fnmatch_lines(["*stopped deviating: *-b2?1?? passed*"])


def test_a_line_without_a_reason_is_a_usage_error(pytester):
    path = listing(pytester, "planted_off_entry-*-W1\n")
    result = run(pytester, *OFF, "--deviations", path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*deviations.txt:1: 'planted_off_entry-*-W1' has no reason*"])


def test_none_drops_the_shipped_list(pytester):
    """`--deviations none` applies no file: the listed failure is a failure again."""
    path = listing(pytester, "planted_off_entry-*-W1  planted\n")
    result = run(pytester, *OFF, "--deviations", path, "--deviations", "none")
    result.assert_outcomes(passed=3, failed=1)


def test_the_shipped_list_reads_and_gives_every_line_a_reason():
    """tests/deviations.txt parses; each entry names what deviates and why."""
    entries = read(SHIPPED)
    assert entries and all(len(d.reason) > 20 for d in entries)
    assert any("softplus" in d.pattern and "torch" in d.pattern for d in entries)


def test_the_example_adapter_is_untouched_by_the_shipped_list(pytester):
    """The suite's own list names no conformance item of a correct adapter."""
    run(pytester, "--adapter", "adapters.example:adapter", *FAST).assert_outcomes(passed=16)


def test_marking_names_the_first_matching_line_as_trying_each_pattern_would():
    """The one expression that screens items lets through exactly the items some line names,
    and each gets the first such line, by id or node id, brackets and `?` included."""
    lines = [deviations.Deviation(p, f"reason {n}", f"f:{n}") for n, p in enumerate(
        ["a*b*c", "*-W1[3,?]", "tests/x.py::t[a-*]", "exact-id", "a?c", "*[b]*"])]
    words = ["a", "b", "c", "-W1[3,7]", "-W1[4,7]", "[b]", "exact-id", "x"]
    items = []
    for parts in itertools.product(words, repeat=3):
        cid = "".join(parts)
        item = SimpleNamespace(callspec=SimpleNamespace(id=cid), nodeid=f"tests/x.py::t[{cid}]",
                               marks=[], stash={})
        item.add_marker = item.marks.append
        items.append(item)
    deviations.mark(items, lines)
    named = 0
    for item in items:
        first = next((d for d in lines if d.matches(item)), None)
        assert item.stash.get(deviations.KEY) == first, item.nodeid
        assert len(item.marks) == (first is not None)
        named += first is not None
    assert 0 < named < len(items)


@pytest.mark.parametrize("text", [
    "planted_off_entry-*-W1\tplanted: one entry off\n",  # a tab between pattern and reason
    "\ufeffplanted_off_entry-*-W1  planted: one entry off\n",  # an editor's byte-order mark
], ids=["tab", "bom"])
def test_a_tab_or_a_byte_order_mark_leaves_the_line_applying(pytester, text):
    """A tab separates PATTERN from REASON as spaces do, and a UTF-8 byte-order mark is not
    part of the first pattern: either way the listed failure is xfailed, not failed."""
    path = pytester.path / "deviations.txt"
    path.write_text(text, encoding="utf-8")
    result = run(pytester, *OFF, "--deviations", str(path), "-rx")
    result.assert_outcomes(passed=3, xfailed=1)
    result.stdout.fnmatch_lines(["*documented deviation (deviations.txt:1): planted: one entry*"])


@pytest.mark.parametrize("content,says", [
    (b"# fine\nplanted_off_entry-*-W1  caf\xe9 (Latin-1)\n",
     "ERROR: */deviations.txt:2: byte 0xe9 is not UTF-8; save the file as UTF-8"),
    (None, "ERROR: --deviations '': empty; give a FILE (or none)"),
], ids=["latin-1", "empty"])
def test_an_unreadable_deviations_argument_is_a_one_line_usage_error(pytester, content, says):
    """A byte that is not UTF-8 names its line (not an INTERNALERROR); `--deviations ''`
    says it is empty (not `.: Is a directory`)."""
    arg = ""
    if content is not None:
        arg = str(pytester.path / "deviations.txt")
        Path(arg).write_bytes(content)
    result = run(pytester, *OFF, "--deviations", arg)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([says])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


class CountingRe:
    """The re module, counting the expressions compiled through it."""

    def __init__(self):
        self.compiled = 0

    def compile(self, *args):
        self.compiled += 1
        return re.compile(*args)

    def __getattr__(self, name):
        return getattr(re, name)


def test_many_patterns_are_compiled_once_however_many_items_they_mark(monkeypatch):
    """1,100 lines (more than re's and any small cache hold) and 50 items each named by the last
    line: every pattern is compiled at most once, and each item gets that line. (Compiled per
    item, 2,000 lines took 231 s to mark 12,544 entry items.)"""
    counting = CountingRe()
    monkeypatch.setattr(deviations, "re", counting)
    lines = [deviations.Deviation(f"numpy-*-s{k}-W1[*", f"reason {k}", f"f:{k}")
             for k in range(1100)]
    items = []
    for k in range(50):
        cid = f"numpy-cpu-float64-s1099-W1[{k},0]"
        item = SimpleNamespace(callspec=SimpleNamespace(id=cid), nodeid=f"tests/x.py::t[{cid}]",
                               marks=[], stash={})
        item.add_marker = item.marks.append
        items.append(item)
    deviations.mark(items, lines)
    assert all(item.stash.get(deviations.KEY) == lines[-1] for item in items)
    assert counting.compiled <= len(lines) + 1, counting.compiled
