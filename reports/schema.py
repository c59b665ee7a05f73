"""The results format, defined once: msgspec types of a file's runs and items, each field with
what it must be in words (its description), and the few rules that types cannot state.

The fast path checks every item in C and then applies the rules (`broken`): the line reader
decodes an item's line with `Item` (`decode`), the other readers convert the JSON they read
(`fits`; `ItemV1` in version 1 files). An item the fast path refuses is checked in full by
`item_problem` against the same types, and what they refuse is said in one line: the field's
path and its description (`items[3].comparison.max_ratio: expected a number or null`).

What the types do not name is allowed: keys they do not list and free objects of any depth
(within MAX_DEPTH for the whole file), and two older forms of a comparison: one without a
heatmap (an older writer's: not drawn, not checked further) and one whose worst entries are a
list of objects (version 1). The fast path takes only the writer's keys (`forbid_unknown_fields`)
and free objects at most four levels deep, so that it needs no walk of the item for its depth;
`item_problem` walks it, drops the keys no type lists and leaves the insides of free values to
that walk (`_reduced`), then converts what is left with the same types.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct
from msgspec import inspect as _inspect

SCHEMA = "backprop-conformance/results"
VERSION = 2
"""The version written. Version 2 packs each comparison's worst entries: their indices as a list
and their numbers (got, ref, bound, ratio, bits a row) as base64 float64, and leaves out `max`
(their first); version 1 lists them as objects. Both are read; in memory they are objects."""
READS = (1, 2)
WORST_FIELDS = ("got", "ref", "bound", "ratio", "bits")
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error", "crashed", "not run")
MAX_DEPTH = 32
"""Nesting a results file may have (the writer's is under ten); deeper is refused, not parsed
into recursion errors."""
MAX_ENTRY_CELLS = 1 << 26
"""The most entries one tensor's entry items (`--entries`) may span: its heatmap is built
from them, so a forged index must not ask for gigabytes."""
MAX_HEAT = 1 << 20
"""The most rows, columns or cells a heatmap may have."""
FREE = {"free": True}
"""Meta extra of a free value: any JSON of its kind, its inside left to the depth walk."""


def expect(what: str, **constraints) -> Meta:
    """Return the Meta of a type whose values are WHAT (the one-line error's words)."""
    return Meta(description=what, **constraints)


Scalar = str | int | float | bool | None
Free1 = Scalar | list[Scalar] | dict[str, Scalar]
Free2 = Scalar | list[Free1] | dict[str, Free1]
Free3 = Scalar | list[Free2] | dict[str, Free2]
Free4 = Scalar | list[Free3] | dict[str, Free3]
"""Any JSON value nested at most four levels deep (the fast path's bound; deeper is allowed)."""
FreeObject = Annotated[dict[str, Free4] | None, Meta(description="an object", extra=FREE)]
FreeValue = Annotated[Free4, Meta(extra=FREE)]
Number = int | float | Literal["inf", "-inf", "nan"]
"""A recorded number: non-finite floats are the strings 'inf', '-inf' and 'nan'."""
AnyNumber = Annotated[Number, expect("a number")]
NumberOrNull = Annotated[Number | None, expect("a number or null")]
Text = Annotated[str | None, expect("a string or null")]
Cell = Annotated[int, Meta(ge=0, lt=MAX_ENTRY_CELLS)]
Index = Annotated[list[Cell], expect("a list of indices", min_length=1, max_length=8)]
Count = Annotated[int, expect("a count", ge=0)]
Size = Annotated[int, expect("a count", ge=0, le=MAX_HEAT)]


def numbers_expected(count: int) -> str:
    """Return what the numbers of COUNT packed worst entries must be."""
    return f"base64 of {5 * count} float64 numbers"


def _numbers_of(worst: dict) -> str:
    """Return what packed worst entries' numbers must be, from the entries (an object)."""
    index = worst.get("index")
    return numbers_expected(len(index) if isinstance(index, list) else 0)


class Bits(Struct, forbid_unknown_fields=True):
    min: NumberOrNull
    median: NumberOrNull
    of: NumberOrNull
    below: NumberOrNull = None  # entries left out: |ref| at most their bound (absent: older)


class Packed(Struct, forbid_unknown_fields=True):
    """Worst entries, version 2: their indices and five float64 numbers each (base64)."""
    index: Annotated[list[Index], expect("a list")]
    numbers: Annotated[bytes, Meta(extra={"expected": _numbers_of})]


class Entry(Struct, forbid_unknown_fields=True):
    """A worst entry as version 1 writes it."""
    index: Index
    got: AnyNumber
    ref: AnyNumber
    bound: AnyNumber
    ratio: AnyNumber
    bits: AnyNumber


class Heatmap(Struct, forbid_unknown_fields=True):
    layout: Literal["1d", "2d"]
    block: Annotated[list[Annotated[int, Meta(gt=0)]],
                     expect("a list of positive sizes", min_length=1)]
    rows: Size
    cols: Size
    cells: Size
    codes: Annotated[bytes, expect("base64 of one byte a cell")]


class Values(Struct, forbid_unknown_fields=True):
    got: bytes
    ref: bytes
    bound: bytes


class Summary(Struct, forbid_unknown_fields=True):
    """What a comparison with a heatmap holds besides its worst entries."""
    shape: Annotated[list[Cell], expect("a list of sizes", max_length=8)]
    entries: Count
    failing: Count
    bits: Annotated[Bits, expect("an object")]
    heatmap: Annotated[Heatmap, expect("an object with layout '1d' or '2d'")]
    dtype: Text = None
    values: Annotated[Values | None, expect("null or base64 got, ref and bound")] = None


class Comparison(Summary, kw_only=True):
    """A comparison as version 2 writes it: its worst entries packed (`max_ratio` may be left
    out: null)."""
    worst: Packed
    max_ratio: NumberOrNull = None


class ComparisonV1(Summary, kw_only=True):
    """A comparison as version 1 writes it: its worst entries objects, the first also `max`."""
    worst: Annotated[list[Annotated[Entry, expect("an object")]], expect("a list")]
    max: Annotated[Entry | None, expect("an entry or null")]
    max_ratio: NumberOrNull


class Item(Struct, forbid_unknown_fields=True):
    run: Annotated[str, expect("a run id (a string)")]
    nodeid: Text = None
    id: Text = None
    group: Text = None
    config_id: Text = None
    spec_id: Text = None
    order: Annotated[Annotated[int, Meta(ge=1, le=2)] | None,
                     expect("1 (gradients), 2 (Hessian-vector products) or null")] = None
    tensor: Text = None
    framework: Text = None
    framework_version: Text = None
    outcome: Text = None
    reason: Text = None
    message: Text = None
    fingerprint: Text = None
    note: Text = None  # a passing group's note, e.g. computed more precisely than asked
    config: FreeObject = None
    spec: FreeObject = None
    details: FreeObject = None
    duration: Annotated[Number | None, expect("a number")] = None
    entry: Annotated[Index | None, expect("null or a list of indices")] = None
    comparison: Annotated[Comparison | None, expect("an object")] = None
    adapter_spec: FreeValue = None  # keys the plugin writes that no renderer reads
    distributions: FreeValue = None


class ItemV1(Item):
    """An item as version 1 writes it: its comparison's worst entries are objects."""
    comparison: Annotated[ComparisonV1 | None, expect("an object")] = None


class Provenance(Struct, forbid_unknown_fields=True):
    options: FreeObject = None
    git: FreeObject = None
    machine: FreeObject = None
    devices: FreeObject = None
    versions: FreeObject = None


class Run(Struct, forbid_unknown_fields=True):
    id: Annotated[str, expect("a string")]
    provenance: Annotated[Provenance | None, expect("an object")] = None


Runs = list[Annotated[Run, expect("an object")]]
AnItem = Annotated[Item, expect("an object")]

decode = msgspec.json.Decoder(Item).decode
"""Decode one item's JSON to `Item`; raises msgspec.ValidationError (or DecodeError)."""
plain = msgspec.json.Decoder().decode
"""Decode JSON to dicts, lists and the rest, as json does (it refuses NaN and 1e400)."""


def passes(item: Item, run_ids) -> bool:
    """Say whether a decoded item passes the rules too (`broken`): the fast path's check."""
    return broken(item, run_ids) is None


def fits(value, run_ids, version: int = VERSION) -> bool:
    """Say whether an item read as JSON (dicts and lists) passes the fast path: converted to
    its version's types (in C), then the rules."""
    try:
        return passes(msgspec.convert(value, ItemV1 if version == 1 else Item), run_ids)
    except (msgspec.ValidationError, RecursionError):
        return False


def broken(item: Item, run_ids) -> str | None:
    """Return what the rules find wrong with a decoded item (PATH: what), None if nothing."""
    return _broken(item.run, item.entry, item.comparison, run_ids)


def _broken(run: str, entry, cmp, run_ids) -> str | None:
    """Apply what types cannot say: the item's run is one of the file's, an entry item's worst
    entries are its own entry, packed numbers are five a worst entry, and the heatmap's codes
    are one byte a cell and fit its rows and columns."""
    if run not in run_ids:
        return f"run: {run!r} names no run of the file"
    if cmp is None:
        return None
    worst, heat = cmp.worst, cmp.heatmap
    if type(worst) is Packed:
        for n, ix in enumerate(worst.index if entry is not None else ()):
            if ix != entry:
                return f"comparison.worst.index[{n}]: {ix} is not the item's entry {entry}"
        if len(worst.numbers) != 40 * len(worst.index):
            return f"comparison.worst.numbers: expected {numbers_expected(len(worst.index))}"
    elif entry is not None:
        for where, e in (*((f"worst[{n}]", e) for n, e in enumerate(worst)), ("max", cmp.max)):
            if e is not None and e.index != entry:
                return f"comparison.{where}.index: {e.index} is not the item's entry {entry}"
    if not len(heat.codes) == heat.cells <= heat.rows * heat.cols:
        return "comparison.heatmap.codes: expected base64 of one byte a cell"
    return None


def comparison_type(cmp) -> type | None:
    """Return the type a comparison is checked against: None for one without a heatmap (an older
    writer's) or not an object, ComparisonV1 when its worst entries are not packed."""
    if type(cmp) is not dict or cmp.get("heatmap") is None:
        return None
    return Comparison if type(cmp.get("worst")) is dict else ComparisonV1


def item_problem(value, run_ids, where: str) -> str | None:
    """Return the one line that says what is wrong with an item (decoded JSON) listed at WHERE,
    None if nothing: its depth first, then the types (its comparison by its form), then the
    rules."""
    if depth(value) + 2 > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    cmp = value.get("comparison") if type(value) is dict else None
    kind = comparison_type(cmp)
    if type(cmp) is dict:  # checked on its own below, as its form says
        value = {**value, "comparison": None}
    item, problem = _typed(value, AnItem, where)
    if problem is None and kind is not None:
        cmp, problem = _typed(cmp, kind, f"{where}.comparison")
    if problem is not None:
        return problem
    wrong = _broken(item.run, item.entry, cmp if kind is not None else None, run_ids)
    return None if wrong is None else f"{where}.{wrong}"


def runs_problem(runs: list) -> str | None:
    """Return the one line that says what is wrong with a file's runs, None if nothing."""
    typed, problem = _typed(runs, Runs, "runs")
    if problem is not None:
        return problem
    seen = set()
    for n, run in enumerate(typed):
        if run.id in seen:
            return f"runs[{n}].id: {run.id!r} appears twice"
        seen.add(run.id)
    return None


def _typed(value, kind, where: str):
    """Return (the value converted to KIND, None), or (None, the one line of what is wrong)."""
    info = _info(kind)
    value = _reduced(value, info)
    try:
        return msgspec.convert(value, kind), None
    except msgspec.ValidationError as exc:
        return None, where + _said(str(exc), info, value)


_INFO: dict = {}


def _info(kind):
    """Return msgspec's description of a type (made once)."""
    info = _INFO.get(kind)
    if info is None:
        info = _INFO[kind] = _inspect.type_info(kind)
    return info


def _reduced(value, node):
    """Return the value less what the types do not check: keys no struct lists, and the inside
    of a free value (its depth is checked by `depth`)."""
    while isinstance(node, _inspect.Metadata):
        if node.extra and node.extra.get("free"):
            return type(value)() if type(value) in _CONTAINERS else value
        node = node.type
    node = _member(node, type(value))
    if type(node) is _inspect.StructType:  # (in the value's order: errors come in the file's)
        fields = _fields(node)
        return {k: _reduced(v, fields[k]) for k, v in value.items() if k in fields}
    if type(node) is _inspect.ListType:
        return [_reduced(v, node.item_type) for v in value]
    return value


def _fields(node: _inspect.StructType) -> dict:
    """Return a struct's fields' types by their names in the file."""
    fields = _FIELDS.get(node.cls)
    if fields is None:
        fields = _FIELDS[node.cls] = {f.encode_name: f.type for f in node.fields}
    return fields


_FIELDS: dict = {}


def _member(node, kind: type):
    """Return the struct (KIND dict) or list type (KIND list) that the node is or that is a
    member of the union it is, None if there is none (or KIND is neither)."""
    want = {dict: _inspect.StructType, list: _inspect.ListType}.get(kind)
    for member in (node.types if type(node) is _inspect.UnionType else (node,)):
        while type(member) is _inspect.Metadata:
            member = member.type
        if type(member) is want:
            return member
    return None


_AT = re.compile(r" - at `\$(.*)`$")
_MISSING = re.compile(r"Object missing required field `(.*?)`")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def _said(error: str, info, value) -> str:
    """Return msgspec's validation error as PATH: expected WHAT, with the path cut to the
    innermost place along it whose type has a description, WHAT that description."""
    at = _AT.search(error)
    path = at.group(1) if at else ""
    missing = _MISSING.match(error)
    if missing:
        path += f".{missing.group(1)}"
    steps = _STEP.findall(path)
    node, parent, found, what = info, None, 0, None
    for n in range(len(steps) + 1):
        while type(node) is _inspect.Metadata:
            said = (node.extra_json_schema or {}).get("description")
            if node.extra and "expected" in node.extra:
                said = node.extra["expected"](parent)
            if said is not None and (what is None or n > found):
                found, what = n, said
            node = node.type
        if n == len(steps):
            break
        name, index = steps[n]
        node, parent, value = _step(node, name, index, value)
        if node is None:
            break
    if what is None:  # (every type a file's values meet has a description)
        return f"{path}: {_AT.sub('', error)}"
    return "".join(f".{name}" if name else f"[{index}]" for name, index in steps[:found]) + \
        f": expected {what}"


def _step(node, name: str, index: str, value):
    """Return the node, its parent's value and its value one step along a path."""
    if name:
        node = _member(node, dict)
        field = _fields(node).get(name) if node is not None else None
        return field, value, value.get(name) if type(value) is dict else None
    node = _member(node, list)
    item = value[int(index)] if type(value) is list and int(index) < len(value) else None
    return (node.item_type if node is not None else None), value, item


def depth(value) -> int:
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
