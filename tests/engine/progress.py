"""Progress of a long run in the terminal: items done per framework, and the time left.

pytest's dots say nothing of which framework runs or how long the rest will take; the default
matrix takes minutes on two cores. Past FIRST seconds, and then every EVERY seconds, the
controller (where every report arrives, under xdist too) writes one line such as

    conformance progress 0:45: torch 240/240 · jax 60/120 · tensorflow 0/90 …; about 1:10 left

(the suite's own tests, in a run of all the tests, count as `other tests`). A run shorter than
FIRST seconds prints nothing more than it did.
"""

from __future__ import annotations

import time

import pytest

from reports import record

FIRST, EVERY = 20.0, 30.0
OTHER = "other tests"
"""What the items of no conformance config count as: the time left is every item's."""
"""Seconds before the first line, and between two lines."""


def register(config: pytest.Config) -> None:
    """Register the progress lines on the controller (a worker's output is not shown)."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Progress(config), "conformance-progress")


class Progress:
    """Counts finished conformance items per framework and says so now and then (a plugin
    object: its hooks are pytest's and pytest-xdist's)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.started = time.monotonic()
        self.next = self.started + FIRST
        self.frameworks = {name: record.framework_of(a)
                           for name, a in config.stash[record.ADAPTERS].items()}
        self.total: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def framework(self, nodeid: str) -> str:
        """Return the framework of a conformance item's id (`…[torch_nn-cpu-…]`), OTHER for
        any other item: the longest adapter name the parameter starts with."""
        if "::test_gradient[" not in nodeid:
            return OTHER
        param = nodeid.partition("[")[2]
        names = [n for n in self.frameworks if param.startswith(f"{n}-")]
        return self.frameworks[max(names, key=len)] if names else OTHER

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.collected(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.finished(report)

    def collected(self, nodeids) -> None:
        """Count the items to run (once: xdist's workers collect the same ids)."""
        if self.total:
            return
        for nodeid in nodeids:
            f = self.framework(nodeid)
            self.total[f] = self.total.get(f, 0) + 1
            self.done.setdefault(f, 0)
        if OTHER in self.total:  # the suite's own tests last
            self.total[OTHER] = self.total.pop(OTHER)

    def finished(self, report: pytest.TestReport) -> None:
        """Count an item once its teardown is reported; write a line when one is due."""
        if report.when != "teardown":
            return
        f = self.framework(report.nodeid)
        if f not in self.done:
            return
        self.done[f] += 1
        now = time.monotonic()
        if now >= self.next:
            self.next = now + EVERY
            self.write(now)

    def write(self, now: float) -> None:
        """Write the progress line through the terminal reporter (nothing under -qq)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < -1:
            return
        reporter.write_line(self.line(now))

    def line(self, now: float) -> str:
        """Return the progress line: elapsed time, each framework's items, the time left at
        the pace so far."""
        elapsed = now - self.started
        done, total = sum(self.done.values()), sum(self.total.values())
        parts = " · ".join(f"{f} {self.done[f]}/{n}" for f, n in self.total.items())
        left = f"; about {_clock(elapsed * (total - done) / done)} left" if done else ""
        return f"conformance progress {_clock(elapsed)}: {parts}{left}"


def _clock(seconds: float) -> str:
    """Format seconds as m:ss."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"
