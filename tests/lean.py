"""The entry items' run protocol (`--entries`): pytest's phases without their fixture machinery.

An entry item checks one entry of a tensor whose adapter call, reference and bound are already
cached by the group (tests/conformance.py), so pytest's per-item protocol is nearly all of its
cost: a fixture request and signature inspection per phase, three calls of every phase hook, an
output capture per phase. On this suite's 2-core machine pytest 9 runs about 1,200 trivial
items a second that way, well under the 2,000 entry items a second asked of `--entries`.

An item runs here only when nothing in pytest's setup and teardown phases has anything to do
for it: its fixtures are only its parameter and `request`, it has no marks but `conformance`
and its parametrization (a listed deviation's xfail, a skip, `usefixtures` go the usual way),
no option watches the phases (`--pdb`, `--trace`, `--setup-show`/`-only`/`-plan`) and no plugin
but pytest's own hooks into the phases (`pytest_runtest_setup`, `_call`, `_teardown`). Such an
item still has the three reports, made by `pytest_runtest_makereport` (so the results
recorder, the deviations and any other plugin see them as usual) and logged in order, and its
test function runs through `pytest_pyfunc_call` with its output captured and a thread's
unhandled exception reported as pytest's call phase reports it. What is left out is what the
item does not use: fixture setup and teardown (when the next item runs the usual way, or is the
last, the usual teardown runs, so the fixtures an earlier item set up are finalised as they
would be) and the PYTEST_CURRENT_TEST variable.

In a serial run whose `pytest_runtest_protocol` is only pytest's own and the suite's, the
suite's `pytest_runtestloop` hands each stretch of consecutive lean items of one file to one
protocol call (its first item's), so pytest's per-item wrappers (warnings filters, assertion
hooks) are entered once a stretch; each item still records its own warnings, handed on with
its node id. Any other plugin wrapping the protocol, a faulthandler timeout, an assertion-pass
hook or xdist gives every item its own call, as before.
"""

from __future__ import annotations

import atexit
import gc
import time
import warnings

import pytest
from _pytest import threadexception
from _pytest.outcomes import Exit
from _pytest.reports import TestReport
from _pytest.runner import CallInfo, call_and_report, check_interactive_exception

FIXTURES = frozenset({"conformance_item", "request"})
MARKS = frozenset({"conformance", "parametrize"})
WATCHING = ("usepdb", "trace", "setupshow", "setuponly", "setupplan")
"""Options under which the phases themselves are watched: every item runs the usual way."""


PHASES_OWN = frozenset({"runner", "skipping", "capturemanager", "threadexception",
                        "unraisableexception", "logging-plugin"})
"""The plugins whose phase hooks have nothing to do for a lean item but what `run` does."""


def eligible(config: pytest.Config) -> bool:
    """Say whether this run may use the lean protocol at all (asked once a run, after
    collection, when every conftest's hooks are known)."""
    known = getattr(config, "_lean", None)
    if known is None:
        hooks = config.hook
        known = config._lean = bool(config.getoption("entries")) and not any(
            getattr(config.option, name, False) for name in WATCHING) and all(
            i.plugin_name in PHASES_OWN
            for hook in (hooks.pytest_runtest_setup, hooks.pytest_runtest_call,
                         hooks.pytest_runtest_teardown) for i in hook.get_hookimpls())
    return known


def lean(item: pytest.Item) -> bool:
    """Say whether an item needs nothing of the setup and teardown phases (memoised: asked
    first when the item runs, after every plugin's collection hooks have marked it)."""
    known = getattr(item, "_lean", None)
    if known is None:
        known = item._lean = (type(item) is pytest.Function and entry_item(item) and
                              set(getattr(item, "fixturenames", ())) <= FIXTURES and
                              _mark_names(item) <= MARKS)
    return known


def entry_item(item: pytest.Item) -> bool:
    """Say whether an item checks one entry of the conformance matrix."""
    spec = getattr(item, "callspec", None)
    ci = spec.params.get("conformance_item") if spec is not None else None
    return ci is not None and ci.entry is not None


def _mark_names(item: pytest.Item) -> set[str]:
    """Return the names of `item.iter_markers()`, with its ancestors' gathered once."""
    above = _ancestors(item, "_lean_marks_above", lambda node: node.own_markers,
                       lambda levels: frozenset(m.name for marks in levels for m in marks))
    return above.union(m.name for m in item.own_markers)


def _ancestors(item: pytest.Item, key: str, level, gather):
    """Return `gather` of `level` of each of the item's ancestors, parent first, kept on the
    parent with the size of each level it came from: marks and keywords are only ever added,
    so one added to an ancestor during the run is not missed."""
    levels, node = [], item.parent
    while node is not None:
        levels.append(level(node))
        node = node.parent
    if not levels:
        return gather(levels)
    sizes = tuple(map(len, levels))
    kept = item.parent.__dict__.get(key)
    if kept is None or kept[0] != sizes:
        kept = item.parent.__dict__[key] = (sizes, gather(levels))
    return kept[1]


def run(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Run one lean item: log its start, its three reports and its end."""
    ihook = _hooks(item)
    nodeid, location = item.nodeid, item.location
    ihook.pytest_runtest_logstart(nodeid=nodeid, location=location)
    now = time.time()
    setup = CallInfo(None, None, start=now, stop=now, duration=0.0, when="setup",
                     _ispytest=True)
    report = ihook.pytest_runtest_makereport(item=item, call=setup)
    ihook.pytest_runtest_logreport(report=report)
    if report.passed:
        item.funcargs["conformance_item"] = item.callspec.params["conformance_item"]
        item.funcargs["request"] = item._request
        with _capture(item.config).item_capture("call", item):
            call = CallInfo.from_call(lambda: _call(ihook, item), when="call",
                                      reraise=(Exit, KeyboardInterrupt))
        report = ihook.pytest_runtest_makereport(item=item, call=call)
        ihook.pytest_runtest_logreport(report=report)
        if check_interactive_exception(call, report):
            ihook.pytest_exception_interact(node=item, call=call, report=report)
    item.funcargs.clear()
    if nextitem is None or not lean(nextitem):
        call_and_report(item, "teardown", log=True, nextitem=nextitem)
    else:
        now = time.time()
        down = CallInfo(None, None, start=now, stop=now, duration=0.0, when="teardown",
                        _ispytest=True)
        ihook.pytest_runtest_logreport(report=ihook.pytest_runtest_makereport(item=item,
                                                                              call=down))
    ihook.pytest_runtest_logfinish(nodeid=nodeid, location=location)


PYTESTS_OWN = frozenset({"runner", "warnings", "assertion", "faulthandler", "unittest"})
"""The plugins whose `pytest_runtest_protocol` a stretch of lean items may share."""


def stretches(session: pytest.Session, own) -> bool:
    """Say whether this run may give a stretch of lean items one `pytest_runtest_protocol`
    call (asked once a run): a serial run whose protocol is pytest's own and the suite's
    (`own`), with no faulthandler timeout (it is set per item) and no assertion-pass hook (it
    is told the item). Each item still gets its own warnings record (`run_stretch`)."""
    config = session.config
    known = getattr(config, "_lean_stretches", None)
    if known is None:
        hooks = config.hook
        known = config._lean_stretches = (
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
    if session.testsfailed and not config.option.continue_on_collection_errors:
        return None  # pytest's own loop says so
    if config.option.collectonly:
        return None
    items, i = session.items, 0
    while i < len(items):
        item, end = items[i], i + 1
        if lean(item):
            while end < len(items) and lean(items[end]) and items[end].path == item.path:
                end += 1
        if end - i > 1:
            config._lean_stretch = items[i:end]
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
    stretch = config.__dict__.pop("_lean_stretch", None)
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


def _call(ihook, item: pytest.Item) -> None:
    """Call the test function, then report a thread's unhandled exception as pytest's own
    call phase does (a warning, or the phase's error under -W error)."""
    ihook.pytest_pyfunc_call(pyfuncitem=item)
    pending = item.config.stash.get(threadexception.thread_exceptions, None)
    if pending:
        threadexception.collect_thread_exception(item.config)


def _hooks(item: pytest.Item):
    """Return `item.ihook`, the hooks of the item's conftests, found once per file a run
    (`Function.runtest` is `ihook.pytest_pyfunc_call`: the call phase asks it here too)."""
    known = item.config.__dict__.setdefault("_lean_hooks", {})
    found = known.get(item.path)
    if found is None:
        found = known[item.path] = item.ihook
    return found


def _capture(config: pytest.Config):
    """Return pytest's capture manager (looked up once a run)."""
    found = getattr(config, "_lean_capture", None)
    if found is None:
        found = config._lean_capture = config.pluginmanager.get_plugin("capturemanager")
    return found


class Reports:
    """Makes a lean item's passing reports (registered by tests/conftest.py for entry runs):
    what pytest's own `TestReport.from_item_and_call` makes, with the item's keywords gathered
    once for its three reports instead of walking its node chain for each. A failing phase,
    and any other item, gets pytest's own report."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: CallInfo) -> TestReport | None:
        if call.excinfo is not None or not eligible(item.config) or not lean(item):
            return None
        keywords = item.__dict__.get("_lean_keywords")
        if keywords is None:
            keywords = item._lean_keywords = _keywords(item)
        sections = [(f"Captured {key} {when}", content)
                    for when, key, content in item._report_sections]
        return TestReport(getattr(item, "id", None) or item.nodeid, item.location,
                          dict(keywords), "passed", None, call.when, sections, call.duration,
                          call.start, call.stop, user_properties=item.user_properties)


def _keywords(item: pytest.Item) -> dict:
    """Return `dict.fromkeys(item.keywords, 1)`, with its ancestors' part gathered once.

    `NodeKeywords` iterates a node's own names, then its parent's that are not among them, up
    to the session, through one generator a level: the first occurrence along the chain fixes
    each name's place, as a dict's update keeps it."""
    try:
        out = dict.fromkeys(item.keywords._markers, 1)
        out.update(_ancestors(item, "_lean_keywords_above",
                              lambda node: node.keywords._markers, _names_in_order))
    except AttributeError:  # not pytest's NodeKeywords: iterate them
        return dict.fromkeys(item.keywords, 1)
    return out


def _names_in_order(levels: list[dict]) -> dict:
    out: dict = {}
    for names in levels:
        out.update(dict.fromkeys(names, 1))
    return out


def share_locations(items: list[pytest.Item]) -> None:
    """Give each entry item its location from its function's, found once per function.

    `Item.location` asks the function's source file and line of `inspect` for every item; an
    entry run has tens of thousands of items of one function, which differ only in the name.
    """
    seen: dict[object, tuple[str, int | None]] = {}
    for item in items:
        obj = getattr(item, "function", None)
        if obj is None or type(item) is not pytest.Function or not entry_item(item):
            continue
        known = seen.get(obj)
        if known is None:
            path, line, _ = item.location
            seen[obj] = (path, line)
        else:  # a module's function's path in it is its name (getmodpath, without the walk)
            name = item.name if isinstance(item.parent, pytest.Module) else item.getmodpath()
            item.__dict__["location"] = (*known, name)


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
