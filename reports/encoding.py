"""Write the results format: a document, its strict JSON in the line layout (one item a line),
and each comparison's worst entries packed (version 2) and unpacked again."""

from __future__ import annotations

import base64
import json
import math
import re
import struct

import msgspec

from reports.schema import SCHEMA, VERSION, WORST_FIELDS


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



def _number(value) -> bool:
    """Say whether a value is a recorded number (schema.Number): int, float or 'inf', '-inf',
    'nan'."""
    kind = type(value)
    if kind is float or kind is int:
        return True
    if kind is bool:
        return False
    return isinstance(value, int | float) or value in ("inf", "-inf", "nan")
