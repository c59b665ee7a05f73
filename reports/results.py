"""The results file: its schema, reading it back with one-line errors, merging, atomic writes."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    ids = [r.get("id") if isinstance(r, dict) else None for r in runs]
    if None in ids or len(set(ids)) != len(ids):
        return "malformed: every run needs a unique 'id'"
    stray = [i for i in items if not isinstance(i, dict) or i.get("run") not in ids]
    if stray:
        return f"malformed: {len(stray)} item(s) name no run of the file"
    return None


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
