"""The writer's item as msgspec types: the fast check of the line reader (reports/results.py).

An item that decodes as `Item` and passes `passes` passes every check of results._check_item
too; the types are stricter (no unknown keys, free objects at most five levels deep, integers
within int64, base64 that binascii's strict mode also accepts), and whatever they refuse is
checked by the Python checks instead, which say what is wrong in one line. So these types
decide only how fast an item is read, never whether it is read or what an error says.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

MAX_ENTRY_CELLS = 1 << 26  # results.MAX_ENTRY_CELLS (a test checks that they agree)
MAX_HEAT = 1 << 20  # the most rows, columns or cells a heatmap may have

Scalar = str | int | float | bool | None
Free1 = Scalar | list[Scalar] | dict[str, Scalar]
Free2 = Scalar | list[Free1] | dict[str, Free1]
Free3 = Scalar | list[Free2] | dict[str, Free2]
Free4 = Scalar | list[Free3] | dict[str, Free3]
"""Any JSON value nested at most four levels deep (deeper is left to the Python checks)."""
FreeObject = dict[str, Free4] | None
Number = int | float | Literal["inf", "-inf", "nan"] | None
"""A recorded number or null (results._number, or None)."""
Text = str | None
Cell = Annotated[int, Meta(ge=0, lt=MAX_ENTRY_CELLS)]
Index = Annotated[list[Cell], Meta(min_length=1, max_length=8)]
Shape = Annotated[list[Cell], Meta(max_length=8)]
Count = Annotated[int, Meta(ge=0)]
Size = Annotated[int, Meta(ge=0, le=MAX_HEAT)]
Positive = Annotated[int, Meta(gt=0)]


class Bits(Struct, forbid_unknown_fields=True):
    min: Number
    median: Number
    of: Number


class Packed(Struct, forbid_unknown_fields=True):
    """Worst entries, version 2: their indices and five float64 numbers each (base64)."""
    index: list[Index]
    numbers: bytes


class Heatmap(Struct, forbid_unknown_fields=True):
    layout: Literal["1d", "2d"]
    block: Annotated[list[Positive], Meta(min_length=1)]
    rows: Size
    cols: Size
    cells: Size
    codes: bytes


class Values(Struct, forbid_unknown_fields=True):
    got: bytes
    ref: bytes
    bound: bytes


class Comparison(Struct, forbid_unknown_fields=True):
    """A version 2 comparison with its heatmap (one without is an older writer's)."""
    shape: Shape
    entries: Count
    failing: Count
    bits: Bits
    worst: Packed
    heatmap: Heatmap
    dtype: Text = None
    max_ratio: Number = None
    values: Values | None = None


class Item(Struct, forbid_unknown_fields=True):
    run: str
    nodeid: Text = None
    id: Text = None
    group: Text = None
    config_id: Text = None
    spec_id: Text = None
    tensor: Text = None
    framework: Text = None
    framework_version: Text = None
    outcome: Text = None
    reason: Text = None
    message: Text = None
    fingerprint: Text = None
    config: FreeObject = None
    spec: FreeObject = None
    details: FreeObject = None
    duration: Number = None
    entry: Index | None = None
    comparison: Comparison | None = None
    adapter_spec: Free4 = None  # keys the plugin writes that no renderer reads
    distributions: Free4 = None


decode = msgspec.json.Decoder(Item).decode
"""Decode one item's JSON to `Item`; raises msgspec.ValidationError (or DecodeError)."""
plain = msgspec.json.Decoder().decode
"""Decode JSON to dicts, lists and the rest, as json does (it refuses NaN and 1e400)."""


def passes(item: Item, run_ids) -> bool:
    """Say whether a decoded item also passes the checks its types cannot express: its run is
    known, an entry item's worst entries are its own entry, the packed numbers are five a worst
    entry, and the heatmap's codes are one byte a cell and fit its rows and columns."""
    if item.run not in run_ids:
        return False
    cmp = item.comparison
    if cmp is None:
        return True
    worst, heat, entry = cmp.worst, cmp.heatmap, item.entry
    if len(worst.numbers) != 40 * len(worst.index):
        return False
    if entry is not None and any(ix != entry for ix in worst.index):
        return False
    return len(heat.codes) == heat.cells <= heat.rows * heat.cols
