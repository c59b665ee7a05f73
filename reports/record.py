"""Turn one conformance item into JSON-able data: its parameters and a compact tensor summary."""

from __future__ import annotations

import base64
import functools
import importlib.metadata
import json
import math
import re
import struct
import sys

import numpy as np
import pytest

from reference.compare import MANTISSA_BITS, Comparison

COMPARED = pytest.StashKey[dict]()
"""A conformance item's stash: its Item, adapter and what its check compared (written by
tests/engine/conformance.py), read here for its record."""
ADAPTERS = pytest.StashKey[dict]()
"""The run's config stash: its adapters by name (chosen by tests/engine/plugin.py)."""
OPTIONS = pytest.StashKey[list]()
"""The run's config stash: the conformance options' dests, in order (tests/engine/options.py)."""
WORST = 10
"""Entries kept exactly per tensor, greatest ratio first, whatever the tensor's size."""
EXACT_ENTRIES = 4096
"""Tensors up to this many entries keep every got/ref/bound value (the page recomputes ratios)."""
HEAT_ROWS, HEAT_COLS = 128, 1024
"""A 2-D heatmap is max-pooled to at most this many rows and columns of cells."""
HEAT_CELLS_1D, RASTER = 16384, 256
"""A 1-D tensor is pooled to at most HEAT_CELLS_1D cells, drawn RASTER cells a row."""
DECADES = 6
"""Codes 1…254 span ratios 10^-DECADES … 10^DECADES on a log scale; 0 is exact, 255 is inf."""
STEPS = 21
"""Codes per decade: 12 decades × 21 = 252 steps, so code 127 ends exactly at ratio 1."""
PASS_MAX = 1 + DECADES * STEPS  # 127: the greatest code of an entry inside its bound
REASON_CHARS = 500
"""An item's one-line reason is cut to this many characters (the message keeps more)."""
MESSAGE_CHARS = 20000
"""An item's message (the failure as pytest shows it) is cut to this many characters."""


def capped(text, limit: int):
    """Return the text cut to `limit` characters with a marker saying how much was cut."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return f"{text[:limit]} … [{len(text) - limit} more characters cut]"


def plain(value):
    """Return a NamedTuple, tuple or NumPy scalar as plain dicts, lists and Python numbers."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain_hashable(value):
    """Return `plain(value)`, remembered for hashable values (an entry run's 76,000 items
    share a few configs and specs); a copy, so that no two items share a dict."""
    try:
        out = _plain_cached(value)
    except TypeError:  # unhashable
        return plain(value)
    return dict(out) if isinstance(out, dict) else out


@functools.lru_cache(maxsize=4096)
def _plain_cached(value):
    return plain(value)


def jsonable_or_text(value):
    """Return the value as plain JSON data, or as its text when it is something else."""
    if _flat_json(value):  # already plain
        return value
    value = plain(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


_SCALAR = (str, int, float, bool, type(None))


def _flat_json(value) -> bool:
    """Say quickly whether a value is a JSON scalar or a dict of them and of such dicts (an
    item's details, mostly); False only means "ask json"."""
    if type(value) in _SCALAR:
        return True
    if type(value) is not dict:
        return False
    for k, v in value.items():
        if type(k) is not str:
            return False
        if type(v) in _SCALAR:
            continue
        if type(v) is not dict:
            return False
        for k2, v2 in v.items():
            if type(k2) is not str or type(v2) not in _SCALAR:
                return False
    return True


@functools.cache
def version_of(distribution: str) -> str | None:
    """Return an installed distribution's version, None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except Exception:  # noqa: BLE001 - any odd name (third-party frameworks) means "unknown"
        return None


ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                   "tensorflow-macos", "tf-nightly", "tf-nightly-cpu"),
    "torch": ("torch", "torch-nightly"),
    "jaxlib": ("jaxlib",),
}
"""Each name an adapter may declare, with the distributions that install it under another name
(`import tensorflow` comes from tensorflow-cpu on a CPU-only install)."""


def installed(distribution: str) -> tuple[str, str | None]:
    """Return (the installed distribution's real name, its version) for a declared name: the
    first of its alternatives that is installed, else (the name, None). A variant's name in any
    spelling (tensorflow_cpu) reads as the framework it installs (tensorflow)."""
    alternatives = ALTERNATIVES.get(canonical(distribution))
    for name in alternatives or (distribution,):
        version = version_of(name)
        if version is not None:
            return (name if alternatives else real_name(name)), version
    return distribution, None


def normalized(name: str) -> str:
    """Return a distribution name as the package index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def canonical(framework: str) -> str:
    """Return the framework a name stands for: `tensorflow` for tensorflow-cpu, tensorflow_cpu
    or any other of its ALTERNATIVES; any other name as given."""
    key = normalized(framework)
    return next((f for f, alts in ALTERNATIVES.items()
                 if key in {normalized(a) for a in alts}), framework)


def framework_of(adapter) -> str:
    """Return the framework an adapter tests, as the results and the header name it."""
    return canonical(str(getattr(adapter, "framework", "")))


def real_name(distribution: str) -> str:
    """Return an installed distribution's name as it spells it (dm_haiku → dm-haiku)."""
    try:
        return importlib.metadata.distribution(distribution).metadata["Name"] or distribution
    except Exception:  # noqa: BLE001 - not installed, or an odd name: keep it as given
        return distribution


def import_name_of(name: str) -> list[str]:
    """Return the installed distributions that provide `name` when it is an import name and
    no distribution's (paddle: paddlepaddle; haiku: dm-haiku); [] when it is a distribution's,
    or when nothing installed here provides it (then nothing can be told)."""
    if not name or installed(name)[1] is not None:
        return []
    return sorted(set(_import_names().get(name, ())), key=str.lower)


@functools.cache
def _import_names() -> dict[str, list[str]]:
    """Return {top-level import name: the distributions that provide it} of this environment."""
    return importlib.metadata.packages_distributions()


def declared(adapter) -> tuple[str, ...]:
    """Return the distributions an adapter runs on: its `distributions`, else its framework."""
    names = getattr(adapter, "distributions", None)
    if isinstance(names, (tuple, list)) and all(isinstance(n, str) for n in names) and names:
        return tuple(names)
    framework = getattr(adapter, "framework", "")
    return (framework,) if isinstance(framework, str) and framework else ()


def distributions(adapter) -> dict[str, str | None]:
    """Return {real distribution name: version or None} of everything the adapter runs on."""
    return dict(installed(name) for name in declared(adapter))


def conformance_param(node) -> object | None:
    """Return the node's conformance Item (a NamedTuple with config and spec), None if none."""
    recorded = node.stash.get(COMPARED, None)
    if isinstance(recorded, dict) and recorded.get("item") is not None:
        return recorded["item"]
    callspec = getattr(node, "callspec", None)
    for value in getattr(callspec, "params", {}).values():
        if hasattr(getattr(value, "config", None), "_asdict") and hasattr(value, "spec"):
            return value
    return None


def params(item, adapter=None) -> dict:
    """Return an Item's parameters generically: every field of its config and spec, and ids."""
    out = {k: _plain_hashable(v) for k, v in item._asdict().items()} if hasattr(
        item, "_asdict") else plain(item)
    out["id"], out["group"] = item.id, item.group
    out["config_id"], out["spec_id"] = _ids(item.config, item.spec)
    if adapter is not None:
        try:
            about = _about_cached(adapter)
        except TypeError:  # an unhashable adapter
            about = _about(adapter)
        out.update(about, distributions=dict(about["distributions"]))
    return out


_LAST_IDS: list[tuple] = [(None, None, (None, None))]
"""The last config and spec `_ids` was asked of, with its answer (compared by identity: a
group's items share their config and spec objects, tuples here, so never changed; one tuple,
read once)."""


def _ids(config, spec) -> tuple:
    """Return the ids of an item's config and spec (None where one has none)."""
    last = _LAST_IDS[0]
    if last[0] is config and last[1] is spec:
        return last[2]
    ids = (getattr(config, "id", None), getattr(spec, "id", None))
    if isinstance(config, tuple) and isinstance(spec, tuple):
        _LAST_IDS[0] = (config, spec, ids)
    return ids


def _about(adapter) -> dict:
    """Return what the results say of an adapter: how to load it, its framework, versions."""
    framework = framework_of(adapter)
    return {"adapter_spec": import_path(adapter), "framework": framework,
            "framework_version": installed(framework)[1], "distributions": distributions(adapter)}


@functools.lru_cache(maxsize=256)
def _about_cached(adapter) -> dict:
    return _about(adapter)


def import_path(adapter) -> str:
    """Return `module:Class` (a file's path for an adapter loaded from a file) that loads the
    adapter again: `python -m reports repro` calls it."""
    cls = type(adapter)
    module = sys.modules.get(cls.__module__)
    if cls.__module__.startswith("_adapter_") and getattr(module, "__file__", None):
        return f"{module.__file__}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def summarize(cmp: Comparison, entry: tuple[int, ...] | None = None) -> dict:
    """Return one tensor's verdict in brief: counts, greatest ratio, bits, worst entries, map."""
    if entry is not None and cmp.ratio.size == 1:
        return _summarize_entry(cmp, entry)
    return _summarize(cmp, entry)


def _summarize_entry(cmp: Comparison, entry: tuple[int, ...]) -> dict:
    """Return what `_summarize` returns for one entry (`--entries`), without its sorting."""
    tensor, flat = cmp.__dict__.get("of", (None, None))
    if flat is not None:  # an entry of a tensor's comparison: its numbers, listed once
        got, ref, bound, ratio, bits, code = (column[flat] for column in _entry_table(tensor))
    else:
        ratio, bits = float(cmp.ratio.ravel()[0]), float(cmp.bits.ravel()[0])
        got, ref, bound = (float(np.asarray(a).ravel()[0]) for a in (cmp.got, cmp.ref,
                                                                      cmp.bound))
        code = code_of(ratio)
    e = {"index": list(entry), "got": got, "ref": ref, "bound": bound, "ratio": ratio,
         "bits": bits}
    return {
        "shape": [], "dtype": cmp.dtype, "entries": 1, "failing": int(not ratio <= 1.0),
        "max_ratio": ratio, "max": e,
        "bits": _one_agreement(bits, ref, bound, cmp.dtype),
        "worst": [e], "heatmap": {"layout": "1d", "block": [1], "rows": 1, "cols": 1,
                                  "cells": 1, "codes": _ONE_CODE[code]},
        "values": {k: base64.b64encode(struct.pack("<d", v)).decode("ascii")
                   for k, v in (("got", got), ("ref", ref), ("bound", bound))},
    }


def _one_agreement(bits: float, ref: float, bound: float, dtype: str) -> dict:
    """Return `agreement` of a one-entry comparison."""
    below = not abs(ref) > bound
    return {"min": None if below else bits, "median": None if below else bits,
            "of": MANTISSA_BITS.get(dtype, 53), "below": int(below)}


_ONE_CODE = [base64.b64encode(bytes((c,))).decode("ascii") for c in range(256)]


def _entry_table(cmp: Comparison) -> tuple[list, ...]:
    """Return a tensor's got, ref, bound, ratio, bits and map code of every entry as Python
    numbers in row-major order, made once for all of its entry items."""
    table = cmp.__dict__.get("_entry_table")
    if table is None:
        got, ref, bound, _, ratio, bits = cmp.flattened
        table = cmp.__dict__["_entry_table"] = (
            *(a.astype(np.float64).tolist() for a in (got, ref, bound, ratio, bits)),
            quantize(ratio).tolist())
    return table


def _summarize(cmp: Comparison, entry: tuple[int, ...] | None = None) -> dict:
    """Return one tensor's summary, any size."""
    ratio = cmp.ratio
    worst = [_entry(cmp, e, entry) for e in cmp.worst(WORST, failing_only=False)]
    return {
        "shape": list(cmp.ref.shape) if entry is None else [],
        "dtype": cmp.dtype,
        "entries": int(ratio.size),
        "failing": int(cmp.failing.sum()),
        "max_ratio": cmp.max_ratio,
        "max": worst[0] if worst else None,
        "bits": agreement(cmp),
        "worst": worst,
        "heatmap": heatmap(ratio),
        "values": exact_values(cmp) if ratio.size <= EXACT_ENTRIES else None,
    }


def agreement(cmp: Comparison) -> dict:
    """Return the bits of agreement, least and median, of the entries whose reference lies
    above their bound, and how many lie below it (`below`): there the reference is ~0 at the
    precision asked, any rounding changes its leading bits, and "0 of 24 bits" says nothing of
    the gradient (a passing tensor's entry of 1e-12 beside a bound of 1e-9)."""
    bits = cmp.bits
    below = ~(np.abs(np.asarray(cmp.ref, dtype=np.float64)) > cmp.bound)
    kept = bits[~below] if below.any() else bits.ravel()
    return {"min": float(kept.min()) if kept.size else None,
            "median": float(np.median(kept)) if kept.size else None,
            "of": MANTISSA_BITS.get(cmp.dtype, 53), "below": int(below.sum())}


def _entry(cmp: Comparison, e, entry: tuple[int, ...] | None) -> dict:
    """Return one worst entry with its bits of agreement; an entry item keeps its own index."""
    return {"index": list(e.index if entry is None else entry), "got": e.got, "ref": e.ref,
            "bound": e.bound, "ratio": e.ratio, "bits": float(cmp.bits[e.index])}


def quantize(ratio: np.ndarray) -> np.ndarray:
    """Return one byte per entry: 0 exact, 1…127 inside the bound, 128…254 outside, 255 inf/NaN."""
    r = np.asarray(ratio, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.ceil((np.log10(r) + DECADES) * STEPS)
    code = 1 + np.clip(np.nan_to_num(steps, nan=0.0, posinf=0.0, neginf=0.0), 0, 253)
    # Rounding in log10 must never move an entry across its bound: r ≤ 1 ⇔ code ≤ 127.
    code = np.where(r > 1, np.maximum(code, PASS_MAX + 1), np.minimum(code, PASS_MAX))
    code = np.where(np.isfinite(r), code, 255)
    return np.where(r == 0, 0, code).astype(np.uint8)


def code_of(ratio: float) -> int:
    """Return `quantize` of one ratio, without array operations (an entry item's map)."""
    r = float(ratio)
    if r == 0:
        return 0
    if not math.isfinite(r):
        return 255
    steps = math.ceil((float(np.log10(np.float64(r))) + DECADES) * STEPS) if r > 0 else 0
    code = 1 + min(max(steps, 0), 253)
    return max(code, PASS_MAX + 1) if r > 1 else min(code, PASS_MAX)


def heatmap(ratio: np.ndarray) -> dict:
    """Return the quantized ratios max-pooled to a drawable grid, base64-encoded."""
    return pooled(quantize(ratio))


def pooled(codes: np.ndarray) -> dict:
    """Return quantized codes max-pooled to a drawable grid, base64-encoded."""
    if codes.ndim >= 2:
        return _heatmap_2d(codes.reshape(codes.shape[0], -1))
    return _heatmap_1d(codes.reshape(-1))


def _heatmap_2d(codes: np.ndarray) -> dict:
    """Pool a (rows, cols) map by blocks so that it fits HEAT_ROWS × HEAT_COLS cells."""
    (n, m), br, bc = codes.shape, math.ceil(codes.shape[0] / HEAT_ROWS), 1
    bc = max(bc, math.ceil(m / HEAT_COLS))
    rows, cols = math.ceil(n / br), math.ceil(m / bc)
    grid = _pad(codes, (rows * br, cols * bc)).reshape(rows, br, cols, bc).max(axis=(1, 3))
    return {"layout": "2d", "block": [br, bc], "rows": rows, "cols": cols, "cells": rows * cols,
            "codes": _b64(grid)}


def _heatmap_1d(codes: np.ndarray) -> dict:
    """Pool a vector into contiguous blocks of at most HEAT_CELLS_1D cells, rastered in rows."""
    b = max(1, math.ceil(codes.size / HEAT_CELLS_1D))
    cells = math.ceil(codes.size / b)
    grid = _pad(codes, (cells * b,)).reshape(cells, b).max(axis=1)
    cols = max(1, min(cells, RASTER))
    return {"layout": "1d", "block": [b], "rows": math.ceil(cells / cols), "cols": cols,
            "cells": cells, "codes": _b64(grid)}


def _pad(codes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pad with 0 (exact) to the shape; padding never raises a pooled maximum."""
    if codes.shape == tuple(shape):
        return codes
    out = np.zeros(shape, dtype=codes.dtype)
    out[tuple(slice(0, n) for n in codes.shape)] = codes
    return out


def exact_values(cmp: Comparison) -> dict:
    """Return got, ref and bound as little-endian float64, base64-encoded."""
    return {k: _b64(np.asarray(getattr(cmp, k), dtype="<f8")) for k in ("got", "ref", "bound")}


def codes_of(heatmap_: dict) -> np.ndarray:
    """Return a heatmap's pooled codes as bytes (read-only; decoded already when the results
    reader decoded them: reading.Heatmap)."""
    raw = getattr(heatmap_, "raw", None)
    if raw is None:
        raw = base64.b64decode(heatmap_["codes"])
    return np.frombuffer(raw, dtype=np.uint8)


def b64_floats(values: list[float]) -> str:
    """Return floats as base64 little-endian float64, as `values` stores them."""
    return _b64(np.asarray(values, dtype="<f8"))


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def repooled(heat: dict, codes: np.ndarray, rows: int, cols: int, cells_1d: int) -> dict:
    """Return a heatmap's codes max-pooled again, coarser: at most rows × cols cells (2-D) or
    cells_1d cells (1-D), its block the product of both poolings."""
    if heat["layout"] == "2d":
        grid = codes.reshape(heat["rows"], heat["cols"])
        br, bc = math.ceil(grid.shape[0] / rows), math.ceil(grid.shape[1] / cols)
        r, c = math.ceil(grid.shape[0] / br), math.ceil(grid.shape[1] / bc)
        grid = _pad(grid, (r * br, c * bc)).reshape(r, br, c, bc).max(axis=(1, 3))
        return {"layout": "2d", "block": [heat["block"][0] * br, heat["block"][1] * bc],
                "rows": r, "cols": c, "cells": r * c, "codes": _b64(grid)}
    b = max(1, math.ceil(codes.size / cells_1d))
    cells = math.ceil(codes.size / b)
    grid = _pad(codes, (cells * b,)).reshape(cells, b).max(axis=1)
    cols_ = max(1, min(cells, RASTER))
    return {"layout": "1d", "block": [heat["block"][0] * b], "rows": math.ceil(cells / cols_),
            "cols": cols_, "cells": cells, "codes": _b64(grid)}


RECORDING = pytest.StashKey[bool]()
"""`recording`'s answer, in the config's stash: asked several times for each item, of options
that are fixed once the run is configured."""


def recording(config) -> bool:
    """Say whether this run writes results or a report (a pytest config's options)."""
    known = config.stash.get(RECORDING, None)
    if known is None:
        known = config.stash[RECORDING] = bool(config.getoption("results", None) or
                                               config.getoption("report", None))
    return known
