"""Parallel runs: a group's items share one worker, and a worker crash ends the run, recorded."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine import scheduling

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
MATRIX = ("--cases", "chain,small", "--seeds", "2")
"""8 groups of 4 items: 2 cases × 2 dtypes × 2 seeds, one adapter call each."""
HANG_GUARD = 180  # seconds: a hung run fails the test instead of hanging the suite

ADAPTERS = '''
import ctypes, os
from adapters.example import NumpyAdapter

class Counting(NumpyAdapter):
    """Append `pid group` to $BPC_CALLS on every call."""
    name = "counting"

    def gradients(self, case, dtype, device):
        with open(os.environ["BPC_CALLS"], "a") as f:
            f.write(f"{os.getpid()} {dtype}-{case.id}\\n")
        return super().gradients(case, dtype, device)

class Crashing(NumpyAdapter):
    """Take the worker down on the one-neuron chain only: exit in float32, segfault in float64."""
    name = "crashing"

    def gradients(self, case, dtype, device):
        if case.sizes == (1, 1, 1):
            os._exit(1) if dtype == "float32" else ctypes.string_at(0)
        return super().gradients(case, dtype, device)
'''


@pytest.fixture
def planted(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Put the counting and crashing adapters on the path of every process the test starts."""
    pytester.makepyfile(bpc_parallel=ADAPTERS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    return pytester


@pytest.mark.parametrize("nodeid,group", [
    ("tests/test_conformance.py::test_gradient[torch-cpu-float64-sigmoid-sigmoid-1x1x1-b1-s0-W1]",
     "torch-cpu-float64-sigmoid-sigmoid-1x1x1-b1-s0"),
    ("tests/test_conformance.py::test_gradient[jax-cpu-float32.high-tanh-softplus-5x4x3-b3-s1-b2]"
     "@jax-cpu-float32.high-tanh-softplus-5x4x3-b3-s1",
     "jax-cpu-float32.high-tanh-softplus-5x4x3-b3-s1"),
    ("tests/test_conformance.py::test_gradient[numpy-cpu-float64-tanh-softplus-5x4x3-b3-s0-W1[3,4]]",
     "numpy-cpu-float64-tanh-softplus-5x4x3-b3-s0"),
    *[(f"tests/test_conformance.py::test_gradient[torch-cpu-float32-relu-tanh-sigmoid-softplus-"
       f"784x64x32x16x10-b8-s0-{tensor}]", "torch-cpu-float32-relu-tanh-sigmoid-softplus-"
       "784x64x32x16x10-b8-s0") for tensor in ("W1", "W3", "b4", "b4[7]", "W12[0,3]")],
    ("tests/test_study.py::test_usage_errors", "tests/test_study.py"),
    ("tests/test_study.py::test_usage_errors@study", "study"),
    ("tests/test_plugin.py::test_bad[--shard-0/2]", "tests/test_plugin.py"),
])
def test_group_of_a_nodeid(nodeid, group):
    """A conformance item's group is its adapter call; another item's, its module or mark."""
    assert scheduling.group_of(nodeid) == group


def calls(path: Path) -> dict[str, list[str]]:
    """Return the pids of the adapter calls per group, from the counting adapter's file."""
    out = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        pid, group = line.split()
        out[group].append(pid)
    return out


@pytest.mark.parametrize("dist", [(), ("--dist", "loadgroup")])  # -n alone: --dist load
def test_a_group_calls_its_adapter_in_one_worker(planted, monkeypatch, dist):
    """Under -n 2 each group's calls happen in one process, as many as in a run without xdist."""
    got = {}
    for n in ("0", "2"):
        monkeypatch.setenv("BPC_CALLS", str(planted.path / f"calls-{n}.txt"))
        result = planted.runpytest_subprocess(
            CONFORMANCE, "--adapter", "bpc_parallel:Counting", *MATRIX, "-n", n, *dist,
            timeout=HANG_GUARD)
        result.assert_outcomes(passed=32)
        got[n] = calls(planted.path / f"calls-{n}.txt")
    assert len(got["0"]) == 8 and got["2"].keys() == got["0"].keys()
    split = {g: sorted(set(p)) for g, p in got["2"].items() if len(set(p)) > 1}
    assert not split, f"groups whose adapter ran in more than one worker: {split}"
    counts = {len(p) for p in [*got["0"].values(), *got["2"].values()]}
    assert len(counts) == 1, f"calls per group differ: {dict(got['2'])}"


def crashed_run_outcomes(doc: dict) -> dict[str, str]:
    """Return {item id: outcome} of a results document."""
    return {i["id"]: i["outcome"] for i in doc["items"]}


def assert_chain_crashed_rest_kept(outcomes: dict[str, str]) -> None:
    """The chain's items (2 dtypes × 2 seeds × 4 tensors) crashed; the small case's passed."""
    chain = {k: v for k, v in outcomes.items() if "-1x1x1-" in k}
    rest = {k: v for k, v in outcomes.items() if k not in chain}
    assert len(chain) == 16 and set(chain.values()) == {"crashed"}, chain
    assert len(rest) == 16 and set(rest.values()) == {"passed"}, rest


def test_a_worker_crash_ends_the_run_and_records_it(planted):
    """Workers that exit or segfault under -n 2: the run ends, their groups read crashed."""
    out = planted.path / "out"
    result = planted.runpytest_subprocess(
        CONFORMANCE, "--frameworks=", "--adapter", "bpc_parallel:Crashing", *MATRIX, "-n", "2",
        "--dist", "loadgroup", "--results", str(out / "r.json"), "--report", str(out / "r.html"),
        timeout=HANG_GUARD)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*16 failed, 16 passed*"])
    assert_chain_crashed_rest_kept(crashed_run_outcomes(json.loads((out / "r.json").read_text())))
    assert "backprop-conformance report" in (out / "r.html").read_text()


def test_more_crashing_groups_than_xdist_restarts_still_run_the_rest(planted):
    """Six crashing groups on one worker (xdist replaces four by default): the others all run."""
    out = planted.path / "many.json"
    result = planted.runpytest_subprocess(
        CONFORMANCE, "--adapter", "bpc_parallel:Crashing", "--adapter", "adapters.example:adapter",
        "--cases", "chain", "--seeds", "3", "-n", "1", "--results", str(out), timeout=HANG_GUARD)
    result.stdout.fnmatch_lines(["*24 failed, 24 passed*"])
    outcomes = {i["id"]: i["outcome"] for i in json.loads(out.read_text())["items"]}
    assert {k for k, v in outcomes.items() if v == "crashed"} == \
        {k for k in outcomes if k.startswith("crashing-")}


def test_groups_never_started_when_restarts_run_out_read_not_run(planted):
    """Under --max-worker-restart 0 the first crash ends the run: the group it was running
    reads crashed, the groups no worker started read not run (not `the worker running it
    died`)."""
    out = planted.path / "r.json"
    result = planted.runpytest_subprocess(
        CONFORMANCE, "--frameworks=", "--adapter", "bpc_parallel:Crashing", *MATRIX, "-n", "1",
        "--max-worker-restart", "0", "--results", str(out), timeout=HANG_GUARD)
    result.stdout.fnmatch_lines(["*worker gw0 crashed and worker restarting disabled*"])
    items = json.loads(out.read_text())["items"]
    crashed = [i for i in items if i["outcome"] == "crashed"]
    assert len(crashed) == 4 and len({i["group"] for i in crashed}) == 1, crashed
    rest = [i for i in items if i["outcome"] != "crashed"]
    assert len(rest) == 28 and {(i["outcome"], i["reason"]) for i in rest} == {
        ("not run", "never started: the run ended before a worker ran it")}


def test_a_worker_crash_ends_a_study_and_it_writes_its_files(planted, tmp_path):
    """`python -m reports.study` (always xdist) ends too, with the crashed items in its files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cmd = [sys.executable, "-m", "reports.study", "--frameworks=", "--adapter",
           "bpc_parallel:Crashing", *MATRIX, "--timing", "0", "-n", "2", "-o", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=HANG_GUARD)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert_chain_crashed_rest_kept(crashed_run_outcomes(doc))
    assert (tmp_path / "report.html").is_file() and (tmp_path / "study.html").is_file()


class FakeNode:
    """A worker that records what it is sent."""

    def __init__(self, name: str):
        self.gateway = type("Gateway", (), {"id": name})()
        self.shutting_down, self.sent = False, []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def shutdown(self) -> None:
        self.shutting_down = True


class FakeConfig:
    """What the scheduler reads of pytest's config: the workers, and the report hook."""

    def __init__(self, dist: str = "load"):
        self.reports, self.dist = [], dist
        self.hook = type("Hook", (), {"pytest_runtest_logreport": self._log})()

    def getvalue(self, name: str):
        return {"tx": ["2*popen"], "dist": self.dist}[name]

    def _log(self, report):
        self.reports.append(report)


class Quiet:
    def __call__(self, *args):
        pass

    def __getattr__(self, name):
        return self


def ids(group: str, n: int = 4) -> list[str]:
    """Return the node ids of one conformance group: its n tensor items."""
    return [f"t.py::test_gradient[{group}-{t}]" for t in ("W1", "b1", "W2", "b2")[:n]]


def test_a_crash_drops_the_running_group_and_requeues_the_unstarted_ones():
    """The dead worker's running group reads crashed, its next one runs elsewhere, none twice."""
    config = FakeConfig()
    sched = scheduling.GroupScheduling(config, Quiet())
    a, b = FakeNode("gw0"), FakeNode("gw1")
    collection = [*ids("g1"), *ids("g2"), *ids("g3"), *ids("g4"), *ids("g5")]
    for node in (a, b):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    assert (a.sent, b.sent) == ([0, 1, 2, 3], [4, 5, 6, 7])  # g1, g2: a group each
    for node, i in ((a, 0), (a, 1), (b, 4), (b, 5)):
        sched.mark_test_complete(node, i)  # two items left: each gets another group
    assert (a.sent[4:], b.sent[4:]) == ([8, 9, 10, 11], [12, 13, 14, 15])  # g3, g4
    assert sched.remove_node(b) == ids("g2")[2]  # b dies in g2's W2, g4 not started
    assert [r.nodeid for r in config.reports] == ids("g2")[3:]  # g2's b2: not run, crashed
    assert list(sched.queue) == ["g4", "g5"] and not sched.tests_finished
    c = FakeNode("gw2")  # the replacement takes g4, then g5, and is told to stop
    sched.add_node(c)
    sched.add_node_collection(c, collection)
    sched.schedule()
    assert c.sent == [12, 13, 14, 15] and not c.shutting_down
    sched.mark_test_complete(c, 12)
    sched.mark_test_complete(c, 13)
    assert c.sent[4:] == [16, 17, 18, 19] and c.shutting_down and not sched.queue
    sched.mark_test_complete(a, 2)  # a stops once the queue is empty, after what it holds
    assert a.shutting_down and len(a.sent) == 8 and len(config.reports) == 1


def test_a_late_worker_gets_enough_items_to_start():
    """Groups of one item: a worker is sent more than one, so it never waits for a next item."""
    sched = scheduling.GroupScheduling(FakeConfig(), Quiet())
    collection = [f"tests/test_{m}.py::test_x" for m in "abcdefgh"]
    a, b = FakeNode("gw0"), FakeNode("gw1")
    for node in (a, b):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    assert len(a.sent) == 3 and len(b.sent) == 3 and not a.shutting_down
    sched.remove_node(a)
    c = FakeNode("gw2")
    sched.add_node(c)
    sched.add_node_collection(c, collection)
    sched.schedule()
    assert len(c.sent) >= 2


@pytest.mark.parametrize("dist", [*scheduling.DISTRIBUTING, "each"])
def test_the_suite_schedules_every_load_balancing_mode(dist):
    """Every --dist that spreads items over workers gets the group scheduler; `each` not."""
    made = scheduling.make(FakeConfig(dist), Quiet())
    assert isinstance(made, scheduling.GroupScheduling) == (dist != "each")


def test_dist_each_is_a_usage_error(planted):
    """`--dist each` would run every item on every worker, and pytest-xdist's each scheduler
    stops with INTERNALERROR (KeyError) when a replaced worker crashes: one line, before any
    worker starts."""
    result = planted.runpytest_subprocess(
        CONFORMANCE, "--frameworks=", "--adapter", "bpc_parallel:Crashing", *MATRIX, "-n", "3",
        "--dist", "each", timeout=HANG_GUARD)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --dist each: not supported: *; use --dist load*"])
    assert "INTERNALERROR>" not in result.stdout.str() + result.stderr.str()


def test_the_suite_runs_without_xdist(pytester):
    """The grouping needs no xdist mark: with xdist disabled the conformance items run."""
    result = pytester.runpytest_subprocess(CONFORMANCE, "-p", "no:xdist", "--adapter",
                                           "adapters.example:adapter", "--cases", "chain",
                                           timeout=HANG_GUARD)
    result.assert_outcomes(passed=8)
