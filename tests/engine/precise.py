"""More precise than asked: the note on a passing float32 group whose gradients were computed
partly in float64 (reference/precision.py), and its line in the terminal's summary.

The note fails nothing: the gradients are right. A comparison study that times a float32 run
computed in float64 is misled, so the note travels with each of the group's items into the
results (`note`), the HTML report and, on the controller, one summary line per group:

    conformance notes: 1 group more precise than asked (it passes)
      planted_float64_run-cpu-float32-…-b32-s0: more precise than asked: W1, b1, … rounded once
"""

from __future__ import annotations

import pytest

from reference.compare import Diagnosis
from reference.precision import read
from tests.engine import second
from tests.engine.matrix import Item

PROPERTY = "conformance_note"
"""The name of the user property a noted item's call report carries: {group, note}."""

_LAST: dict = {}
"""The last group read and its note (a group's items are adjacent and share its gradients)."""


def note(item: Item, got: dict, ref: dict, diag: Diagnosis | None) -> str | None:
    """Return the group's note, None where there is none: a float32 first-order group that
    passes as float32, computed (in part) in float64 and rounded once."""
    c = item.config
    if c.dtype != "float32" or c.order == second.SECOND or diag is None or diag.fails:
        return None
    if _LAST.get("group") != item.group or _LAST.get("got") is not got:
        _LAST.clear()
        _LAST.update(group=item.group, got=got, note=_read(item, got, ref))
    return _LAST["note"]


def _read(item: Item, got: dict, ref: dict) -> str | None:
    from tests.engine.conformance import bounds_for, case_for, simulated_for

    spec = item.spec
    noise = {k: 2 * v for k, v in bounds_for(spec, "float64").items()}  # the reference's, the run's
    found = read(case_for(spec), got, ref, noise, simulated_for(spec, "float32"))
    return str(found) if found else None


def register(config: pytest.Config) -> None:
    """Register the notes' reporting (every process: workers hand their notes on)."""
    if not config.pluginmanager.has_plugin("conformance-notes"):
        config.pluginmanager.register(Notes(), "conformance-notes")


class Notes:
    """Hands each noted item's note on with its call report; on the controller, gathers them
    and writes the summary lines (a plugin object: its hooks are pytest's)."""

    def __init__(self):
        self.groups: dict[str, str] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        from reports.record import COMPARED

        seen = item.stash.get(COMPARED, None) or {}
        ci = seen.get("item")
        if call.when == "call" and seen.get("note") and ci is not None:
            report.user_properties.append((PROPERTY, {"group": ci.group, "note": seen["note"]}))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, dict):
                self.groups.setdefault(str(value.get("group")), str(value.get("note")))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Say which groups were computed more precisely than asked, one line each."""
        for line in self.lines():
            terminalreporter.write_line(line)

    def lines(self) -> list[str]:
        """Return the summary's lines: a count, then each noted group and its note."""
        n = len(self.groups)
        if not n:
            return []
        head = (f"conformance notes: {n} group{'s' if n > 1 else ''} more precise than asked "
                f"({'they pass' if n > 1 else 'it passes'})")
        return [head, *(f"  {g}: {text}" for g, text in self.groups.items())]


__all__ = ["PROPERTY", "Notes", "note", "register"]
