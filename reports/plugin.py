"""Records every conformance item as data (results JSON) and writes the HTML report.

Workers (and a run without xdist) summarise each item in `pytest_runtest_makereport` and ship
the summary in `report.user_properties`; only the controller collects, so `-n auto` loses
nothing. Items that were collected but never reported come out as crashed when a worker
started them (it died), else as not run (the run ended first: stopped, or xdist stopped
replacing crashed workers).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from reports import encoding, files, provenance, record
from reports.record import recording

PROPERTY = "backprop_conformance"
"""The user_properties name of an item's summary."""
RANK = {"passed": 0, "xpassed": 1, "xfailed": 1, "skipped": 1, "failed": 2, "error": 2,
        "crashed": 3}
"""A later phase's outcome replaces an earlier one's only when it ranks higher (a teardown
error after a pass; a worker crash (xdist reports it as phase '???') after anything)."""
MESSAGE_CHARS = record.MESSAGE_CHARS
RUN_OPTIONS = ("keyword", "markexpr", "maxfail", "numprocesses", "dist", "maxworkerrestart")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("reports", "conformance results and report")
    g.addoption("--results", metavar="PATH", default=None,
                help="write every conformance item with its provenance as JSON to PATH "
                     "(e.g. reports/out/results.json); a symlink is written through to its "
                     "target, a FIFO, device or folder is refused")
    g.addoption("--report", metavar="PATH", default=None,
                help="write the self-contained HTML report to PATH (e.g. reports/out/report.html)"
                     "; not the --results path; symlinks and special files as for --results")




def pytest_configure(config: pytest.Config) -> None:
    if recording(config) and not hasattr(config, "workerinput"):
        check_outputs(config)
        config.pluginmanager.register(Recorder(config), "reports-recorder")


def check_outputs(config: pytest.Config) -> None:
    """Refuse, before any test runs, --results and --report at one file, or at a path that is
    not a regular file (a FIFO, a device, a folder: never replaced)."""
    targets = {}
    for kind in ("results", "report"):
        if config.getoption(kind):
            path = config.invocation_params.dir / config.getoption(kind)
            try:
                target = files.writable_target(path)
            except OSError as exc:
                raise pytest.UsageError(f"--{kind} {path}: {exc.strerror}") from None
            if target in targets:
                raise pytest.UsageError(f"--results and --report are one file ({target}); "
                                        "give two paths")
            targets[target] = kind


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when in ("setup", "call") and recording(item.config):
        data = capture(item, call.when)
        if data is not None:
            report.user_properties.append((PROPERTY, data))
    return report


def capture(node: pytest.Item, when: str) -> dict | None:
    """Return a conformance item's parameters, or after its call what was compared."""
    if when != "call":  # the setup report carries the parameters, the call's what was compared
        recorder = node.config.pluginmanager.get_plugin("reports-recorder")
        if when == "setup" and recorder is not None and node.nodeid in recorder.params:
            return None  # this process's recorder has them from the collection
    item = record.conformance_param(node)
    if item is None:
        return None
    seen = node.stash.get(record.COMPARED, None) or {}
    adapters = node.config.stash.get(record.ADAPTERS, None) or {}
    adapter = seen.get("adapter") or adapters.get(getattr(item.config, "adapter", None))
    if when != "call":
        return {"params": record.params(item, adapter)}
    data = {"fingerprint": seen.get("fingerprint"), "note": seen.get("note"),
            "details": {k: record.jsonable_or_text(v) for k, v in seen.items()
                        if k not in ("item", "adapter", "comparison", "fingerprint", "note")}}
    if seen.get("comparison") is not None:
        try:
            data["comparison"] = record.summarize(seen["comparison"], getattr(item, "entry", None))
        except Exception as exc:  # noqa: BLE001 - a bug here must cost the summary only
            data["details"]["reports_error"] = f"{type(exc).__name__}: {exc}"
    return data


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Tell each xdist worker where to leave its collected items' parameters."""
    recorder = node.config.pluginmanager.get_plugin("reports-recorder")
    if recorder is not None:
        node.workerinput["reports_dir"] = recorder.scratch()


def pytest_collection_finish(session: pytest.Session) -> None:
    """On a worker, write what each collected item is, for items its crash leaves unreported."""
    where = getattr(session.config, "workerinput", {}).get("reports_dir")
    if where and recording(session.config):
        name = f"{session.config.workerinput.get('workerid', 'gw')}.json"
        files.write_text(Path(where) / name, json.dumps(collected(session.items)))


def collected(items: list[pytest.Item]) -> dict[str, dict]:
    """Return {nodeid: parameters} of the conformance items among these."""
    out = {}
    for node in items:
        data = capture(node, "collect")
        if data is not None:
            out[node.nodeid] = data["params"]
    return out


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a worker, hand the controller the accelerators this process saw."""
    if hasattr(session.config, "workeroutput") and recording(session.config):
        session.config.workeroutput["reports_accelerators"] = provenance.accelerators()


SCRATCH = "bpc-reports-"
"""The start of the name of a recorder's scratch folder (in the system's temporary folder)."""


def scratch_folder() -> str:
    """Return a new private folder for the workers' collections, named with this process
    (`files.scratch_tag`); first remove those that killed runs left behind."""
    files.sweep(Path(tempfile.gettempdir()), SCRATCH)
    return tempfile.mkdtemp(prefix=f"{SCRATCH}{files.scratch_tag()}.")


class Recorder:
    """The controller's side: gathers reports into items, writes results and the report."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.started = provenance.now()
        self.records: dict[str, dict] = {}
        self.order: list[str] = []
        self.params: dict[str, dict] = {}
        self.began: set[str] = set()  # the items a process started (their logstart)
        self.accelerators: dict[str, list] = {}
        self.collection_errors: list[str] = []
        self.written: list[tuple[str, Path]] = []
        self.failed: list[str] = []
        self._scratch: str | None = None

    def scratch(self) -> str:
        """Return a private directory that workers write their collections to."""
        if self._scratch is None:
            self._scratch = scratch_folder()
        return self._scratch

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.order = [i.nodeid for i in session.items]
        self.params.update(collected(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if not self.order:
            self.order = list(ids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        for kind, names in (getattr(node, "workeroutput", None) or {}).get(
                "reports_accelerators", {}).items():
            self.accelerators[kind] = sorted({*self.accelerators.get(kind, []), *names})

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.began.add(nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}: {one_line(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rec = self._record(report.nodeid)
        rec["duration"] = rec.get("duration", 0.0) + (report.duration or 0.0)
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, dict):
                rec.update({k: v for k, v in value.items() if k != "params"})
                if value.get("params"):
                    self.params.setdefault(report.nodeid, value["params"])
        verdict = phase_outcome(report)
        if verdict and ("outcome" not in rec or RANK[verdict[0]] > RANK[rec["outcome"]]):
            rec["outcome"], rec["reason"], rec["message"] = verdict

    def _record(self, nodeid: str) -> dict:
        return self.records.setdefault(nodeid, {})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        doc = self.document(session, int(exitstatus))
        try:
            self.write(doc)
        finally:
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)
        if self.failed and session.exitstatus in (pytest.ExitCode.OK,
                                                  pytest.ExitCode.NO_TESTS_COLLECTED):
            # The tests passed, but what was asked for is not there: CI must not go green.
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def document(self, session: pytest.Session, exitstatus: int) -> dict:
        """Return this run's results document."""
        self._read_worker_collections()
        run = {"id": provenance.run_id(self.started),
               "provenance": self.provenance(exitstatus)}
        stopped = exitstatus == pytest.ExitCode.INTERRUPTED or bool(
            session.shouldstop or session.shouldfail or self.config.getoption("collectonly"))
        items = [self._item(run["id"], n, stopped) for n in self._nodeids()]
        run["provenance"]["seeds"] = sorted({i["spec"].get("seed") for i in items
                                             if isinstance(i.get("spec"), dict)} - {None})
        return encoding.document([run], items)

    def _read_worker_collections(self) -> None:
        """Add the parameters workers wrote at collection (the only trace of unrun items)."""
        for path in sorted(Path(self._scratch).glob("*.json")) if self._scratch else []:
            try:
                for nodeid, params in json.loads(path.read_text()).items():
                    self.params.setdefault(nodeid, params)
            except (OSError, ValueError):
                continue

    def _nodeids(self) -> list[str]:
        """Return the conformance items in collection order, then any reported beyond it; each
        once (`--keep-duplicates` collects an item twice: one record holds both runs)."""
        ids = [n for n in dict.fromkeys(self.order) if n in self.params]
        known = set(ids)
        return ids + sorted(n for n in self.records if n in self.params and n not in known)

    def _item(self, run_id: str, nodeid: str, stopped: bool) -> dict:
        """Return one item of the results: parameters, outcome, comparison, timing."""
        rec = self.records.get(nodeid, {})
        outcome, reason = rec.get("outcome"), rec.get("reason")
        if stopped and outcome is None:
            outcome, reason = "not run", "the run stopped before it"
        elif outcome is None and nodeid in self.began:
            outcome, reason = "crashed", "never reported: the worker running it died"
        elif outcome is None:
            outcome, reason = "not run", "never started: the run ended before a worker ran it"
        item = {"run": run_id, "nodeid": nodeid, **self.params[nodeid], "outcome": outcome,
                "reason": record.capped(reason, record.REASON_CHARS),
                "message": record.capped(rec.get("message"), MESSAGE_CHARS),
                "fingerprint": rec.get("fingerprint"), "details": rec.get("details") or {},
                **({"note": rec["note"]} if rec.get("note") else {}),
                "comparison": rec.get("comparison"),
                "duration": round(rec.get("duration", 0.0), 6)}
        return item

    def provenance(self, exitstatus: int) -> dict:
        """Return where, when and how this run happened."""
        frameworks = {str(p.get("framework")) for p in self.params.values() if p.get("framework")}
        adapters = self.config.stash.get(record.ADAPTERS, None) or {}
        frameworks |= {record.framework_of(a) for a in adapters.values()} - {""}
        dists = {d for a in adapters.values() for d in record.declared(a)}
        dists |= {str(d) for p in self.params.values()
                  for d in (p.get("distributions") or {}) if isinstance(d, str)}
        return {
            "started": self.started, "finished": provenance.now(), "exitstatus": exitstatus,
            "argv": list(sys.argv), "args": [str(a) for a in self.config.invocation_params.args],
            "versions": provenance.versions(frameworks, dists), "machine": provenance.machine(),
            "devices": {"cpu": provenance.cpu_model(), **self.accelerators,
                        **provenance.accelerators()},
            "git": provenance.git(), "options": options(self.config),
            "collection_errors": self.collection_errors,
        }

    def write(self, doc: dict) -> None:
        """Write the results and the report the options ask for, as one: both temporary files
        first, then both renames under a lock, so two runs never mix their files."""
        base = self.config.invocation_params.dir
        kinds = {base / self.config.getoption(k): k for k in ("results", "report")
                 if self.config.getoption(k)}
        texts = {}
        for path, kind in kinds.items():
            try:
                texts[path] = self._text(kind, doc, (base, path.parent))
            except Exception as exc:  # noqa: BLE001 - a renderer's bug must not cost the results
                self.failed.append(f"conformance {kind}: cannot render {path}: "
                                   f"{type(exc).__name__}: {exc}")
        written, errors = files.write_texts(texts)
        self.written += [(kinds[p], p) for p in written]
        for path, exc in errors:
            self.failed.append(f"conformance {kinds[path]}: cannot write {path}: "
                               f"{exc.strerror or exc}")

    @staticmethod
    def _text(kind: str, doc: dict, links: tuple) -> str:
        if kind == "results":
            return encoding.dumps(doc)
        from reports.html import render  # Jinja2 only when a page is asked for

        return render(doc, links)  # the results' paths start from the run's working folder

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for kind, path in self.written:
            terminalreporter.write_line(f"conformance {kind}: {path.resolve()}")
        for line in self.failed:
            terminalreporter.write_line(line, red=True)


def phase_outcome(report: pytest.TestReport) -> tuple[str, str | None, str | None] | None:
    """Return (outcome, one-line reason, full message) a phase's report settles, if any."""
    if report.when not in ("setup", "call", "teardown"):
        return "crashed", one_line(report), _message(report)
    if report.passed:
        if report.when != "call":
            return None
        wasxfail = getattr(report, "wasxfail", None)
        return ("xpassed", wasxfail or None, None) if wasxfail is not None else ("passed", None,
                                                                                 None)
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return "xfailed", report.wasxfail or None, None
        return "skipped", skip_reason(report), None
    if report.when == "call":
        return "failed", one_line(report), _message(report)
    return "error", f"error in {report.when}: {one_line(report)}", _message(report)


def skip_reason(report: pytest.TestReport) -> str:
    """Return why an item was skipped, without pytest's `Skipped: ` prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def one_line(report) -> str:
    """Return a failure's first meaningful line: the exception's message or the text's first."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = (crash.message if crash is not None else "") or str(report.longrepr)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first.removeprefix("Failed: ")


def _message(report: pytest.TestReport) -> str:
    """Return the failure's text as pytest shows it, less xdist's `[gw0] …` worker line."""
    return str(report.longrepr)[:MESSAGE_CHARS]


def options(config: pytest.Config) -> dict:
    """Return the conformance options of the run (all of its group) and the run's shape."""
    names = config.stash.get(record.OPTIONS, [])
    return {n: record.plain(config.getoption(n, None)) for n in [*names, *RUN_OPTIONS]}
