"""Known deviations: items listed, by id or fnmatch pattern, with the reason they fail.

A deviations file (the suite's own is tests/deviations.txt) holds one entry a line,

    PATTERN  REASON

in UTF-8 (a byte-order mark is allowed); spaces or tabs separate PATTERN from REASON.
PATTERN is an item's id (`torch-cpu-float64-softplus-tanh-784x16x10-b1-s0-W1`), its node id
(`tests/test_activations.py::test_x[...]`) or a pattern of either with the wildcards `*` and `?`
(brackets are literal, as in ids: `W1[3,701]`); REASON, the rest of
the line, says what the framework does and where it is documented. `#` starts a comment line.
A listed item that fails is reported as xfailed with its reason; one that passes fails the run
as "stopped deviating" (strict), so the file never outlives what it documents.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import NamedTuple

import pytest

SHIPPED = Path(__file__).resolve().parents[1] / "deviations.txt"


class Deviation(NamedTuple):
    """One line of a deviations file."""

    pattern: str
    reason: str
    where: str  # file:line, for the message

    def matches(self, item: pytest.Item) -> bool:
        """Say whether the pattern names the item, by its id or its node id."""
        ids = (getattr(getattr(item, "callspec", None), "id", None), item.nodeid)
        match = re.compile(_translated(self.pattern)).match
        return any(i is not None and match(i) is not None for i in ids)


def _translated(pattern: str) -> str:
    literal = pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return fnmatch.translate(literal)


def _first_of(deviations: list[Deviation]):
    """Return a function giving the index of the first pattern that matches a text, None when
    none does: one expression of all the patterns, each in its own group, so that an item costs
    one match however many lines there are (an entry run has 76,000 items; compiling pattern by
    pattern per item took minutes past re's cache of 512). Alternatives are tried in order and
    each is anchored at both ends, so the group that matched is the first matching pattern."""
    parts, pattern_of, group = [], {}, 1
    for k, d in enumerate(deviations):
        text = _translated(d.pattern)
        parts.append(f"({text})")
        pattern_of[group] = k
        group += 1 + re.compile(text).groups  # (fnmatch's own groups, if it makes any)
    match = re.compile("|".join(parts)).match

    def first(text: str) -> int | None:
        found = match(text)
        return None if found is None else pattern_of[found.lastindex]

    return first


def read(path: Path) -> list[Deviation]:
    """Return a file's deviations, or raise UsageError naming a line without a reason (or
    what keeps the file from being read)."""
    try:
        lines = _text(path).splitlines()
    except OSError as exc:
        raise pytest.UsageError(f"--deviations {path}: cannot read: {exc.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pattern, *rest = text.split(None, 1)  # a tab separates as a space does
        reason = rest[0] if rest else ""
        if not reason.strip():
            raise pytest.UsageError(f"{path}:{n}: {pattern!r} has no reason; write "
                                    "PATTERN  REASON (what deviates, and where it is documented)")
        out.append(Deviation(pattern, reason.strip(), f"{path.name}:{n}"))
    return out


def _text(path: Path) -> str:
    """Return a file's text read as UTF-8, a byte-order mark dropped (an editor's, which would
    otherwise stick to the first pattern); raise UsageError naming the line of a byte that is
    not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise pytest.UsageError(f"{path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                                "save the file as UTF-8") from None


def files(values: list[str]) -> list[Path]:
    """Return the files to apply: the shipped list, then each --deviations FILE; `none` drops
    those before it."""
    paths = [SHIPPED]
    for v in values:
        if not v.strip():  # Path("") is ".", the working directory
            raise pytest.UsageError(f"--deviations {v!r}: empty; give a FILE (or none)")
        paths = [] if v == "none" else [*paths, Path(v)]
    return paths


def mark(items: list[pytest.Item], deviations: list[Deviation]) -> int:
    """Mark each listed item as a strict xfail with its reason (the first matching line);
    return how many were marked."""
    if not deviations:
        return 0
    first, marked = _first_of(deviations), 0
    for item in items:
        spec_id = getattr(getattr(item, "callspec", None), "id", None)
        hits = [k for k in (None if spec_id is None else first(spec_id), first(item.nodeid))
                if k is not None]
        if hits:
            found = deviations[min(hits)]
            item.add_marker(pytest.mark.xfail(reason=f"documented deviation ({found.where}): "
                                                     f"{found.reason}", strict=True))
            item.stash[KEY] = found
            marked += 1
    return marked


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


class Watch:
    """Says "stopped deviating" when a listed deviation passes (`stopped`). Registered only in
    a process whose collection marked a listed item (tests/engine/plugin.py): for any other
    item `stopped` does nothing, and an entry run's 76,000 items make three reports each."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        stopped(item, report)
        return report
