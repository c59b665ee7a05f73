"""The results file: its schema, reading it back with one-line errors, merging, atomic writes."""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import stat
import struct
import tempfile
from pathlib import Path
from typing import NamedTuple

import msgspec

try:
    import fcntl
except ImportError:  # Windows: renames are not locked
    fcntl = None

SCHEMA = "backprop-conformance/results"
VERSION = 2
"""The version written. Version 2 packs each comparison's worst entries: their indices as a list
and their numbers (got, ref, bound, ratio, bits a row) as base64 float64, and leaves out `max`
(their first); version 1 lists them as objects. Both are read; in memory they are objects."""
READS = (1, 2)
WORST_FIELDS = ("got", "ref", "bound", "ratio", "bits")
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error", "crashed", "not run")


class ResultsError(Exception):
    """A results file cannot be used; the message is one line naming the file."""


def document(runs: list[dict], items: list[dict]) -> dict:
    """Return a results document: one run and a merge of many have the same shape."""
    return {"schema": SCHEMA, "version": VERSION, "runs": runs, "items": items}


def jsonable(value):
    """Return the value with non-finite floats as the strings 'inf', '-inf' and 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dumps(doc: dict) -> str:
    """Return the document as strict JSON (no NaN or Infinity literals), version 2, in the
    line layout: the keys before "items" on the first line, then one item a line, then the
    end (any keys after "items" included). JSON ignores the line breaks; the line reader
    (`read`) reads such a file an item at a time with a fast check."""
    doc = {**doc, "version": VERSION, "items": doc.get("items", [])}
    keys = list(doc)
    at = keys.index("items")
    before, after = ({k: doc[k] for k in part} for part in (keys[:at], keys[at + 1:]))
    return "".join(lines(before, map(dumps_item, doc["items"]), after))


def lines(before: dict, items, after: dict | None = None):
    """Yield the text of a results file in the line layout: the keys before "items" and the
    list's opening on the first line, each item's text (one line each), then the rest."""
    head = _strict(before)[:-1]
    yield head + ("," if len(head) > 1 else "") + '"items":[\n'
    sep = ""
    for text in items:
        yield sep + text
        sep = ",\n"
    tail = _strict(after or {})[1:]
    yield ("\n]" if sep else "]") + ("," if len(tail) > 1 else "") + tail


def _strict(value) -> str:
    return json.dumps(jsonable(value), allow_nan=False, separators=(",", ":"),
                      ensure_ascii=False)


def dumps_item(item: dict) -> str:
    """Return one item as version 2 JSON."""
    item = packed(item)
    try:  # msgspec writes the common item ten times faster than json; it writes a non-finite
        # float as null, so an item whose MessagePack form holds one (0xcb, then an exponent of
        # all ones) takes json's path below, as does anything msgspec refuses to encode
        if not _NON_FINITE.search(_to_msgpack(item)):
            return _to_json(item).decode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        pass
    try:  # only finite numbers and string keys: no copy to make
        return json.dumps(item, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError):  # a non-finite number (or a key json cannot write)
        return json.dumps(jsonable(item), allow_nan=False, separators=(",", ":"),
                          ensure_ascii=False)


_to_json = msgspec.json.Encoder().encode
_to_msgpack = msgspec.msgpack.Encoder().encode
_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")
"""A MessagePack float64 with every exponent bit set: inf, -inf or nan (or, rarely, the same
bytes inside a string, which only sends the item the slower way)."""


def packed(item: dict) -> dict:
    """Return the item with its comparison's worst entries packed (version 2); an item whose
    entries are not all numbers stays as it is (the reader says what is wrong with it)."""
    cmp = item.get("comparison") if isinstance(item, dict) else None
    worst = cmp.get("worst") if isinstance(cmp, dict) else None
    if not isinstance(worst, list):
        return item
    numbers = []
    for e in worst:
        if not isinstance(e, dict) or not isinstance(e.get("index"), list):
            return item
        for k in WORST_FIELDS:
            value = e.get(k)
            if not _number(value):
                return item
            numbers.append(float(value))
    cmp = {k: v for k, v in cmp.items() if k != "max"}
    cmp["worst"] = {"index": [e["index"] for e in worst],
                    "numbers": base64.b64encode(struct.pack(f"<{len(numbers)}d", *numbers))
                    .decode("ascii")}
    return {**item, "comparison": cmp}


def unpacked(cmp: dict) -> dict:
    """Return a comparison with its worst entries as objects and `max`, whatever the version."""
    worst = cmp.get("worst")
    if not isinstance(worst, dict):
        return cmp
    return {**cmp, "worst": (entries := worst_entries(worst)),
            "max": entries[0] if entries else None}


def first_entry(worst) -> dict | None:
    """Return the first (worst) of the worst entries, from either version's form."""
    if not isinstance(worst, dict):
        return worst[0] if worst else None
    if not worst["index"]:
        return None
    return first_packed(worst["index"], base64.b64decode(worst["numbers"][:56]))
    # 56 characters: 42 bytes ≥ 40


def first_packed(index: list, numbers: bytes) -> dict | None:
    """Return the first of packed worst entries from their indices and numbers (decoded)."""
    if not index:
        return None
    n = len(WORST_FIELDS)
    values = struct.unpack(f"<{n}d", numbers[:8 * n])
    if not all(map(math.isfinite, values)):
        values = jsonable(list(values))
    return {"index": index[0], **dict(zip(WORST_FIELDS, values, strict=True))}


def worst_entries(worst) -> list[dict]:
    """Return worst entries as objects, from either version's form."""
    if not isinstance(worst, dict):
        return worst
    raw = base64.b64decode(worst["numbers"])
    numbers = jsonable(list(struct.unpack(f"<{len(raw) // 8}d", raw)))
    n = len(WORST_FIELDS)
    return [{"index": index, **dict(zip(WORST_FIELDS, numbers[n * j:n * j + n], strict=True))}
            for j, index in enumerate(worst["index"])]


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a file atomically: a temporary file beside it, then os.replace."""
    written, errors = write_texts({path: text})
    if errors:
        raise errors[0][1]
    return written[0]


def write_texts(texts: dict) -> tuple[list[Path], list[tuple[Path, OSError]]]:
    """Write several files as one: every temporary file first, then every rename, the renames
    under a lock on their folders so that two runs never leave a mix of each other's files.

    A path that is a symlink is written through to its target; a target that exists and is not
    a regular file (a FIFO, a device, a folder) is refused and left untouched. Returns the
    paths written and, for each path that could not be, its error; nothing is left behind.
    """
    staged, errors, written = [], [], []
    try:
        for path, text in texts.items():
            try:
                staged.append((Path(path), *_stage(Path(path), text)))
            except OSError as exc:
                errors.append((Path(path), exc))
        with _locked({target.parent for _, target, _ in staged}):
            for path, target, tmp in staged:
                try:
                    _commit(target, tmp)
                    written.append(path)
                except OSError as exc:
                    errors.append((path, exc))
    finally:
        for _, _, tmp in staged:
            Path(tmp).unlink(missing_ok=True)
    return written, errors


def same_file(output, inputs) -> str | None:
    """Return the input that the output would overwrite (the same file by any path), if any."""
    out = os.path.realpath(output)
    for path in inputs:
        if os.path.realpath(path) == out or _samefile(path, output):
            return str(path)
    return None


def _samefile(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def writable_target(path: str | os.PathLike) -> Path:
    """Return where a write to the path lands (a symlink's target); raise OSError when what is
    there is not a regular file, so that it is never replaced."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # realpath leaves a loop as it is: never replace the link
            raise OSError(errno.ELOOP, "a symlink loop, not a regular file; left untouched"
                          ) from None
        return target  # nothing there to protect; writing says what is wrong with the path
    if not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, f"{_kind(mode)}, not a regular file; left untouched")
    return target


def _kind(mode: int) -> str:
    """Return what a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _stage(path: Path, text: str) -> tuple[Path, str]:
    """Check the path's target and write the text to a temporary file beside it."""
    target = writable_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent, f".{target.name}.", ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{scratch_tag()}.", suffix=".tmp",
                               dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if isinstance(text, str):
                f.write(text)
            else:  # an iterable of chunks (a merge, written as it is read)
                f.writelines(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is not
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, tmp


def scratch_tag() -> str:
    """Return HOST-PID, named into a temporary file or folder (PREFIX + HOST-PID + '.' + …):
    it says which process may still be using it (`sweep`)."""
    return f"{_HOST}-{os.getpid()}"


_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:64] or "host"


def sweep(folder: Path, prefix: str, suffix: str = "") -> None:
    """Remove the temporary files and folders (PREFIX + HOST-PID + '.' … + SUFFIX) that this
    user's processes on this host left in a folder when they were killed (a SIGKILL runs no
    clean-up): only those whose process is gone; anything else is left as it is."""
    if not hasattr(os, "getuid"):  # (Windows: os.kill would end the process it asks about)
        return
    try:
        entries = [e for e in os.scandir(folder)
                   if e.name.startswith(prefix) and e.name.endswith(suffix)]
    except OSError:
        return
    for entry in entries:
        host, _, pid = entry.name[len(prefix):].partition(".")[0].rpartition("-")
        if host != _HOST or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != os.getuid():
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path)
            elif stat.S_ISREG(info.st_mode):
                os.unlink(entry.path)
        except OSError:  # another run swept it first, or it is not ours to remove
            continue


def _alive(pid: int) -> bool:
    """Say whether a process of this host has the pid (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _commit(target: Path, tmp: str) -> None:
    """Rename a staged file into place unless its target turned into something else since."""
    writable_target(target)
    os.replace(tmp, target)


@contextlib.contextmanager
def _locked(folders: set[Path]):
    """Hold an exclusive lock on each folder (sorted, so two writers cannot deadlock); the
    lock is the folder's own, so no lock file is left behind. A no-op where flock is absent."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(folders):
            if fcntl is None:
                break
            fd = os.open(folder, os.O_RDONLY)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
                                        head["version"] == VERSION)


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
    if _depth(runs) + 1 > MAX_DEPTH:
        return f"malformed: nested more than {MAX_DEPTH} levels deep"
    try:
        _check_runs(runs)
    except Malformed as exc:
        return f"malformed: {exc}"
    return None


def _checked_items(path, stream: _Stream | _Lines, run_ids: set, current: bool):
    """Yield each item with its text (None unless the file is of the version written), checked;
    then check the entry items' spans."""
    spans: dict[tuple, list[int]] = {}
    listed: set[bytes] = set()
    n = 0
    try:
        for item, text, checked in stream.items(run_ids):
            if checked:  # the line reader's fast check passed: it implies every check below
                depth = 0
            else:
                depth = _quick_depth(item, run_ids)  # None: something to say about it
                if (_depth(item) if depth is None else depth) + 2 > MAX_DEPTH:
                    raise Malformed(f"nested more than {MAX_DEPTH} levels deep")
            try:
                if depth is None:
                    _check_item(item, f"items[{n}]", run_ids)
                if type(item) is not Typed:  # (a Typed item is never an entry item)
                    _check_span(item, spans)
                _check_once(item, f"items[{n}]", listed)
            except Malformed as exc:
                raise Malformed(f"malformed: {exc}") from None
            n += 1
            yield item, text if current else None
        stream.tail()
    except Malformed as exc:
        text = str(exc)
        raise ResultsError(f"reports: {path}: " + (text if text.startswith("malformed") else
                                                    f"malformed: {text}")) from None
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
    decoded by msgspec and checked by `reports.schema` (fast, in C); an item the types refuse is
    checked by the Python checks instead, so errors read as before. From the first line that is
    not one item (the end of the list, a blank line, an item across lines, text that is not
    UTF-8 or not JSON) the rest of the file is read by `_Stream`, which reads any layout of the
    list (or says what is wrong with the file)."""

    @classmethod
    def open(cls, path, extra: dict, texts: bool = True, typed: bool = False) -> _Lines | None:
        """Return a reader of the file when its first line is a version 2 head in the line
        layout; None when the file is not one (or msgspec is missing): `_Stream` reads it."""
        try:
            from reports import schema  # (msgspec)
        except ImportError:
            return None
        file = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by close()
        try:  # (a big buffer: a line at a time through 8 KB takes four times as long)
            head = _line_head(file.readline(HEAD_LINE).removeprefix(codecs.BOM_UTF8))
        except BaseException:
            file.close()
            raise
        if head is None:
            file.close()
            return None
        return cls(path, file, head, extra, schema, texts, typed)

    def __init__(self, path, file, head: dict, extra: dict, schema, texts: bool, typed: bool):
        self.path, self.file, self._head, self.extra = path, file, head, extra
        self.schema, self.texts, self.typed = schema, texts, typed
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
        file, decode, typed, passes = self.file, self.schema.plain, self.schema.decode, \
            self.schema.passes
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
            except Exception:  # noqa: BLE001 - refused by the types: the Python checks say
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
        from reports import schema

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
    if _depth(doc) > MAX_DEPTH:
        return f"malformed: nested more than {MAX_DEPTH} levels deep"
    try:
        _check_runs(runs)
        ids, listed = {r["id"] for r in runs}, set()
        for n, item in enumerate(items):
            _check_item(item, f"items[{n}]", ids)
            _check_once(item, f"items[{n}]", listed)
        _check_entry_groups(items)
    except Malformed as exc:
        return f"malformed: {exc}"
    return None


class Malformed(Exception):
    """A field of a results document has the wrong shape; the message names it."""


MAX_DEPTH = 32
"""Nesting a results file may have (the writer's is under ten); deeper is refused, not parsed
into recursion errors."""
MAX_ENTRY_CELLS = 1 << 26
"""The most entries one tensor's entry items (`--entries`) may span: its heatmap is built
from them, so a forged index must not ask for gigabytes."""
TEXT = (str, type(None))


def _depth(value) -> int:
    """Return how deeply lists and objects nest in a value (iteratively: no recursion limit)."""
    if not isinstance(value, dict | list):
        return 0
    values = value.values() if type(value) is dict else value
    kinds = set(map(type, values))
    if kinds <= _SCALARS:
        return 1
    if kinds <= _SCALARS | _CONTAINERS and all(  # a config's sizes, details' dicts of numbers
            set(map(type, c.values() if type(c) is dict else c)) <= _SCALARS
            for c in values if type(c) in _CONTAINERS):
        return 2
    deepest, stack = 0, [(value, 1)]
    push, pop = stack.append, stack.pop
    while stack:
        v, d = pop()
        if d > deepest:
            deepest = d
        d += 1
        for c in (v.values() if isinstance(v, dict) else v):
            if type(c) in _CONTAINERS or isinstance(c, dict | list):
                push((c, d))
    return deepest


_CONTAINERS = frozenset({dict, list})
_SCALARS = frozenset({str, int, float, bool, type(None)})


FREE = ("config", "spec", "details")
CMP_KNOWN = frozenset(("shape", "dtype", "entries", "failing", "max_ratio", "bits", "worst",
                       "heatmap", "values"))
BITS_KNOWN = frozenset(("min", "median", "of"))
HEAT_KNOWN = frozenset(("layout", "block", "rows", "cols", "cells", "codes"))
VALUES_KNOWN = frozenset(("got", "ref", "bound"))
PACKED_KNOWN = frozenset(("index", "numbers"))


def _quick_depth(item, run_ids: set) -> int | None:
    """Return the item's depth if it passes every check of `_check_item`, None otherwise (or
    when unsure): the common case costs no messages and no walk of what was checked flat."""
    if type(item) is not dict:
        return None
    get = item.get
    run = get("run")
    if type(run) is not str or run not in run_ids:
        return None
    for key in ITEM_TEXT:
        v = get(key)
        if v is not None and type(v) is not str:
            return None
    deepest = 0
    for key in FREE:
        v = get(key)
        if v is not None:
            if type(v) is not dict:
                return None
            deepest = max(deepest, _depth(v))
    duration, entry, cmp = get("duration"), get("entry"), get("comparison")
    if duration is not None and not _number(duration):
        return None
    if entry is not None:
        if not _index(entry):
            return None
        deepest = max(deepest, 1)
    if cmp is not None:
        if type(cmp) is not dict:
            return None
        d = _quick_comparison(cmp, entry)
        if d is None:
            return None
        deepest = max(deepest, d)
    for key, v in item.items():
        if key not in _ITEM_KNOWN and isinstance(v, dict | list):
            deepest = max(deepest, _depth(v))
    return 1 + deepest


def _quick_comparison(cmp: dict, entry) -> int | None:
    """Return a version 2 comparison's depth if it passes every check, else None."""
    get = cmp.get
    heat, bits, worst, values = get("heatmap"), get("bits"), get("worst"), get("values")
    if heat is None:
        return _depth(cmp)
    if type(heat) is not dict or type(bits) is not dict or type(worst) is not dict:
        return None
    for key in ("entries", "failing"):
        v = get(key)
        if type(v) is not int or v < 0:
            return None
    shape, ratio, dtype = get("shape"), get("max_ratio"), get("dtype")
    if type(shape) is not list or (shape and not _index(shape)):
        return None
    if (ratio is not None and not _number(ratio)) or (dtype is not None and type(dtype) is not str):
        return None
    for key in BITS_KNOWN:
        if key not in bits or (bits[key] is not None and not _number(bits[key])):
            return None
    index, numbers = worst.get("index"), worst.get("numbers")
    if type(index) is not list or not _indices(index) or (
            entry is not None and any(i != entry for i in index)):
        return None
    if not _base64(numbers) or len(numbers) != 4 * math.ceil(40 * len(index) / 3):
        return None
    if not _quick_heatmap(heat):
        return None
    if values is not None and not (type(values) is dict and all(
            _base64(values.get(k)) for k in VALUES_KNOWN)):
        return None
    return 1 + max(_extra_depth(cmp, CMP_KNOWN), 1, 1 + _extra_depth(bits, BITS_KNOWN),
                   1 + max(_extra_depth(worst, PACKED_KNOWN), 1 + (1 if index else 0)),
                   1 + max(_extra_depth(heat, HEAT_KNOWN), 1),
                   0 if values is None else 1 + _extra_depth(values, VALUES_KNOWN))


def _indices(index: list) -> bool:
    """Say whether every element of a list is an entry's index (as `_index`), quickly."""
    if not index:
        return True
    if set(map(type, index)) != {list} or not set(map(len, index)) <= _RANKS:
        return False
    flat = [x for ix in index for x in ix]
    return set(map(type, flat)) == {int} and min(flat) >= 0 and max(flat) < MAX_ENTRY_CELLS


_RANKS = frozenset(range(1, 9))


def _quick_heatmap(heat: dict) -> bool:
    """Say whether a heatmap passes every check of `_check_heatmap`."""
    if heat.get("layout") not in ("1d", "2d"):
        return False
    for key in ("rows", "cols", "cells"):
        v = heat.get(key)
        if type(v) is not int or not 0 <= v <= 1 << 20:
            return False
    block, codes = heat.get("block"), heat.get("codes")
    if type(block) is not list or not block or not all(type(b) is int and b > 0 for b in block):
        return False
    return _base64(codes) and _decoded_length(codes) == heat["cells"] <= heat["rows"] * heat[
        "cols"]


def _extra_depth(obj: dict, known: frozenset) -> int:
    """Return how deeply the values of an object's other keys nest."""
    return max((_depth(v) for k, v in obj.items() if k not in known), default=0)


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise Malformed(f"{where}: expected {what}")


def _check_runs(runs: list) -> None:
    """Check each run: an object with a unique string id and object-valued provenance."""
    seen = set()
    for n, run in enumerate(runs):
        _need(isinstance(run, dict), f"runs[{n}]", "an object")
        _need(isinstance(run.get("id"), str), f"runs[{n}].id", "a string")
        if run["id"] in seen:
            raise Malformed(f"runs[{n}].id: {run['id']!r} appears twice")
        seen.add(run["id"])
        prov = run.get("provenance")
        _need(isinstance(prov, dict | type(None)), f"runs[{n}].provenance", "an object")
        for key in ("options", "git", "machine", "devices", "versions"):
            _need(isinstance((prov or {}).get(key), dict | type(None)),
                  f"runs[{n}].provenance.{key}", "an object")


ITEM_TEXT = ("nodeid", "id", "group", "config_id", "spec_id", "tensor", "framework",
             "framework_version", "outcome", "reason", "message", "fingerprint")
"""Item fields that are text or null."""
_ITEM_KNOWN = frozenset((*ITEM_TEXT, *FREE, "run", "duration", "entry", "comparison"))


def _check_item(item, where: str, run_ids: set) -> None:
    """Check the fields of one item the renderers read."""
    _need(isinstance(item, dict), where, "an object")
    _need(isinstance(item.get("run"), str), f"{where}.run", "a run id (a string)")
    if item["run"] not in run_ids:
        raise Malformed(f"{where}.run: {item['run']!r} names no run of the file")
    for key in ITEM_TEXT:
        _need(isinstance(item.get(key), TEXT), f"{where}.{key}", "a string or null")
    for key in ("config", "spec", "details"):
        _need(isinstance(item.get(key), dict | type(None)), f"{where}.{key}", "an object")
    _need(item.get("duration") is None or _number(item["duration"]), f"{where}.duration",
          "a number")
    entry = item.get("entry")
    _need(entry is None or _index(entry), f"{where}.entry", "null or a list of indices")
    if item.get("comparison") is not None:
        _check_comparison(item["comparison"], f"{where}.comparison", entry)


def _number(value) -> bool:
    """Say whether a value is a recorded number: int, float or 'inf', '-inf', 'nan'."""
    kind = type(value)
    if kind is float or kind is int:
        return True
    if kind is bool:
        return False
    return isinstance(value, int | float) or value in ("inf", "-inf", "nan")


def _index(value) -> bool:
    """Say whether a value is an entry's index: 1 to 8 non-negative integers."""
    return isinstance(value, list) and 0 < len(value) <= 8 and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_ENTRY_CELLS
        for i in value)


def _check_comparison(cmp, where: str, entry) -> None:
    """Check a comparison summary: counts, numbers, bits, worst entries, heatmap, values. One
    without a heatmap (an older writer's) is not drawn, and its numbers are read leniently."""
    _need(isinstance(cmp, dict), where, "an object")
    if cmp.get("heatmap") is None:
        return
    for key in ("entries", "failing"):
        _field(cmp, key, where, _count, "a count")
    _field(cmp, "shape", where, lambda v: v == [] or _index(v), "a list of sizes")
    _field(cmp, "max_ratio", where, lambda v: v is None or _number(v), "a number or null")
    _need(isinstance(cmp.get("dtype"), TEXT), f"{where}.dtype", "a string or null")
    _field(cmp, "bits", where, lambda v: isinstance(v, dict), "an object")
    for key in ("min", "median", "of"):
        _field(cmp["bits"], key, f"{where}.bits", lambda v: v is None or _number(v),
               "a number or null")
    worst = cmp.get("worst")
    if isinstance(worst, dict):
        _check_packed(worst, f"{where}.worst", entry)
    else:
        _field(cmp, "worst", where, lambda v: isinstance(v, list), "a list")
        for n, e in enumerate(worst):
            _check_entry(e, f"{where}.worst[{n}]", entry)
        _field(cmp, "max", where, lambda v: v is None or isinstance(v, dict), "an entry or null")
        if cmp["max"] is not None:
            _check_entry(cmp["max"], f"{where}.max", entry)
    _check_heatmap(cmp["heatmap"], f"{where}.heatmap")
    values = cmp.get("values")
    _need(values is None or (isinstance(values, dict) and all(
        _base64(values.get(k)) for k in ("got", "ref", "bound"))), f"{where}.values",
        "null or base64 got, ref and bound")


def _field(obj: dict, key: str, where: str, ok, what: str) -> None:
    """Check that an object has the key and that its value passes `ok`."""
    _need(key in obj and ok(obj[key]), f"{where}.{key}", what)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_packed(worst: dict, where: str, entry) -> None:
    """Check packed worst entries (version 2): indices, and five float64 numbers each."""
    index = worst.get("index")
    _need(isinstance(index, list), f"{where}.index", "a list")
    for n, ix in enumerate(index):
        _need(_index(ix), f"{where}.index[{n}]", "a list of indices")
        if entry is not None and ix != entry:
            raise Malformed(f"{where}.index[{n}]: {ix} is not the item's entry {entry}")
    numbers = worst.get("numbers")
    _need(_base64(numbers) and len(numbers) == 4 * math.ceil(40 * len(index) / 3),
          f"{where}.numbers", f"base64 of {5 * len(index)} float64 numbers")


def _check_entry(e, where: str, entry) -> None:
    """Check one worst entry: its index (an entry item's own) and its numbers."""
    _need(isinstance(e, dict), where, "an object")
    _need(_index(e.get("index")), f"{where}.index", "a list of indices")
    if entry is not None and e["index"] != entry:
        raise Malformed(f"{where}.index: {e['index']} is not the item's entry {entry}")
    for key in ("got", "ref", "bound", "ratio", "bits"):
        _need(_number(e.get(key)), f"{where}.{key}", "a number")


def _check_heatmap(heat, where: str) -> None:
    """Check a heatmap: layout, sizes and base64 codes, one byte a cell."""
    _need(isinstance(heat, dict) and heat.get("layout") in ("1d", "2d"), where,
          "an object with layout '1d' or '2d'")
    for key in ("rows", "cols", "cells"):
        _field(heat, key, where, lambda v: _count(v) and v <= 1 << 20, "a count")
    block = heat.get("block")
    _need(isinstance(block, list) and bool(block) and all(
        isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block),
        f"{where}.block", "a list of positive sizes")
    codes = heat.get("codes")
    _need(_base64(codes) and _decoded_length(codes) == heat["cells"] <= heat["rows"] *
          heat["cols"], f"{where}.codes", "base64 of one byte a cell")


def _decoded_length(text: str) -> int:
    """Return how many bytes valid base64 text decodes to."""
    return len(text) // 4 * 3 - len(text[-2:]) + len(text[-2:].rstrip("="))


def _base64(value) -> bool:
    """Say whether a value is base64 text."""
    if not isinstance(value, str):
        return False
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except ValueError:
        return False
    return True


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


def merge(docs: list[dict]) -> dict:
    """Concatenate runs and items; a run id seen before gets a suffix (~2, ~3, …)."""
    runs, items, seen = [], [], set()
    for doc in docs:
        renamed = {}
        for run in doc["runs"]:
            renamed[run["id"]] = _unique(run["id"], seen)
            runs.append({**run, "id": renamed[run["id"]]})
        items += [{**i, "run": renamed[i["run"]]} for i in doc["items"]]
    return document(runs, items)


def _unique(run_id: str, seen: set) -> str:
    new, n = run_id, 1
    while new in seen:
        n += 1
        new = f"{run_id}~{n}"
    seen.add(new)
    return new


def merged_items(paths: list, texts: bool = True, typed: bool = False) -> tuple[list[dict],
                                                                               object]:
    """Return the runs of several results files merged (repeated ids renamed) and an iterator
    of their items, each (item, its JSON text, or None; `Typed` items: see `read`), read one
    file after another."""
    runs, sources, seen = [], [], set()
    for path in paths:
        file_runs, items = read(path, texts=texts, typed=typed)
        renamed = {r["id"]: _unique(r["id"], seen) for r in file_runs}
        runs += [{**r, "id": renamed[r["id"]]} for r in file_runs]
        sources.append((renamed, items))

    def items():
        for renamed, source in sources:
            for item, text in source:
                run = item.item.run if type(item) is Typed else item["run"]
                if renamed[run] != run:
                    item = item.dict() if type(item) is Typed else item
                    item, text = {**item, "run": renamed[run]}, None
                yield item, text

    return runs, items()


def merged_chunks(runs: list[dict], items) -> object:
    """Yield the text of a merged results file (the line layout): the head, then each item as
    read."""
    yield from lines({"schema": SCHEMA, "version": VERSION, "runs": runs}, (
        text if text is not None else dumps_item(item.dict() if type(item) is Typed else item)
        for item, text in items))
