"""The results file: its schema, reading it back with one-line errors, merging, atomic writes."""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: renames are not locked
    fcntl = None

SCHEMA = "backprop-conformance/results"
VERSION = 1
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
    """Return the document as strict JSON (no NaN or Infinity literals)."""
    return json.dumps(jsonable(doc), allow_nan=False, separators=(",", ":"), ensure_ascii=False)


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
    except OSError:  # nothing there to protect; writing says what is wrong with the path
        return target
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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is not
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, tmp


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
    try:
        text = Path(path).read_bytes().decode("utf-8")
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
    if doc.get("version") != VERSION:
        return f"schema version {doc.get('version')!r}, this suite reads {VERSION}"
    runs, items = doc.get("runs"), doc.get("items")
    if not isinstance(runs, list) or not isinstance(items, list):
        return "malformed: 'runs' and 'items' must be lists"
    if _depth(doc) > MAX_DEPTH:
        return f"malformed: nested more than {MAX_DEPTH} levels deep"
    try:
        _check_runs(runs)
        ids = {r["id"] for r in runs}
        for n, item in enumerate(items):
            _check_item(item, f"items[{n}]", ids)
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
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            stack += [(c, d + 1) for c in (v.values() if isinstance(v, dict) else v)]
    return deepest


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
    if isinstance(value, bool):
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
    _field(cmp, "worst", where, lambda v: isinstance(v, list), "a list")
    for n, e in enumerate(cmp["worst"]):
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
    _need(_base64(codes) and len(base64.b64decode(codes)) == heat["cells"] <= heat["rows"] *
          heat["cols"], f"{where}.codes", "base64 of one byte a cell")


def _base64(value) -> bool:
    """Say whether a value is base64 text."""
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def _check_entry_groups(items: list[dict]) -> None:
    """Check that the entry items (`--entries`) of each tensor agree in rank and span a
    tensor the page can draw."""
    spans: dict[tuple, list[int]] = {}
    for item in items:
        entry = item.get("entry")
        if entry is None:
            continue
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
