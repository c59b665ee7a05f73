"""Second order: a spec's direction v, its exact H·v and their tier, and what a wrong H·v reads
as (the nearest known second-order mistake, else a wrong gradient: k entries).

An item of order 2 (`…-hvp-W1`) is judged as a first-order item is, with H·v in place of the
gradient: the adapter's `hvp(case, v, dtype, device)` against `reference.hvp.hvp`, entry by
entry, inside `reference.hvp_bounds.hvp_bounds`, the tier derived as the first-order one is;
the group's field of errors is read by the first-order diagnosis (`reference.compare.diagnose`)
against the R-pass's own products simulated in reduced arithmetic (`reference.hvp_simulate`:
tf32 or bf16 per product, a float32 leak), and a wrong H·v is named by the nearest known
second-order mistake (`reference.hvp.mistakes`).
"""

from __future__ import annotations

import functools

import numpy as np

from reference.compare import Diagnosis, diagnose
from reference.hvp import direction, hvp, mistakes
from reference.hvp_bounds import hvp_bounds
from reference.hvp_simulate import hvp_products, simulate_hvp
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
    return hvp_bounds(_case(spec), direction_for(spec), dtype)


@functools.lru_cache(maxsize=256)
def simulated_hvp_for(spec: Spec, arithmetic: str, reduced: tuple[str, ...] | None = None
                      ) -> dict[str, np.ndarray]:
    """Return the spec's H·v computed in one arithmetic, in the named R-pass products or in
    every one."""
    return simulate_hvp(_case(spec), direction_for(spec), arithmetic, reduced)


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
    """Return what a group's H·v reads as: an arithmetic its field of errors matches (tf32 or
    bf16 in the R-pass products named, a float32 leak), else the known mistake a wrong H·v
    matches (`reference.mistakes.nearest` over `catalogue_for`), else a wrong gradient with its
    count of entries outside the tier, else its dtype."""
    ref = hvp_for(spec)
    diag = diagnose(got, ref, dtype, functools.partial(hvp_bounds_for, spec),
                    functools.partial(simulated_hvp_for, spec),
                    names=hvp_products(_case(spec).depth))
    return named(diag, _case(spec), got, ref, hvp_bounds_for(spec, dtype), catalogue_for(spec))
