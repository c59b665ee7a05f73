"""The suite's xdist scheduler: a conformance group (one adapter call) runs whole on one worker.

pytest-xdist's `--dist loadgroup` groups by a `@group` suffix that pytest 9.2 no longer lets it
add to node ids (pytest-xdist issue 1386), and its LoadScope schedulers hang when a worker dies
(issues 1323, 1327, 1378). This scheduler reads the group from the node id itself and replaces
xdist's for every load-balancing `--dist` (load, loadgroup, loadscope, loadfile, worksteal);
`--dist each` and runs without xdist are left alone.

- A unit of work is a group: a conformance item's `config-spec` (its id less the tensor and
  entry), else the `@name` an older pytest adds for `xdist_group`, else the item's module.
- A worker is sent whole groups, another one whenever two or fewer of its items remain.
- When a worker dies, the group it was running is lost: the item it died in and the group's
  unrun items are reported crashed and never rerun (the adapter call would crash again).
  Groups it had not started go back to the queue for the other workers or the replacement.
- Unless `--max-worker-restart` is given, xdist replaces up to one crashed worker per group
  besides its own allowance, so a crashing adapter cannot stop the other adapters' items.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest

DISTRIBUTING = ("load", "loadgroup", "loadscope", "loadfile", "worksteal")
"""The --dist modes this scheduler replaces; `each` (every item on every worker) it does not."""
CONFORMANCE = re.compile(r"\[(?P<group>.+)-[Wb][1-9][0-9]*(?:\[[0-9,]*\])?\]$")
"""A conformance item's parameter id: `config-spec-tensor` (W1, b1, …, WL, bL at any depth), an
entry's `[i,j]` after it."""
LOOKAHEAD = 2
"""A worker holds back its last item until it knows the next: send more while ≤ 2 remain."""


def group_of(nodeid: str) -> str:
    """Return the group of a node id: its adapter call, xdist_group name, or module."""
    base, at, name = nodeid.rpartition("@")
    if not at or "]" in name:  # no suffix, or an '@' inside the parameter id
        base, name = nodeid, ""
    found = CONFORMANCE.search(base)
    if found:
        return found["group"]
    return name or base.split("::", 1)[0]


def refuse_each(config: pytest.Config) -> None:
    """Stop a distributed `--dist each` run with a usage error (see the module's docstring)."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") != "each":
        return
    if config.getoption("tx", None):
        raise pytest.UsageError(
            "--dist each: not supported: every item would run on every worker, in one results "
            "file, and pytest-xdist's each scheduler fails (INTERNALERROR) when a replaced worker "
            "crashes; use --dist load (-n's default), or one run per environment and "
            "`python -m reports merge`")


def allow_a_crash_per_group(config: pytest.Config, groups: int) -> None:
    """Let each of the run's groups crash a worker before xdist stops replacing them.

    xdist stops after 4 crashed workers per worker (`--max-worker-restart`) and leaves the rest
    unrun; here each crash costs only its group, so a crashing adapter gets no further than its
    own groups and every other adapter's items still run. An explicit option is kept.
    """
    option = config.option
    workers = getattr(option, "numprocesses", None)
    if hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 1:
        return
    if getattr(option, "maxworkerrestart", "") is None:
        option.maxworkerrestart = str(4 * workers + groups)


def make(config: pytest.Config, log):
    """Return the suite's scheduler for a load-balanced run, None to leave xdist's."""
    if config.getvalue("dist") not in DISTRIBUTING:
        return None
    return GroupScheduling(config, log)


class GroupScheduling:
    """Send whole groups to workers; on a crash, drop the running group, requeue the rest."""

    def __init__(self, config: pytest.Config, log):
        from xdist.workermanage import parse_tx_spec_config

        self.config = config
        self.log = log.groupsched
        self.numnodes = len(parse_tx_spec_config(config))
        self.collection: list[str] | None = None
        self.queue: OrderedDict[str, list[str]] = OrderedDict()  # group → its unrun node ids
        self.assigned: dict = {}  # node → OrderedDict(group → node ids sent, not finished)
        self.collections: dict = {}  # node → the node ids it collected
        self.indexes: dict = {}  # node → {node id: its index in that collection}

    @property
    def nodes(self) -> list:
        return list(self.assigned)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.collections) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        """Say whether nothing is left but each worker's last item (run on shutdown)."""
        return (self.collection_is_completed and not self.queue
                and all(self._pending(n) < LOOKAHEAD for n in self.assigned))

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(self._pending(n) for n in self.assigned)

    def add_node(self, node) -> None:
        self.assigned[node] = OrderedDict()

    def add_node_collection(self, node, collection) -> None:
        """Register a worker's items; stop a late worker that collected different ones."""
        if self.collection is not None and list(collection) != self.collection:
            from xdist.report import report_collection_diff

            first = next(iter(self.collections))
            self.log(report_collection_diff(self.collection, list(collection),
                                            first.gateway.id, node.gateway.id))
            node.shutdown()
            return
        self.collections[node] = list(collection)
        self.indexes[node] = {nodeid: i for i, nodeid in enumerate(collection)}

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        nodeid = self.collections[node][item_index]
        units, group = self.assigned[node], group_of(nodeid)
        pending = units.get(group, [])
        if nodeid in pending:
            pending.remove(nodeid)
        if not pending:
            units.pop(group, None)  # a finished group is never handed out again
        self._reschedule(node)

    def mark_test_pending(self, item: str) -> None:
        """Queue one item again (for plugins that rerun a crashed item)."""
        self.queue.setdefault(group_of(item), []).append(item)
        self.queue.move_to_end(group_of(item), last=False)
        for node in self.nodes:
            self._reschedule(node)

    def remove_pending_tests_from_node(self, node, indices) -> None:
        raise NotImplementedError("work stealing is not used by the group scheduler")

    def remove_node(self, node) -> str | None:
        """Forget a worker; if it died, return the item it died in and requeue unstarted groups."""
        units = self.assigned.pop(node)
        if not any(units.values()):
            return None
        _, lost = next(iter(units.items()))  # workers run their items in the order sent
        crashitem, *unrun = lost
        for nodeid in unrun:
            self._report_lost(nodeid, crashitem, node)
        for group, nodeids in reversed(list(units.items())[1:]):
            self.queue[group] = nodeids
            self.queue.move_to_end(group, last=False)
        for other in self.nodes:
            self._reschedule(other)
        return crashitem

    def schedule(self) -> None:
        """Queue every group once all workers have collected; then keep each one busy."""
        assert self.collection_is_completed
        if self.collection is None:
            if not self._same_collections():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = next(iter(self.collections.values()))
            for nodeid in self.collection:
                self.queue.setdefault(group_of(nodeid), []).append(nodeid)
        for node in self.nodes:
            self._reschedule(node)

    def _reschedule(self, node) -> None:
        """Send whole groups until the worker has more than LOOKAHEAD items; shut it when done."""
        if node.shutting_down or node not in self.collections:
            return
        while self.queue and self._pending(node) <= LOOKAHEAD:
            group, nodeids = self.queue.popitem(last=False)
            self.assigned[node][group] = nodeids
            node.send_runtest_some([self.indexes[node][n] for n in nodeids])
        if not self.queue:
            node.shutdown()  # the worker runs what it holds, then stops

    def _pending(self, node) -> int:
        return sum(len(ids) for ids in self.assigned.get(node, {}).values())

    def _same_collections(self) -> bool:
        """Say whether all workers collected the same items; report the difference if not."""
        from xdist.report import report_collection_diff

        (first, col), *others = self.collections.items()
        same = True
        for node, other in others:
            msg = report_collection_diff(col, other, first.gateway.id, node.gateway.id)
            if msg:
                same = False
                self.config.hook.pytest_collectreport(report=pytest.CollectReport(
                    nodeid=node.gateway.id, outcome="failed", longrepr=msg, result=[]))
        return same

    def _report_lost(self, nodeid: str, crashitem: str, node) -> None:
        """Report an item of the crashed group that will not run, as xdist reports a crash."""
        where = nodeid.split("::")[0]
        report = pytest.TestReport(
            nodeid=nodeid, location=(where, None, where), keywords={}, outcome="failed",
            longrepr=f"not run: worker {node.gateway.id!r} crashed while running {crashitem!r} "
                     "of the same group", when="???")
        report.node = node
        self.config.hook.pytest_runtest_logreport(report=report)
