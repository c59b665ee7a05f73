"""Known deviations: items listed, by id or fnmatch pattern, with the reason they fail.

A deviations file (the suite's own is tests/deviations.txt) holds one entry a line,

    PATTERN  REASON

PATTERN is an item's id (`torch-cpu-float64-softplus-tanh-784x16x10-b1-s0-W1`), its node id
(`tests/test_activations.py::test_x[...]`) or a pattern of either with the wildcards `*` and `?`
(brackets are literal, as in ids: `W1[3,701]`); REASON, the rest of
the line, says what the framework does and where it is documented. `#` starts a comment line.
A listed item that fails is reported as xfailed with its reason; one that passes fails the run
as "stopped deviating" (strict), so the file never outlives what it documents.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path
from typing import NamedTuple

import pytest

SHIPPED = Path(__file__).resolve().parent / "deviations.txt"


class Deviation(NamedTuple):
    """One line of a deviations file."""

    pattern: str
    reason: str
    where: str  # file:line, for the message

    def matches(self, item: pytest.Item) -> bool:
        """Say whether the pattern names the item, by its id or its node id."""
        ids = (getattr(getattr(item, "callspec", None), "id", None), item.nodeid)
        match = _compiled(self.pattern)
        return any(i is not None and match(i) is not None for i in ids)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str):
    """Return the match of a pattern (fnmatch's `*` and `?`; brackets are literal)."""
    return re.compile(_translated(pattern)).match


def _translated(pattern: str) -> str:
    literal = pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return fnmatch.translate(literal)


def _any_of(deviations: list[Deviation]):
    """Return the match of one expression that any of the patterns matches: an item it does
    not name needs no pattern tried one by one (an entry run has 76,000 such items)."""
    return re.compile("|".join(f"(?:{_translated(d.pattern)})" for d in deviations)).match


def read(path: Path) -> list[Deviation]:
    """Return a file's deviations, or raise UsageError naming a line without a reason."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise pytest.UsageError(f"--deviations {path}: cannot read: {exc.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pattern, _, reason = text.partition(" ")
        if not reason.strip():
            raise pytest.UsageError(f"{path}:{n}: {pattern!r} has no reason; write "
                                    "PATTERN  REASON (what deviates, and where it is documented)")
        out.append(Deviation(pattern, reason.strip(), f"{path.name}:{n}"))
    return out


def files(values: list[str]) -> list[Path]:
    """Return the files to apply: the shipped list, then each --deviations FILE; `none` drops
    those before it."""
    paths = [SHIPPED]
    for v in values:
        paths = [] if v == "none" else [*paths, Path(v)]
    return paths


def mark(items: list[pytest.Item], deviations: list[Deviation]) -> None:
    """Mark each listed item as a strict xfail with its reason (the first matching line)."""
    if not deviations:
        return
    named = _any_of(deviations)
    for item in items:
        spec_id = getattr(getattr(item, "callspec", None), "id", None)
        if not ((spec_id is not None and named(spec_id)) or named(item.nodeid)):
            continue
        found = next((d for d in deviations if d.matches(item)), None)
        if found is not None:
            item.add_marker(pytest.mark.xfail(reason=f"documented deviation ({found.where}): "
                                                     f"{found.reason}", strict=True))
            item.stash[KEY] = found


KEY = pytest.StashKey[Deviation]()


def stopped(item: pytest.Item, report: pytest.TestReport) -> None:
    """Rewrite a listed item's strict XPASS as the finding it is: it stopped deviating."""
    found = item.stash.get(KEY, None)
    if found is None or report.when != "call" or not report.failed:
        return
    if "XPASS(strict)" not in str(report.longrepr):
        return
    report.longrepr = (f"stopped deviating: {item.nodeid} passed, but {found.where} lists it "
                       f"({found.pattern!r}: {found.reason}); remove or narrow that line")
