"""The entry items' run protocol (`--entries`): pytest's phases through its public hooks, without
the fixture machinery that an entry item does not use.

An entry item checks one entry of a tensor whose adapter call, reference and bound are already
cached by the group (tests/engine/conformance.py), so pytest's per-item protocol is nearly all
of its cost, most of it the setup and teardown of fixtures: a fixture request per item, a
pseudo-fixture for its parameter with its finalizers, the setup state's stack. On this suite's
2-core machine pytest 9 runs about 1,200 trivial items a second that way, well under the 2,000
entry items a second asked of `--entries`.

An item runs here only when nothing in pytest's setup and teardown phases has anything to do
for it: its one fixture is its parameter, it has no marks but `conformance` and its
parametrization (a listed deviation's xfail, a skip, `usefixtures` go the usual way), no option
watches the phases (`--pdb`, `--trace`, `--setup-show`/`-only`/`-plan`) and no plugin but
pytest's own and the engine's hooks into the phases (`pytest_runtest_setup`, `_call`,
`_teardown`). Such an item is run as pytest's own protocol runs one, through the same public
hooks: its start and end are logged, each phase's report is made by `pytest_runtest_makereport`
from a `pytest.CallInfo` (so the results recorder, the deviations and any other plugin see them
as usual) and logged, a failure is offered to `pytest_exception_interact`, and the call phase
is `pytest_runtest_call` itself (output capture, a thread's unhandled exception, -W error, all
as usual). What is left out is what the item does not use: its setup and teardown phases call
no hook (when the next item runs the usual way, or is the last, `pytest_runtest_teardown` runs,
so the fixtures an earlier item set up are finalised as they would be).

In a serial run whose `pytest_runtest_protocol` is only pytest's own and the engine's, the
engine's `pytest_runtestloop` hands each stretch of consecutive lean items of one file to one
protocol call (its first item's), so pytest's per-item wrappers (warnings filters, assertion
hooks) are entered once a stretch; each item still records its own warnings, handed on with
its node id. Any other plugin wrapping the protocol, a faulthandler timeout, an assertion-pass
hook or xdist gives every item its own call, as before.
"""

from __future__ import annotations

import atexit
import bdb
import gc
import warnings

import pytest

FIXTURES = frozenset({"conformance_item"})
MARKS = frozenset({"conformance", "parametrize"})
WATCHING = ("usepdb", "trace", "setupshow", "setuponly", "setupplan")
"""Options under which the phases themselves are watched: every item runs the usual way."""


PHASES_OWN = frozenset({"runner", "skipping", "capturemanager", "threadexception",
                        "unraisableexception", "logging-plugin", "nose", "tests.engine.plugin"})
"""The plugins whose phase hooks have nothing to do for a lean item but what `run` does (the
call phase's hooks run as usual; the engine's own tells the check which item runs; pytest 8's
nose support calls a test function's `setup` attribute, which test_gradient has not)."""

ELIGIBLE = pytest.StashKey[bool]()
LEAN = pytest.StashKey[bool]()
STRETCHES = pytest.StashKey[bool]()
STRETCH = pytest.StashKey[list]()
HOOKS = pytest.StashKey[dict]()
MARKS_ABOVE = pytest.StashKey[tuple]()
"""What `eligible`, `lean`, `stretches`, `_hooks` and `_mark_names` found once, in the stash of
the config, item or parent they were asked of; a stretch handed from the loop to its protocol."""
REPRAISE = (pytest.exit.Exception, KeyboardInterrupt)
"""What a phase lets through instead of reporting (pytest's own phases do the same)."""


def eligible(config: pytest.Config) -> bool:
    """Say whether this run may use the lean protocol at all (asked once a run, after
    collection, when every conftest's hooks are known)."""
    known = config.stash.get(ELIGIBLE, None)
    if known is None:
        hooks = config.hook
        known = config.stash[ELIGIBLE] = bool(config.getoption("entries")) and not any(
            config.getoption(name, False) for name in WATCHING) and all(
            i.plugin_name in PHASES_OWN
            for hook in (hooks.pytest_runtest_setup, hooks.pytest_runtest_call,
                         hooks.pytest_runtest_teardown) for i in hook.get_hookimpls())
    return known


def lean(item: pytest.Item) -> bool:
    """Say whether an item needs nothing of the setup and teardown phases (memoised: asked
    first when the item runs, after every plugin's collection hooks have marked it)."""
    known = item.stash.get(LEAN, None)
    if known is None:
        known = item.stash[LEAN] = (type(item) is pytest.Function and entry_item(item) and
                                    set(getattr(item, "fixturenames", ())) <= FIXTURES and
                                    _mark_names(item) <= MARKS)
    return known


def entry_item(item: pytest.Item) -> bool:
    """Say whether an item checks one entry of the conformance matrix."""
    spec = getattr(item, "callspec", None)
    ci = spec.params.get("conformance_item") if spec is not None else None
    return ci is not None and ci.entry is not None


def _mark_names(item: pytest.Item) -> set[str]:
    """Return the names of `item.iter_markers()`, with its ancestors' gathered once and kept
    on the parent with the number of marks of each level they came from: marks are only ever
    added, so one added to an ancestor during the run is not missed."""
    levels, node = [], item.parent
    while node is not None:
        levels.append(node.own_markers)
        node = node.parent
    sizes = tuple(map(len, levels))
    kept = item.parent.stash.get(MARKS_ABOVE, None) if item.parent is not None else None
    if kept is None or kept[0] != sizes:
        kept = (sizes, frozenset(m.name for marks in levels for m in marks))
        if item.parent is not None:
            item.parent.stash[MARKS_ABOVE] = kept
    return kept[1].union(m.name for m in item.own_markers)


def run(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Run one lean item: log its start, its three phases' reports and its end."""
    ihook = _hooks(item)
    nodeid, location = item.nodeid, item.location
    ihook.pytest_runtest_logstart(nodeid=nodeid, location=location)
    if _phase(ihook, item, pytest.CallInfo.from_call(_nothing, "setup")).passed:
        item.funcargs["conformance_item"] = item.callspec.params["conformance_item"]
        _phase(ihook, item, pytest.CallInfo.from_call(
            lambda: ihook.pytest_runtest_call(item=item), "call", reraise=REPRAISE))
        item.funcargs.clear()
    if nextitem is None or not lean(nextitem):
        down = pytest.CallInfo.from_call(
            lambda: ihook.pytest_runtest_teardown(item=item, nextitem=nextitem), "teardown",
            reraise=REPRAISE)
    else:
        down = pytest.CallInfo.from_call(_nothing, "teardown")
    _phase(ihook, item, down)
    ihook.pytest_runtest_logfinish(nodeid=nodeid, location=location)


def _nothing() -> None:
    """A lean item's setup, and its teardown while the next item is lean too."""


def _phase(ihook, item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Report one phase as pytest's own protocol does: make the report, log it, and offer a
    failure to `pytest_exception_interact`."""
    report = ihook.pytest_runtest_makereport(item=item, call=call)
    ihook.pytest_runtest_logreport(report=report)
    if (call.excinfo is not None and not hasattr(report, "wasxfail") and
            not isinstance(call.excinfo.value, (pytest.skip.Exception, bdb.BdbQuit))):
        ihook.pytest_exception_interact(node=item, call=call, report=report)
    return report


PYTESTS_OWN = frozenset({"runner", "warnings", "assertion", "faulthandler", "unittest"})
"""The plugins whose `pytest_runtest_protocol` a stretch of lean items may share."""


def stretches(session: pytest.Session, own) -> bool:
    """Say whether this run may give a stretch of lean items one `pytest_runtest_protocol`
    call (asked once a run): a serial run whose protocol is pytest's own and the engine's
    (`own`), with no faulthandler timeout (it is set per item) and no assertion-pass hook (it
    is told the item). Each item still gets its own warnings record (`run_stretch`)."""
    config = session.config
    known = config.stash.get(STRETCHES, None)
    if known is None:
        hooks = config.hook
        known = config.stash[STRETCHES] = (
            eligible(config) and not hasattr(config, "workerinput") and
            config.getoption("dist", "no") == "no" and
            all(i.plugin_name in PYTESTS_OWN or i.function is own
                for i in hooks.pytest_runtest_protocol.get_hookimpls()) and
            not hooks.pytest_assertion_pass.get_hookimpls() and
            not float(config.getini("faulthandler_timeout") or 0.0))
    return known


def runtestloop(session: pytest.Session) -> bool | None:
    """Run the session's items as pytest's own loop does, but each stretch of lean items of
    one file through one protocol call, its first item's (`run_stretch` runs the stretch)."""
    config = session.config
    if session.testsfailed and not config.getoption("continue_on_collection_errors"):
        return None  # pytest's own loop says so
    if config.getoption("collectonly"):
        return None
    items, i = session.items, 0
    while i < len(items):
        item, end = items[i], i + 1
        if lean(item):
            while end < len(items) and lean(items[end]) and items[end].path == item.path:
                end += 1
        if end - i > 1:
            config.stash[STRETCH] = items[i:end]
        config.hook.pytest_runtest_protocol(item=item, nextitem=items[end]
                                            if end < len(items) else None)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        i = end
    return True


def run_stretch(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Run a lean item, or the stretch of lean items it starts (`runtestloop`): each one with
    its own warnings record, handed on with its node id as pytest's warnings plugin does."""
    config = item.config
    stretch = config.stash.get(STRETCH, None)
    if stretch is not None:
        del config.stash[STRETCH]
    if not stretch or stretch[0] is not item or len(stretch) == 1:
        run(item, nextitem)
        return
    session, catching = item.session, config.pluginmanager.has_plugin("warnings")
    for k, one in enumerate(stretch):
        following = stretch[k + 1] if k + 1 < len(stretch) else nextitem
        if not catching:
            run(one, following)
        else:
            with warnings.catch_warnings(record=True) as log:
                run(one, following)
            for message in log:
                one.ihook.pytest_warning_recorded.call_historic(kwargs={
                    "warning_message": message, "nodeid": one.nodeid, "when": "runtest",
                    "location": None})
        if session.shouldfail or session.shouldstop:
            return


def _hooks(item: pytest.Item):
    """Return `item.ihook`, the hooks of the item's conftests, found once per file a run."""
    known = item.config.stash.setdefault(HOOKS, {})
    found = known.get(item.path)
    if found is None:
        found = known[item.path] = item.ihook
    return found


def find_locations(items: list[pytest.Item]) -> None:
    """Have each entry item find its location (`Item.location`, kept by pytest) in one pass.

    An item's location asks its function's source file and line of `inspect` and the path's
    relative name; asked as each item runs, between adapter calls and reports, that took about
    86 µs an item on this suite's machine, asked in one pass at collection 28 µs (what it reads
    stays in the processor's caches): some 4 s of an entry run of 76,000 items.
    """
    for item in items:
        if entry_item(item):
            item.location  # noqa: B018 - pytest computes and keeps it on first access


_FREEZING: list[bool] = []
FEW_FULL_COLLECTIONS = (50_000, 20, 100)
"""The collector's thresholds for an entry run: a young pass every 50,000 allocations, and a
full pass only after 100 middle ones (some 10⁸ allocations, so not within a run)."""


def collect_for_many_items(config: pytest.Config) -> None:
    """Keep the garbage collector's full passes out of a run of many small items.

    CPython walks every tracked object in a full pass, and starts one whenever the objects
    that survived into the oldest generation grew by a quarter. An entry run keeps its 76,000
    items, their reports and their records alive to the end, so it grows by a quarter again
    and again: 17 full passes took 6.5 s of a 44 s run on this suite's machine. With these
    thresholds the young generations still free short-lived cycles (an entry run's peak
    memory stayed the same, 1.57 GB); the usual thresholds come back when pytest is done.
    """
    usual = gc.get_threshold()
    gc.set_threshold(*FEW_FULL_COLLECTIONS)
    config.add_cleanup(lambda: gc.set_threshold(*usual))
    freeze_at_exit()


def freeze_at_exit() -> None:
    """Have the interpreter's exit skip walking every object with the garbage collector.

    At exit CPython's last collections traverse every tracked object; after an entry run of
    76,000 items that took 10–15 s of the run's wall time on this suite's machine, all after
    pytest had finished. `gc.freeze()` in an exit handler moves them out of the collector's
    reach first. The process is ending, so nothing that would have been collected outlives it.
    """
    if not _FREEZING:
        _FREEZING.append(True)
        atexit.register(gc.freeze)
