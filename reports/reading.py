"""Read results files back, checked against the format (reports/schema.py): item by item, in
one line of error naming the file and the field when anything is wrong.

The writer's line layout is read a line at a time, each item decoded by the format's types
(`_Lines`); any other layout with schema, version and runs before items incrementally
(`_Stream`); anything else whole (`_load_whole`), so that errors read the same either way.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import math
import os
import re
from pathlib import Path
from typing import NamedTuple

from reports import schema
from reports.encoding import document, jsonable, unpacked
from reports.schema import MAX_DEPTH, MAX_ENTRY_CELLS, READS, SCHEMA, VERSION


class ResultsError(Exception):
    """A results file cannot be used; the message is one line naming the file."""


class Malformed(Exception):
    """A field of a results document has the wrong shape; the message names it."""


def load(path: str | os.PathLike) -> dict:
    """Read and validate a results file, or raise ResultsError with one line naming it."""
    extra: dict = {}
    runs, items = read(path, extra)
    items = [_unpacked_item(item) for item, _ in items]
    return {**extra, **document(runs, items)}


def _unpacked_item(item: dict) -> dict:
    cmp = item.get("comparison")
    return {**item, "comparison": unpacked(cmp)} if isinstance(cmp, dict) else item


def _load_whole(path: str | os.PathLike) -> dict:
    """Read and validate a results file at once (any key order), or raise ResultsError."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # a byte-order mark is UTF-8 too
    except OSError as exc:
        raise ResultsError(f"reports: {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"reports: {path}: not JSON (not UTF-8 text)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"reports: {path}: {_decode_problem(text, exc)}") from None
    except RecursionError:
        raise ResultsError(f"reports: {path}: malformed: nested too deeply to read") from None
    problem = _schema_problem(doc)
    if problem:
        raise ResultsError(f"reports: {path}: {problem}")
    return doc


CHUNK = 1 << 22
"""Characters read at a time when a results file is read item by item."""
HEAD_LINE = 1 << 24
"""The longest first line (schema, version, runs) the line reader takes; longer: `_Stream`."""
ITEM_LINE = 1 << 26
"""The longest item line the line reader takes; the rest of a file from a longer one on is
read by `_Stream`."""


def read(path: str | os.PathLike, extra: dict | None = None, texts: bool = True,
         typed: bool = False):
    """Return (runs, items) of a results file, validated; items is an iterator of (item, its
    JSON text), read one at a time, checked as they come (a bad one raises ResultsError). With
    texts=False (a reader that does not copy items) the line reader leaves the texts None; with
    typed=True (merge and the page, which read few of the items' fields) an item the line
    reader's fast check passed, other than an entry item, comes as a `Typed` (its schema.Item,
    no dicts built; `.dict()` makes them).

    The writer's line layout (`dumps`: the head on the first line, then an item a line) is read
    a line at a time with a fast check of each item (`_Lines`); the rest of a file from a line
    it cannot take on, and any other layout with schema, version and runs before items, is read
    incrementally (`_Stream`); any other layout, and any file the incremental reader stumbles
    on, is read whole instead, so that errors read the same either way.
    """
    extra = {} if extra is None else extra  # other top-level keys (a study's "partial") land here
    try:
        stream = _Lines.open(path, extra, texts, typed) or _Stream(path, extra)
        head = stream.head()
    except _Fallback:
        doc = _load_whole(path)
        extra.update((k, v) for k, v in doc.items() if k not in ("schema", "version", "runs",
                                                                 "items"))
        return doc["runs"], iter([(i, None) for i in doc["items"]])
    except OSError as exc:
        raise ResultsError(f"reports: {path}: cannot read ({exc.strerror or exc})") from None
    problem = _head_problem(head)
    if problem:
        stream.close()
        raise ResultsError(f"reports: {path}: {problem}")
    return head["runs"], _checked_items(path, stream, {r["id"] for r in head["runs"]},
                                        head["version"])


def _readable_version(version) -> bool:
    """Say whether a version is one this suite reads: the integer 1 or 2 (not true, which
    Python counts as 1, nor 2.0)."""
    return type(version) is int and version in READS


def _as_json(value) -> str:
    """Return a value as the file spells it (true, 2.0, "2"), for a message."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _head_problem(head: dict) -> str | None:
    """Return what is wrong with a file's schema, version or runs, None if nothing."""
    if head.get("schema") != SCHEMA:
        return f"not a {SCHEMA} file"
    if not _readable_version(head.get("version")):
        return f"schema version {_as_json(head.get('version'))}, this suite reads 1 and 2"
    runs = head.get("runs")
    if not isinstance(runs, list):
        return "malformed: 'runs' and 'items' must be lists"
    if schema.depth(runs) + 1 > MAX_DEPTH:
        return f"malformed: nested more than {MAX_DEPTH} levels deep"
    problem = schema.runs_problem(runs)
    return None if problem is None else f"malformed: {problem}"


def _checked_items(path, stream: _Stream | _Lines, run_ids: set, version: int):
    """Yield each item with its text (None unless the file is of the version written), checked
    (by the fast path, else in full); then check the entry items' spans."""
    current = version == VERSION
    spans: dict[tuple, list[int]] = {}
    listed: set[bytes] = set()
    n = 0
    try:
        for item, text, checked in stream.items(run_ids):
            if not checked:
                _check_item(item, f"items[{n}]", run_ids, version)
            if type(item) is not Typed:  # (a Typed item is never an entry item)
                _check_span(item, spans)
            _check_once(item, f"items[{n}]", listed)
            n += 1
            yield item, text if current else None
        stream.tail()
    except Malformed as exc:
        raise ResultsError(f"reports: {path}: malformed: {exc}") from None
    except _Fallback:
        _load_whole(path)  # raises the error a whole read gives
        raise ResultsError(f"reports: {path}: malformed: an unexpected layout") from None
    finally:
        stream.close()


HEAD = ("schema", "version", "runs")


class _Fallback(Exception):
    """The incremental reader cannot go on: the file is read whole (for its error, if any)."""


class _Stream:
    """Reads a results file with schema, version and runs before items a chunk at a time with
    json's raw_decode; from `offset` (a byte position) on when the line reader hands over."""

    def __init__(self, path, extra: dict, offset: int = 0):
        self.extra = extra
        raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            raw.seek(offset)
        except BaseException:
            raw.close()
            raise
        self.file = io.TextIOWrapper(raw, encoding="utf-8-sig" if offset == 0 else "utf-8",
                                     newline="")  # (a byte-order mark only starts a file)
        self.buf, self.pos, self.eof = "", 0, False
        self.nonfinite = False
        self.decoder = json.JSONDecoder(parse_constant=self._constant)

    def _constant(self, name: str) -> float:
        self.nonfinite = True
        return float(name.replace("Infinity", "inf"))

    def close(self) -> None:
        self.file.close()

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.file.read(CHUNK)
        except (UnicodeDecodeError, ValueError):
            raise _Fallback from None
        if not chunk:
            self.eof = True
            return False
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def _peek(self) -> str:
        """Return the next character that is not whitespace, '' at the end."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\n\r":
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos:self.pos + 1]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise _Fallback
        self.pos += 1

    def _value(self):
        """Decode the next value; return it and its text."""
        self._peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except (json.JSONDecodeError, RecursionError):
                if self._more():
                    continue
                raise _Fallback from None
            if end == len(self.buf) and self._more():  # a number may go on in the next chunk
                continue
            text, self.pos = self.buf[self.pos:end], end
            return value, text

    def head(self) -> dict:
        """Read the keys before "items"; they must be schema, version and runs."""
        self._expect("{")
        head = {}
        while True:
            key, _ = self._value()
            self._expect(":")
            if key == "items":
                if not {"schema", "version", "runs"} <= set(head):
                    raise _Fallback
                self._expect("[")
                self.extra.update((k, v) for k, v in head.items() if k not in HEAD)
                return head
            if key in head or not isinstance(key, str):
                raise _Fallback
            head[key], _ = self._value()
            if self._peek() != ",":
                raise _Fallback
            self.pos += 1

    def items(self, run_ids=None, after: str = "["):
        """Yield each item of the items list, its text (None when it must be re-written) and
        False (not checked yet). `after` is what was read last: the list's "[", a "," or an
        item ("}", whatever it ended with), when the line reader hands over mid-list."""
        if after == "}":
            if not self._more_items():
                return
        elif after == "[" and self._peek() == "]":
            self.pos += 1
            return
        while True:
            self.nonfinite = False
            item, text = self._value()
            if self.nonfinite:
                item, text = jsonable(item), None
            yield item, text, False
            if not self._more_items():
                return

    def _more_items(self) -> bool:
        """Read what follows an item: "," (another comes) or "]" (the list ends)."""
        c = self._peek()
        self.pos += 1
        if c not in (",", "]"):
            raise _Fallback
        return c == ","

    def tail(self) -> None:
        """Read what follows the items: keys no reader uses, then the end of the object."""
        while self._peek() == ",":
            self.pos += 1
            key, _ = self._value()
            if key in HEAD or key == "items" or key in self.extra:
                raise _Fallback
            self._expect(":")
            self.extra[key], _ = self._value()
        self._expect("}")
        if self._peek() != "":
            raise _Fallback


class _Lines:
    """Reads the line layout (`dumps`, `merged_chunks`) a line at a time: each item line is
    decoded by the format's types (`schema.decode`, in C) and checked by its rules; an item they
    refuse is checked in full (`schema.item_problem`), which says what is wrong in one line.
    From the first line that is not one item (the end of the list, a blank line, an item across
    lines, text that is not UTF-8 or not JSON) the rest of the file is read by `_Stream`, which
    reads any layout of the list (or says what is wrong with the file)."""

    @classmethod
    def open(cls, path, extra: dict, texts: bool = True, typed: bool = False) -> _Lines | None:
        """Return a reader of the file when its first line is a version 2 head in the line
        layout; None when the file is not one: `_Stream` reads it."""
        file = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by close()
        try:  # (a big buffer: a line at a time through 8 KB takes four times as long)
            head = _line_head(file.readline(HEAD_LINE).removeprefix(codecs.BOM_UTF8))
        except BaseException:
            file.close()
            raise
        if head is None:
            file.close()
            return None
        return cls(path, file, head, extra, texts, typed)

    def __init__(self, path, file, head: dict, extra: dict, texts: bool, typed: bool):
        self.path, self.file, self._head, self.extra = path, file, head, extra
        self.texts, self.typed = texts, typed
        self.stream: _Stream | None = None

    def head(self) -> dict:
        self.extra.update((k, v) for k, v in self._head.items() if k not in HEAD)
        return self._head

    def close(self) -> None:
        self.file.close()
        if self.stream is not None:
            self.stream.close()

    def items(self, run_ids):
        """Yield each item, its text and whether the fast check passed it; hand the rest of the
        file to `_Stream` at the first line that is not one item."""
        file, decode, typed, passes = self.file, schema.plain, schema.decode, schema.passes
        texts, keep, after = self.texts, self.typed, "["
        while True:
            start = file.tell()
            line = file.readline(ITEM_LINE)
            if after == "}" or line[:1] != b"{" or not line.endswith(b"\n"):
                break
            if line.endswith(b"},\n"):  # the writer's: no copy of the line's text is made
                end, comma = len(line) - 2, True
            else:
                end = len(line.rstrip(b" \t\r\n"))
                comma = line[end - 1:end] == b","
                end -= comma
            body = memoryview(line)[:end]
            try:
                fast = typed(body)
                checked = passes(fast, run_ids)
            except Exception:  # noqa: BLE001 - refused by the types: the full check says why
                fast, checked = None, False
            if checked and keep and fast.entry is None and fast.tensor is not None:
                yield Typed(fast, body), str(body, "utf-8") if texts else None, True
            else:
                try:  # (msgspec refuses what is not UTF-8 just as strictly as decode does)
                    text = str(body, "utf-8") if texts else None
                    item = decode(body)
                except UnicodeDecodeError:
                    break
                except Exception:  # noqa: BLE001 - NaN, 1e400, a lone surrogate: json reads it
                    read = _json_line(body)
                    if read is None:
                        break
                    item, text = read
                if checked and fast.comparison is not None:
                    _with_codes(item, fast)
                yield item, text, checked
            after = "," if comma else "}"
        self.stream = _Stream(self.path, self.extra, start)
        yield from self.stream.items(run_ids, after)

    def tail(self) -> None:
        self.stream.tail()


class Typed(NamedTuple):
    """An item the line reader's fast check passed, as `read(typed=True)` gives it: its
    schema.Item (base64 decoded to bytes, no dicts built but its free objects) and its line."""

    item: object
    line: memoryview

    def dict(self) -> dict:
        """Return the item as the other readers give it."""
        return _with_codes(schema.plain(self.line), self.item)


def _with_codes(item: dict, fast) -> dict:
    """Put a checked item's decoded heatmap codes in its heatmap (`Heatmap`); return it."""
    if fast.comparison is not None:
        cmp = item["comparison"]
        cmp["heatmap"] = Heatmap(cmp["heatmap"], fast.comparison.heatmap.codes)
    return item


class Heatmap(dict):
    """A heatmap as read by the line reader: the same dict, with its codes decoded already
    (`raw`, one byte a cell; record.codes_of uses them), so that they are decoded once."""

    __slots__ = ("raw",)

    def __init__(self, heat: dict, raw: bytes):
        super().__init__(heat)
        self.raw = raw


def _line_head(line: bytes) -> dict | None:
    """Return the head of a file in the line layout from its first line (schema, version 2 and
    runs, then '"items":['), None when the line is not one."""
    end = b'"items":['
    body = line.rstrip(b" \t\r\n")
    if not (line.endswith(b"\n") and body.startswith(b"{") and body.endswith(end)):
        return None
    body = body[:-len(end)]
    if body != b"{":
        if not body.endswith(b","):
            return None
        body = body[:-1]
    try:
        head = json.loads(body.decode("utf-8") + "}", object_pairs_hook=_unique_pairs)
    except (ValueError, RecursionError, _Fallback):  # ValueError: UnicodeDecodeError, JSON's
        return None
    if not (isinstance(head, dict) and {"schema", "runs"} <= set(head) and "items" not in head
            and type(head.get("version")) is int and head["version"] == VERSION):
        return None
    return head


def _unique_pairs(pairs: list) -> dict:
    """Return an object's pairs as a dict; raise _Fallback on a repeated key (`_Stream` reads
    such a file, as it always has)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Fallback
    return out


def _json_line(line: memoryview) -> tuple[object, str | None] | None:
    """Return an item line that msgspec refuses (NaN or Infinity literals, 1e400, a lone
    surrogate) as `_Stream` reads it: the value (non-finite numbers as strings) and its text
    (None when it must be re-written); None when json refuses it too (or it is not UTF-8)."""
    try:
        text = str(line, "utf-8")
    except UnicodeDecodeError:
        return None
    found = []

    def constant(name: str) -> float:
        found.append(name)
        return float(name.replace("Infinity", "inf"))

    try:
        value, end = json.JSONDecoder(parse_constant=constant).raw_decode(text)
    except (ValueError, RecursionError):
        return None
    if end != len(text):
        return None
    return (jsonable(value), None) if found else (value, text)


# What json reports at the failing position when a text is cut short: nothing at all, the
# start of true/false/null, a number cut after "-", "." or the exponent, or a \u escape cut
# inside its four digits (an unterminated string is reported by message instead).
_TOKEN_PREFIX = re.compile(r"|-|[.eE][-+]?\d*|t(ru?)?|f(a(ls?)?)?|n(ul?)?|u[0-9a-fA-F]{0,4}")


def _decode_problem(text: str, exc: json.JSONDecodeError) -> str:
    """Say whether the text stops early (truncated) or is not JSON at all, and where."""
    if not text.strip():
        return "empty, not JSON"
    if (exc.msg.startswith("Unterminated string")
            or _TOKEN_PREFIX.fullmatch(text[exc.pos:].rstrip())):
        return "truncated (the JSON ends early)"
    return f"not JSON (line {exc.lineno} column {exc.colno})"


def _schema_problem(doc) -> str | None:
    """Return what keeps the document from being results this suite reads, None if nothing."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return f"not a {SCHEMA} file"
    if not _readable_version(doc.get("version")):
        return f"schema version {_as_json(doc.get('version'))}, this suite reads 1 and 2"
    runs, items = doc.get("runs"), doc.get("items")
    if not isinstance(runs, list) or not isinstance(items, list):
        return "malformed: 'runs' and 'items' must be lists"
    if schema.depth(doc) > MAX_DEPTH:
        return f"malformed: nested more than {MAX_DEPTH} levels deep"
    problem = schema.runs_problem(runs)
    if problem is not None:
        return f"malformed: {problem}"
    try:
        ids, listed = {r["id"] for r in runs}, set()
        for n, item in enumerate(items):
            _check_item(item, f"items[{n}]", ids, doc["version"])
            _check_once(item, f"items[{n}]", listed)
        _check_entry_groups(items)
    except Malformed as exc:
        return f"malformed: {exc}"
    return None


def _check_item(item, where: str, run_ids, version: int) -> None:
    """Raise Malformed with what is wrong with an item: the fast path passes most, the full
    check says why it refuses one (or passes what only it takes: unknown keys, older forms)."""
    if not schema.fits(item, run_ids, version):
        problem = schema.item_problem(item, run_ids, where)
        if problem is not None:
            raise Malformed(problem)


def _check_once(item, where: str, listed: set) -> None:
    """Raise Malformed when a checked item is listed a second time: its run and node id (its
    id when it has none) and entry seen before. Merge, the page and a study's comparison would
    count it twice. What is kept of each item is a 16-byte digest, so a reader that streams a
    file holds a fifth of the memory the ids would take."""
    if type(item) is Typed:
        fast = item.item
        name, run, entry = fast.nodeid if fast.nodeid is not None else fast.id, fast.run, None
    else:
        name, run, entry = item.get("nodeid"), item["run"], item.get("entry")
        name = item.get("id") if name is None else name
    if name is None:
        return
    key = _digest(f"{len(run)}:{run}{len(name)}:{name}{entry}".encode("utf-8", "surrogatepass"),
                  digest_size=16).digest()
    if key in listed:
        raise Malformed(f"{where}: {name!r} is listed twice in run {run!r}")
    listed.add(key)


_digest = hashlib.blake2b


def _check_entry_groups(items: list[dict]) -> None:
    """Check that the entry items (`--entries`) of each tensor agree in rank and span a
    tensor the page can draw."""
    spans: dict[tuple, list[int]] = {}
    for item in items:
        _check_span(item, spans)


def _check_span(item: dict, spans: dict) -> None:
    """Add an entry item to its tensor's span; raise Malformed when the span goes wrong."""
    entry = item.get("entry")
    if entry is None:
        return
    key = (item["run"], json.dumps(item.get("config"), sort_keys=True),
           json.dumps(item.get("spec"), sort_keys=True), str(item.get("tensor")))
    span = spans.setdefault(key, [0] * len(entry))
    if len(span) != len(entry):
        raise Malformed(f"entry {entry} of tensor {key[3]!r}: another entry has "
                        f"{len(span)} indices")
    span[:] = [max(s, i + 1) for s, i in zip(span, entry, strict=True)]
    if math.prod(span) > MAX_ENTRY_CELLS:
        raise Malformed(f"entries of tensor {key[3]!r} span more than {MAX_ENTRY_CELLS} "
                        "cells")

