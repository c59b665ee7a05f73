"""The entry items' lean run protocol (tests/engine/entries.py): the same verdicts, reports and
results as pytest's usual protocol, with fixtures, capture, deviations and -x intact."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.engine import entries
from tests.fixtures import hostile
from tests.test_planted import CONFORMANCE

pytest_plugins = ["pytester"]

MIXED = ("--adapter", "tests.fixtures.planted:OffByOneEntry",
         "--adapter", "tests.fixtures.hostile:EverySecondCall",
         "--adapter", "adapters.example:adapter", "--frameworks=", "--cases", "small,chain",
         "--entries", "-p", "no:randomly")
"""Entry items that pass, fail on a wrong entry and fail as nondeterministic."""


def counted_runs(monkeypatch) -> list[str]:
    """Count the items the lean protocol runs."""
    ran: list[str] = []
    real = entries.run

    def run(item, nextitem):
        ran.append(item.nodeid)
        return real(item, nextitem)

    monkeypatch.setattr(entries, "run", run)
    return ran


def comparable(path) -> list[dict]:
    """Return a results file's items without what differs between two runs of them."""
    out = []
    for item in json.loads(path.read_text())["items"]:
        details = {k: v for k, v in (item.get("details") or {}).items() if k != "timing"}
        out.append({**{k: v for k, v in item.items() if k not in ("run", "duration")},
                    "details": details})
    return out


def reports(result) -> list[tuple]:
    """Return every logged report's node, location, keywords, captured output, phase, outcome,
    text and recorded data, in order."""
    return [(r.nodeid, type(r.nodeid), r.location, r.keywords, r.sections, r.when, r.outcome,
             str(r.longrepr) if r.longrepr else None,
             [(name, untimed(value)) for name, value in r.user_properties])
            for r in result.reprec.getreports("pytest_runtest_logreport")]


def untimed(value):
    """Return recorded data without the adapter call's time (it differs from run to run)."""
    if not isinstance(value, dict) or not isinstance(value.get("details"), dict):
        return value
    return {**value, "details": {k: v for k, v in value["details"].items() if k != "timing"}}


def test_lean_and_usual_protocols_give_the_same_reports_and_results(pytester, monkeypatch):
    """Passing, wrong-entry and nondeterministic entry items, and a listed deviation: every
    report (phase, outcome, message) and every results item is the same either way."""
    listed = pytester.makefile(".txt", deviations="planted_off_entry-*-float64-*-5x4x3-b3-s0-"
                                                  "W1[1,4]  planted: listed for the test\n")
    args = (*MIXED, "--deviations", str(listed))
    ran = counted_runs(monkeypatch)
    hostile.CALLS.clear()
    fast = pytester.runpytest_inprocess(CONFORMANCE, *args, "--results", "entries.json")
    assert ran, "no item ran by the lean protocol"
    lean_count = len(ran)
    monkeypatch.setattr(entries, "eligible", lambda config: False)
    hostile.CALLS.clear()
    usual = pytester.runpytest_inprocess(CONFORMANCE, *args, "--results", "usual.json")
    assert len(ran) == lean_count, "the usual run used the lean protocol"
    outcomes = fast.parseoutcomes()
    assert outcomes == usual.parseoutcomes()
    assert outcomes["passed"] and outcomes["failed"] and outcomes["xfailed"]
    assert reports(fast) == reports(usual)
    assert comparable(pytester.path / "entries.json") == comparable(pytester.path / "usual.json")
    xfailed = {r.nodeid for r in fast.reprec.getreports("pytest_runtest_logreport")
               if getattr(r, "wasxfail", None)}
    assert xfailed and not xfailed & set(ran), "a listed deviation ran by the lean protocol"


def test_fixtures_of_other_items_are_finalised_after_lean_ones(pytester):
    """A session fixture set up by an ordinary test before the entry items is finalised at the
    end of the run, though the last item ran by the lean protocol."""
    pytester.makeconftest('''
import pytest

@pytest.fixture(scope="session")
def resource():
    yield "r"
    print("FINALISED-RESOURCE")
''')
    first = pytester.makepyfile(test_aaa_first="def test_uses(resource):\n    assert resource\n")
    result = pytester.runpytest_inprocess(str(first), CONFORMANCE, "--adapter",
                                          "adapters.example:adapter", "--frameworks=",
                                          "--cases", "chain", "--entries", "-s",
                                          "-p", "no:randomly")
    result.assert_outcomes(passed=1 + 2 * 4)
    out = result.stdout.str()
    assert out.count("FINALISED-RESOURCE") == 1
    assert re.search(r"test_conformance\.py \.{8}FINALISED-RESOURCE", out), \
        "the fixture was not finalised after the last entry item"


PRINTING = '''
from adapters.example import adapter as numpy_adapter

class Adapter:
    name = "prints"
    framework = "numpy"

    def gradients(self, case, dtype, device):
        print("OUTPUT-OF-THE-ADAPTER")
        return numpy_adapter.gradients(case, dtype, device)
'''


def test_a_lean_items_output_is_captured(pytester, monkeypatch):
    """What the adapter prints is captured with the item that called it, not written out."""
    pytester.makepyfile(printing=PRINTING)
    monkeypatch.syspath_prepend(str(pytester.path))
    ran = counted_runs(monkeypatch)
    args = ("--adapter", "printing:Adapter", "--frameworks=", "--cases", "chain", "--entries",
            "--dtypes", "float64", "-p", "no:randomly")
    quiet = pytester.runpytest_inprocess(CONFORMANCE, *args)
    quiet.assert_outcomes(passed=4)
    assert ran and "OUTPUT-OF-THE-ADAPTER" not in quiet.stdout.str()
    shown = pytester.runpytest_inprocess(CONFORMANCE, *args, "-rP")
    shown.stdout.fnmatch_lines(["*Captured stdout call*", "OUTPUT-OF-THE-ADAPTER"])


def test_maxfail_stops_at_the_first_failing_lean_item(pytester, monkeypatch):
    """-x stops the run at the first failure, as it does for items run the usual way."""
    ran = counted_runs(monkeypatch)
    result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter",
                                          "tests.fixtures.planted:OffByOneEntry", "--frameworks=",
                                          "--cases", "small", "--dtypes", "float64", "--entries",
                                          "-x", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and ran
    assert sum(outcomes.values()) < 4 * 5 + 4 + 3 * 4 + 3


@pytest.mark.parametrize("option", ["--setup-show", "--pdb"])
def test_options_that_watch_the_phases_run_every_item_the_usual_way(pytester, monkeypatch,
                                                                   option):
    """Under --setup-show (or --pdb) the phases are the point: nothing runs entries."""
    ran = counted_runs(monkeypatch)
    result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter", "adapters.example:adapter",
                                          "--frameworks=", "--cases", "chain", "--entries",
                                          option, "-p", "no:randomly")
    result.assert_outcomes(passed=2 * 4)
    assert ran == []


def test_xdist_workers_record_what_a_serial_run_records(pytester):
    """Entry items on two xdist workers (each running them lean) give the same results file,
    item for item, as one process does."""
    args = ("--adapter", "tests.fixtures.planted:OffByOneEntry", "--adapter",
            "adapters.example:adapter", "--frameworks=", "--cases", "small,chain", "--entries",
            "-p", "no:randomly")
    serial = pytester.runpytest_subprocess(CONFORMANCE, *args, "--results", "serial.json")
    spread = pytester.runpytest_subprocess(CONFORMANCE, *args, "-n", "2", "--results",
                                           "xdist.json")
    assert serial.parseoutcomes() == spread.parseoutcomes()
    assert serial.parseoutcomes()["failed"]
    by_node = [{i["nodeid"]: i for i in comparable(pytester.path / name)}
               for name in ("serial.json", "xdist.json")]
    assert by_node[0] == by_node[1] and len(by_node[0]) > 100


def test_mark_names_are_the_items_own_and_see_late_marks(pytester):
    """The names of an item's marks are those of `iter_markers`, though the ancestors' part is
    gathered once; a mark added to an ancestor later is seen."""
    pytester.makepyfile("""
        import pytest
        pytestmark = pytest.mark.outer

        class TestX:
            pytestmark = pytest.mark.inner

            @pytest.mark.parametrize("i", range(3))
            @pytest.mark.outer
            def test_a(self, i):
                pass
    """)
    pytester.makeini("[pytest]\nmarkers =\n    outer: a module's mark\n    inner: a class's mark\n")
    items, _ = pytester.inline_genitems("-p", "no:randomly")
    assert len(items) == 3
    for item in items:
        assert entries._mark_names(item) == {"outer", "inner", "parametrize"}
    items[2].parent.parent.add_marker("conformance")
    for item in items:
        assert entries._mark_names(item) == {m.name for m in item.iter_markers()} == {
            "outer", "inner", "parametrize", "conformance"}


def test_a_mark_another_plugin_adds_after_the_suites_collection_hook_is_honoured(pytester,
                                                                                 monkeypatch):
    """A plugin whose collection hook runs after the suite's (trylast) skips two entry items:
    they are skipped, run the usual way, and the rest still run entries."""
    pytester.makepyfile(late_marks='''
import pytest

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items[:2]:
        item.add_marker(pytest.mark.skip(reason="skipped by a later plugin"))
''')
    monkeypatch.syspath_prepend(str(pytester.path))
    ran = counted_runs(monkeypatch)
    result = pytester.runpytest_inprocess(CONFORMANCE, "-p", "late_marks", "--adapter",
                                          "adapters.example:adapter", "--frameworks=",
                                          "--cases", "chain", "--entries", "-p", "no:randomly",
                                          "-rs")
    result.assert_outcomes(passed=2 * 4 - 2, skipped=2)
    result.stdout.fnmatch_lines(["*skipped by a later plugin*"])
    assert len(ran) == 2 * 4 - 2


WARNS = '''
import warnings

def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.endswith(("softplus-5x4x3-b3-s0-W1[1,0]]",
                                                         "softplus-5x4x3-b3-s0-b2[1]]")):
        warnings.warn(f"warned in {report.nodeid}", UserWarning)
'''

class ProtocolWatcher:
    """A plugin wrapping each item's protocol, as pytest-timeout and others do."""

    def __init__(self):
        self.calls: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item):
        self.calls.append(item.nodeid)
        return (yield)


def recorded_warnings(result) -> list[tuple[str, str, str]]:
    return [(c.nodeid, c.when, str(c.warning_message.message))
            for c in result.reprec.getcalls("pytest_warning_recorded")]


def test_a_stretch_of_lean_items_records_each_items_warnings_as_its_own(pytester, monkeypatch):
    """Lean items run in stretches of one protocol call, yet a warning raised while an item
    runs is recorded with that item's node id, as when each item has its own call (a plugin
    wrapping the protocol makes it so)."""
    pytester.makepyfile(warns=WARNS)
    monkeypatch.syspath_prepend(str(pytester.path))
    stretch_lengths = []
    real = entries.run_stretch

    def run_stretch(item, nextitem):
        stretch_lengths.append(len(item.config.stash.get(entries.STRETCH, None) or [item]))
        return real(item, nextitem)

    monkeypatch.setattr(entries, "run_stretch", run_stretch)
    args = (CONFORMANCE, "-p", "warns", "--adapter", "adapters.example:adapter", "--frameworks=",
            "--cases", "small", "--entries", "--dtypes", "float64", "-p", "no:randomly")
    stretched = pytester.runpytest_inprocess(*args)
    items = stretched.parseoutcomes()["passed"]
    assert max(stretch_lengths) == items and stretch_lengths.count(items) == 1
    stretch_lengths.clear()
    one_by_one = pytester.runpytest_inprocess(*args, plugins=[ProtocolWatcher()])
    assert one_by_one.parseoutcomes()["passed"] == items
    assert stretch_lengths == [1] * items
    got = recorded_warnings(stretched)
    assert got == recorded_warnings(one_by_one)
    assert [(n.rsplit("-", 1)[-1], w) for n, w, _ in got] == [("W1[1,0]]", "runtest"),
                                                              ("b2[1]]", "runtest")]
    assert all(m == f"warned in {n}" for n, _, m in got)
    stretched.stdout.fnmatch_lines(["*warned in *W1[[]1,0[]]*"])


def test_a_plugin_wrapping_the_protocol_sees_every_item(pytester, monkeypatch):
    """A protocol wrapper other than pytest's own is called for every item (no stretches)."""
    ran, watcher = counted_runs(monkeypatch), ProtocolWatcher()
    result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter", "adapters.example:adapter",
                                          "--frameworks=", "--cases", "chain", "--entries",
                                          "-p", "no:randomly", plugins=[watcher])
    result.assert_outcomes(passed=2 * 4)
    assert watcher.calls == ran and len(ran) == 2 * 4


class PhaseWatcher:
    """A plugin hooking into one phase, as pytest-randomly (reseeding) and others do."""

    def __init__(self, phase: str):
        self.calls: list[tuple[str, str | None]] = []

        @pytest.hookimpl(trylast=True)  # after pytest's own, which names the item
        def hook(item):
            self.calls.append((item.nodeid, os.environ.get("PYTEST_CURRENT_TEST")))

        setattr(self, f"pytest_runtest_{phase}", hook)


@pytest.mark.parametrize("phase", ["setup", "call", "teardown"])
def test_a_plugin_hooking_into_a_phase_makes_no_item_lean(pytester, monkeypatch, phase):
    """A plugin's phase hook is called for every item, as pytest calls it: no item runs by
    the lean protocol, which calls none of them."""
    ran, watcher = counted_runs(monkeypatch), PhaseWatcher(phase)
    result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter", "adapters.example:adapter",
                                          "--frameworks=", "--cases", "chain", "--entries",
                                          "-p", "no:randomly", plugins=[watcher])
    result.assert_outcomes(passed=2 * 4)
    ids = [r.nodeid for r in result.reprec.getreports("pytest_runtest_logreport")
           if r.when == "call"]
    assert ran == [] and [n for n, _ in watcher.calls] == ids
    if phase != "teardown":  # (pytest's teardown removes the variable before a trylast hook)
        assert [v for _, v in watcher.calls] == [f"{n} ({phase})" for n in ids]


THREADS = '''
import threading
from adapters.example import adapter as numpy_adapter

class Adapter:
    name = "threads"
    framework = "numpy"

    def gradients(self, case, dtype, device):
        worker = threading.Thread(target=lambda: 1 / 0, name="adapter-worker")
        worker.start()
        worker.join()
        return numpy_adapter.gradients(case, dtype, device)
'''


@pytest.mark.parametrize("werror", [False, True])
def test_a_threads_unhandled_exception_is_the_items_as_pytest_reports_it(pytester, monkeypatch,
                                                                       werror):
    """An adapter's thread that dies is reported with the item whose call ran it: a warning,
    or under -W error that item's failure, by the lean protocol as by pytest's own."""
    pytester.makepyfile(threads=THREADS)
    monkeypatch.syspath_prepend(str(pytester.path))
    ran = counted_runs(monkeypatch)
    args = (CONFORMANCE, "--adapter", "threads:Adapter", "--frameworks=", "--cases", "chain",
            "--entries", "--dtypes", "float64", "-p", "no:randomly",
            *(["-W", "error::pytest.PytestUnhandledThreadExceptionWarning"] if werror else []))
    lean_run = pytester.runpytest_inprocess(*args)
    assert ran
    usual = pytester.runpytest_inprocess(*args, "--setup-show")
    for result in (lean_run, usual):
        if werror:
            assert result.parseoutcomes() == {"failed": 1, "passed": 3}
            result.stdout.fnmatch_lines(["*ZeroDivisionError*"])
        else:
            assert [(n.rsplit("-", 1)[-1], type(m).__name__) for n, _, m in
                    [(c.nodeid, c.when, c.warning_message.message) for c in
                     result.reprec.getcalls("pytest_warning_recorded")]] == \
                [("W1[0,0]]", "PytestUnhandledThreadExceptionWarning")]
    failed = [[r.nodeid for r in res.reprec.getreports("pytest_runtest_logreport") if r.failed]
              for res in (lean_run, usual)]
    assert failed[0] == failed[1]
