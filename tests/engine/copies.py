"""The case an adapter is handed: a fresh read-only copy of the pristine one, and what a call
changed in it, bitwise (tests/engine/conformance.py in the suite's process, tests/engine/
isolation.py in an adapter's own)."""

from __future__ import annotations

import dataclasses

import numpy as np

from reference.case import Case


class CaseWritten(Exception):
    """The adapter changed the case it was handed."""


def layout(a) -> str:
    return f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__


def bits(a: np.ndarray) -> np.ndarray:
    """Return an array's entries as unsigned integers of the same width: its bit patterns."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}")


def _values(case: Case) -> dict[str, object]:
    """Return every value of the case by name, layers flattened: sizes, batch, seed, sigmas,
    W1, b1, sigma1, …, WL, bL, sigmaL, x, y (a changed array is then named as its gradient is)."""
    out = {}
    for f in dataclasses.fields(case):
        value = getattr(case, f.name)
        if f.name != "layers":
            out[f.name] = value
            continue
        for i, layer in enumerate(value, start=1):
            out.update({f"W{i}": layer.W, f"b{i}": layer.b, f"sigma{i}": layer.sigma})
    return out


def arrays(case: Case) -> dict[str, np.ndarray]:
    return {k: v for k, v in _values(case).items() if isinstance(v, np.ndarray)}


def _read_only_copy(a: np.ndarray) -> np.ndarray:
    """Return a fresh read-only view of a fresh copy (a view of a read-only base cannot be
    made writeable again)."""
    base = a.copy()
    base.setflags(write=False)
    return base.view()


def fresh(case: Case) -> Case:
    """Return a copy of the case whose arrays, the layers' included, are fresh and read-only."""
    layers = tuple(dataclasses.replace(layer, W=_read_only_copy(layer.W),
                                       b=_read_only_copy(layer.b)) for layer in case.layers)
    arrays = {f.name: _read_only_copy(getattr(case, f.name)) for f in dataclasses.fields(case)
              if isinstance(getattr(case, f.name), np.ndarray)}
    return dataclasses.replace(case, layers=layers, **arrays)


def changes(case: Case, pristine: Case) -> str:
    """Say which value of the case differs from the pristine one, bitwise; '' if none."""
    if not isinstance(case.layers, tuple) or len(case.layers) != len(pristine.layers):
        return f"layers changed (now {_count(case.layers)}, was {len(pristine.layers)})"
    now = _values(case)
    return next((said for k, b in _values(pristine).items() if (said := _changed(k, now[k], b))),
                "")


def _changed(k: str, a, b) -> str:
    """Say how value k differs from its pristine b, bitwise; '' if it does not."""
    if not isinstance(b, np.ndarray):
        return f"{k} changed ({b!r} → {a!r})" if a != b else ""
    if not isinstance(a, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
        return f"{k} changed (now {layout(a)}, was {layout(b)})"
    n = int((bits(a) != bits(b)).sum())
    return f"{k} changed ({n} of {b.size} entries)" if n else ""


def fresh_direction(v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return a copy of a second-order direction v whose arrays are fresh and read-only."""
    return {k: _read_only_copy(a) for k, a in v.items()}


def direction_changes(v, pristine: dict[str, np.ndarray]) -> str:
    """Say which part of the direction v differs from the pristine one, bitwise; '' if none."""
    if not isinstance(v, dict) or set(v) != set(pristine):
        now = sorted(v) if isinstance(v, dict) else type(v).__name__
        return f"the direction changed (now {now}, was {sorted(pristine)})"
    return next((f"the direction's {said}" for k, b in pristine.items()
                 if (said := _changed(k, v[k], b))), "")


def _count(layers) -> str:
    return f"{len(layers)}" if isinstance(layers, tuple) else type(layers).__name__
