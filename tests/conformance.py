"""Run one conformance item: call the adapter once per group, check shape, dtype, values."""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
import traceback

import numpy as np
import pytest

from adapters import DeviceUnavailable
from reference.bounds import bounds
from reference.case import Case, make_case
from reference.compare import Comparison, Diagnosis, compare, diagnose
from reference.network import Forward, forward, gradients
from reference.simulate import simulate
from tests.matrix import Item, Spec

MAX_LISTED = 5  # worst entries a failure message lists


class AdapterFailed(Exception):
    """The adapter raised; every item of its group fails with the same one-line reason."""


class FrameworkMissing(Exception):
    """The adapter's framework cannot be imported, or the device asked for is absent."""


@functools.lru_cache(maxsize=64)
def case_for(spec: Spec) -> Case:
    """Return the case of a spec, drawn once per process."""
    return make_case(spec.sizes, spec.batch, spec.seed, spec.sigma1, spec.sigma2)


@functools.lru_cache(maxsize=8)
def forward_for(spec: Spec) -> Forward:
    """Return the reference forward pass of one case (the bounds reuse it)."""
    return forward(case_for(spec))


@functools.lru_cache(maxsize=64)
def reference_for(spec: Spec) -> dict:
    """Return the reference gradients of one case."""
    return gradients(case_for(spec))


@functools.lru_cache(maxsize=256)
def bounds_for(spec: Spec, arithmetic: str) -> dict:
    """Return the per-entry bounds of one case for one arithmetic."""
    return bounds(case_for(spec), arithmetic, forward_for(spec))


@functools.lru_cache(maxsize=64)
def simulated_for(spec: Spec, arithmetic: str) -> dict:
    """Return the case's gradients simulated in one arithmetic (for the fingerprint)."""
    return simulate(case_for(spec), arithmetic)


class Runner:
    """Calls each adapter once per (config, case) and keeps the outcome for the group's items."""

    def __init__(self, adapters: dict, repeats: int = 0):
        self.adapters = adapters
        self.repeats = repeats
        self.timing: dict[str, dict] = {}
        self._results: dict[str, object] = {}
        self._diagnoses: dict[str, Diagnosis | None] = {}

    def result(self, item: Item):
        """Return the adapter's gradients for the item's group, or the exception it raised."""
        if item.group not in self._results:
            self._results = {item.group: self._call(item)}  # one group alive at a time
        return self._results[item.group]

    def diagnosis(self, item: Item, ref: dict) -> Diagnosis | None:
        """Return what the group's errors are consistent with, None if a tensor is unusable."""
        if item.group not in self._diagnoses:
            got = self.result(item)
            try:
                if not _well_formed(got, ref):
                    raise ValueError("a tensor is missing, misshapen or not finite")
                diag = diagnose(got, ref, item.config.dtype,
                                functools.partial(bounds_for, item.spec),
                                functools.partial(simulated_for, item.spec))
            except (KeyError, ValueError, TypeError, AttributeError):
                diag = None
            self._diagnoses = {item.group: diag}
        return self._diagnoses[item.group]

    def _call(self, item: Item):
        adapter = self.adapters[item.config.adapter]
        c = item.config
        setting = {} if c.precision == "default" else {"precision": c.precision}
        call = functools.partial(adapter.gradients, case_for(item.spec), c.dtype, c.device,
                                 **setting)
        try:
            got = call()
            if self.repeats:
                self.timing = {item.group: _time(call, self.repeats)}
            return got
        except ImportError as exc:
            return FrameworkMissing(f"{adapter.framework} cannot be imported: {exc}")
        except DeviceUnavailable as exc:
            return FrameworkMissing(str(exc))
        except Exception as exc:  # noqa: BLE001 - the adapter's failure is the finding
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
            return AdapterFailed(f"{type(exc).__name__}: {exc}{where}")


def _well_formed(got, ref: dict) -> bool:
    """Say whether every tensor is there, shaped like the reference's, and finite: only then
    is the field of errors worth diagnosing (each broken tensor fails on its own line)."""
    return isinstance(got, dict) and all(
        isinstance(got.get(k), np.ndarray) and got[k].shape == v.shape
        and bool(np.isfinite(got[k]).all()) for k, v in ref.items())


def _time(call, repeats: int) -> dict:
    """Time `repeats` calls after the first (the warm-up, already done).

    Each call ends by copying the gradients to NumPy, which waits for the device: on CUDA
    the times are synchronised without an explicit synchronize.
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"repeats": repeats, "median_s": statistics.median(times), "min_s": times[0],
            "max_s": times[-1]}


def check_item(runner: Runner, item: Item, require: bool, node: pytest.Item) -> Comparison:
    """Fail, skip or pass one item; leave what was compared on `node.conformance` for reports."""
    __tracebackhide__ = True
    name, tensor = item.config.adapter, item.tensor
    adapter = runner.adapters[name]
    node.conformance = {"item": item, "adapter": adapter}
    got = runner.result(item)
    if isinstance(got, FrameworkMissing):
        (pytest.fail if require else pytest.skip)(f"adapter {name!r}: {got}", **_quiet(require))
    if isinstance(got, AdapterFailed):
        pytest.fail(f"adapter {name!r} raised while computing {tensor}: {got}", pytrace=False)
    ref, bound = reference_for(item.spec), bounds_for(item.spec, item.config.dtype)
    g = _checked_tensor(got, name, tensor, ref[tensor].shape, item.config.dtype)
    arrays = (g, ref[tensor], bound[tensor])
    if item.entry is not None:  # entry-granular mode: compare this one entry, not the tensor
        arrays = tuple(np.asarray(a)[item.entry].reshape(1) for a in arrays)
    cmp = compare(tensor, *arrays, item.config.dtype)
    diag = runner.diagnosis(item, ref)
    node.conformance["comparison"] = cmp
    node.conformance["fingerprint"] = None if diag is None else str(diag)
    node.conformance["sensitivity"] = sensitivity(cmp, diag)
    node.conformance["precision_resolved"] = _resolved(adapter, item)
    if item.group in runner.timing:
        node.conformance["timing"] = runner.timing[item.group]
    if not cmp.passed or (diag is not None and diag.field is not None):
        pytest.fail(_message(item, cmp, diag, _reproduce(node), adapter), pytrace=False)
    return cmp


def sensitivity(cmp: Comparison, diag: Diagnosis | None) -> dict:
    """Return what the item could have caught: the smallest relative change of one entry that
    fails it, and whether each reduced arithmetic would be seen at this size."""
    ref = np.abs(cmp.ref)
    nonzero = ref > 0
    entry = float(np.min(cmp.bound[nonzero] / ref[nonzero])) if nonzero.any() else None
    out = {"entry_change": entry}
    for f in (diag.fits if diag is not None else ()):
        if f.arithmetic in ("tf32", "bfloat16"):
            out[f.arithmetic] = ("detectable" if f.detectable else "not detectable") + \
                f" (z≈{f.expected_z:.3g})"
    return out


def _reproduce(node: pytest.Item) -> str:
    """Return the command that runs this one item again (xdist's @group suffix left off)."""
    rerun = getattr(node.config, "conformance_rerun", "")
    nodeid = node.nodeid.split("@", 1)[0]
    return f"python -m pytest '{nodeid}'" + (f" {rerun}" if rerun else "")


def _resolved(adapter, item: Item) -> str:
    """Return the precision setting the item ran under, the default resolved to its value."""
    if item.config.precision != "default" or not hasattr(adapter, "resolve_precision"):
        return item.config.precision
    return f"default: {adapter.resolve_precision(item.config.device)}"


def _advice(item: Item, diag: Diagnosis, adapter) -> str:
    """Say which setting restores float32 when the field matched lower-precision products."""
    if diag.field == "float32" and item.config.dtype == "float64":
        return " (float64 was asked: it was computed in float32)"
    if item.config.dtype != "float32" or diag.field not in ("tf32", "bfloat16"):
        return ""
    setting = getattr(adapter, "float32_setting", None)
    restore = f"; {setting} restores float32" if setting else ""
    return f" (float32 was asked: its matrix products ran in {diag.field}{restore})"


def _quiet(require: bool) -> dict:
    return {"pytrace": False} if require else {}


def _checked_tensor(got, name: str, tensor: str, shape: tuple, dtype: str) -> np.ndarray:
    """Check presence, type, shape and dtype, each with its own one-line message."""
    __tracebackhide__ = True
    if not isinstance(got, dict):
        pytest.fail(f"adapter {name!r} returned {type(got).__name__}, not a dict of tensors",
                    pytrace=False)
    if tensor not in got:
        keys = ", ".join(map(str, got)) or "nothing"
        pytest.fail(f"adapter {name!r} returned no {tensor} (it returned {keys})", pytrace=False)
    g = got[tensor]
    if not isinstance(g, np.ndarray):
        pytest.fail(f"adapter {name!r} returned {tensor} as {type(g).__name__}, not a NumPy array",
                    pytrace=False)
    if g.shape != shape:
        pytest.fail(f"adapter {name!r} returned {tensor} with shape {g.shape}, expected {shape}",
                    pytrace=False)
    if g.dtype != np.dtype(dtype):
        pytest.fail(f"adapter {name!r} returned {tensor} as {g.dtype}, asked for {dtype}",
                    pytrace=False)
    bad = ~np.isfinite(g)
    if bad.any():
        first = ", ".join(map(str, np.argwhere(bad)[0]))
        pytest.fail(f"adapter {name!r} returned {tensor} with {int(bad.sum())} NaN/Inf of "
                    f"{g.size} entries (first at {tensor}[{first}])", pytrace=False)
    return g


def _message(item: Item, cmp: Comparison, diag: Diagnosis | None, reproduce: str,
             adapter) -> str:
    """Say which entries are out of bound, by how much, what arithmetic fits, how to rerun."""
    bad = int(cmp.failing.sum())
    lines = [
        f"{item.config.id} {cmp.tensor}: {bad} of {cmp.ref.size} entries "
        f"({100 * bad / cmp.ref.size:.3g}%) outside their bound; greatest ratio {cmp.max_ratio:.3g}"
    ]
    if not bad and diag is not None and diag.field is not None:
        lines[0] = (f"{item.config.id} {cmp.tensor}: every entry inside its bound (greatest "
                    f"ratio {cmp.max_ratio:.3g}), but the group's {diag.evidence()}")
    worst = cmp.worst(MAX_LISTED)
    if item.entry is not None:  # the narrowed comparison indexes its one entry as (0,)
        worst = [dataclasses.replace(e, index=item.entry) for e in worst]
    lines += ["  " + e.describe(item.tensor) for e in worst]
    if bad > MAX_LISTED:
        lines.append(f"  … and {bad - MAX_LISTED} more")
    if bad and diag is not None and diag.field is not None:
        lines.append(f"the group's {diag.evidence()}")
    if diag is not None:
        lines.append(f"errors consistent with: {diag}{_advice(item, diag, adapter)}")
    lines.append(f"reproduce: {reproduce}")
    return "\n".join(lines)
