"""Second order: a spec's direction v, its exact H·v and their tier, and what a wrong H·v reads
as (the nearest known second-order mistake, else a wrong gradient: k entries).

An item of order 2 (`…-hvp-W1`) is judged as a first-order item is, with H·v in place of the
gradient: the adapter's `hvp(case, v, dtype, device)` against `reference.hvp.hvp`, entry by
entry, inside `reference.hvp.hvp_bounds`, the tier derived as the first-order one is. The
group's field reading (tf32, bf16, a float32 leak) is the first-order diagnosis's: products
simulated in reduced arithmetic exist for gradients only, so a second-order group reads a
wrong gradient or a known mistake, never an arithmetic.
"""

from __future__ import annotations

import functools

import numpy as np

from reference.compare import WRONG, Diagnosis, compare
from reference.hvp import direction, hvp, mistakes
from reference.mistakes import Mistake, Variant, named
from tests.engine.matrix import Spec

SECOND = 2
"""The order of a Hessian-vector product item (`Config.order`)."""


def _case(spec: Spec):
    from tests.engine.conformance import case_for  # the one pristine case of the process

    return case_for(spec)


@functools.lru_cache(maxsize=64)
def direction_for(spec: Spec) -> dict[str, np.ndarray]:
    """Return the spec's direction v, drawn once per process, its arrays read-only (adapters get
    fresh copies, `tests/engine/copies.py`)."""
    v = direction(_case(spec))
    for a in v.values():
        a.setflags(write=False)
    return v


@functools.lru_cache(maxsize=64)
def hvp_for(spec: Spec) -> dict[str, np.ndarray]:
    """Return the exact H·v of the spec's case along its direction, in float64."""
    return hvp(_case(spec), direction_for(spec))


@functools.lru_cache(maxsize=256)
def hvp_bounds_for(spec: Spec, dtype: str) -> dict[str, np.ndarray]:
    """Return the per-entry tier of H·v for one dtype."""
    from reference.hvp import hvp_bounds

    return hvp_bounds(_case(spec), direction_for(spec), dtype)


@functools.lru_cache(maxsize=16)
def catalogue_for(spec: Spec) -> tuple[Mistake, ...]:
    """Return the known second-order mistakes on this case as `reference.mistakes` entries:
    one variant each, the H·v the mistake computes along the spec's direction."""
    case, v = _case(spec), direction_for(spec)
    return tuple(Mistake(name, _variant(fn(case, v)), f"{name}: {why}")
                 for name, fn, why in mistakes(case))


def _variant(got: dict):
    return lambda bp, seen: iter((Variant(got, {}),))


def diagnose_hvp(spec: Spec, got: dict, dtype: str) -> Diagnosis:
    """Return what a group's H·v reads as: its dtype when every entry is inside the tier, else
    the known mistake it matches (`reference.mistakes.nearest` over `catalogue_for`), else a
    wrong gradient with its count of entries outside the tier."""
    ref, bound = hvp_for(spec), hvp_bounds_for(spec, dtype)
    failing = sum(int(compare(k, got[k], ref[k], bound[k], dtype).failing.sum()) for k in ref)
    diag = Diagnosis(WRONG if failing else dtype, failing)
    return named(diag, _case(spec), got, ref, bound, catalogue_for(spec))
