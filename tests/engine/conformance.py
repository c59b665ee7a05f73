"""Run one conformance item: call the adapter (twice or more) per group, check the case came
back untouched and the calls agree, then check shape, dtype, values."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import os
import shlex
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback

import numpy as np
import pytest

from adapters import DeviceUnavailable, has_hvp
from reference.bounds import bounds
from reference.case import Case, TwoLayerField
from reference.compare import REDUCED, Comparison, Diagnosis, compare, diagnose
from reference.mistakes import named
from reference.network import Forward, Layers, forward, gradients
from reference.simulate import simulate
from reports.record import COMPARED, recording
from tests.engine import isolation, precise, second
from tests.engine.copies import (
    CaseWritten,
    arrays,
    bits,
    changes,
    direction_changes,
    fresh,
    fresh_direction,
    layout,
)
from tests.engine.isolation import ChildFailed
from tests.engine.matrix import Config, Item, Spec, draw

MAX_LISTED = 5  # worst entries a failure message lists


class AdapterFailed(Exception):
    """The adapter raised; every item of its group fails with the same one-line reason."""


class FrameworkMissing(Exception):
    """The adapter's framework cannot be imported, or the device asked for is absent."""


class ContractV1(Exception):
    """The adapter read a 2-layer field (contract v1) on a case of another depth: its items are
    skipped, never failed; the text is the skip's one reason."""


class OrderMissing(Exception):
    """The adapter has no `hvp` and its second-order items were asked for (`--order 2`): they
    are skipped with this reason, never failed (the adapter does not claim second order)."""


class GroupFailed(Exception):
    """The group's calls broke the run's integrity (wrote into the case, ran past the timeout,
    changed shape between calls); its text is the whole one-line failure of every item."""


class AdapterTimeout(BaseException):
    """Raised inside an adapter call that runs past --adapter-timeout; a BaseException, so
    that an adapter's own `except Exception` cannot swallow it."""


REASON_CHARS = 500  # an adapter's exception message is cut to this many characters
RUNNER = pytest.StashKey["Runner"]()
"""The run's Runner, in its config's stash (made by tests/engine/plugin.py)."""
RERUN = pytest.StashKey[str]()
"""The options a failing item's reproduce line repeats, in its config's stash."""
RUNNING: contextvars.ContextVar[pytest.Item] = contextvars.ContextVar("conformance_node")
"""The test item whose call is running (set by tests/engine/plugin.py around every call phase):
`check` records into it, so a conformance test needs no fixture (entry items run without
pytest's fixture machinery)."""


@functools.lru_cache(maxsize=64)
def case_for(spec: Spec) -> Case:
    """Return the pristine case of a spec, drawn once per process, its arrays read-only.

    Adapters never receive it: each call gets a fresh read-only copy (`fresh`), compared to
    this one bitwise afterwards, so the reference and the bounds never see an adapter's writes.
    """
    case = draw(spec)
    for a in arrays(case).values():
        a.setflags(write=False)
    return case


@functools.lru_cache(maxsize=8)
def forward_for(spec: Spec) -> Forward | Layers:
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


def expected_for(item: Item) -> dict:
    """Return what the item's group is checked against: the reference gradients, or H·v along
    the spec's direction for a second-order item."""
    return expected_of(item.config, item.spec)


def tier_for(item: Item) -> dict:
    """Return the per-entry bounds of the item's group in its dtype, of its order."""
    return tier_of(item.config, item.spec)


def expected_of(config: Config, spec: Spec) -> dict:
    """Return the reference of a config's order on a spec: gradients, or H·v."""
    return reference_for(spec) if config.order == 1 else second.hvp_for(spec)


def tier_of(config: Config, spec: Spec) -> dict:
    """Return the bounds of a config's order and dtype on a spec."""
    if config.order == 1:
        return bounds_for(spec, config.dtype)
    return second.hvp_bounds_for(spec, config.dtype)


def call_of(adapter, config: Config, spec: Spec):
    """Call the adapter once as the config asks (gradients, or hvp along the spec's direction)
    on fresh read-only copies of the case and direction; return what it gave."""
    setting = {} if config.precision == "default" else {"precision": config.precision}
    v = None if config.order == 1 else fresh_direction(second.direction_for(spec))
    return isolation.call(adapter, fresh(case_for(spec)), config.dtype, config.device, v=v,
                          **setting)


@functools.lru_cache(maxsize=256)
def simulated_for(spec: Spec, arithmetic: str, reduced: tuple[str, ...] | None = None) -> dict:
    """Return the case's gradients simulated in one arithmetic, in the named products or in
    every one (for the fingerprint)."""
    return simulate(case_for(spec), arithmetic, reduced)


@functools.lru_cache(maxsize=16)
def caught_for(spec: Spec) -> dict[str, str]:
    """Return, for tf32 and bf16, what the diagnosis reads of the case simulated with every
    product in that arithmetic: the run behind each `sensitivity` claim (a claim is made only
    where such a run was read)."""
    ref, bounds_of = reference_for(spec), functools.partial(bounds_for, spec)
    simulate_of = functools.partial(simulated_for, spec)
    out = {}
    for arithmetic in ("tf32", "bfloat16"):  # the other family's fits are 8× off: not tried
        family = tuple(a for a, name in REDUCED.items() if name == arithmetic)
        diag = diagnose(simulate_of(arithmetic), ref, "float32", bounds_of, simulate_of, family)
        out[arithmetic] = ("detectable" if diag.field == arithmetic else
                           "caught as a wrong gradient, not named" if diag.fails else
                           "not detectable")
    return out


class Runner:
    """Calls each adapter at least twice per (config, case), each call on a fresh read-only
    copy of the case and under a timeout, and keeps the outcome for the group's items.

    The first call's gradients are the ones checked; every later call (the determinism call,
    or the --timing calls after the first, which is their warm-up) is compared with it bitwise.
    """

    def __init__(self, adapters: dict, repeats: int = 0, deterministic: bool = False,
                 timeout: float = 0.0, repro=None):
        self.adapters = adapters
        self.repro = repro  # a tests.engine.repro.Exporter under --repro DIR
        self.repeats = repeats
        self.deterministic = deterministic
        self.timeout = timeout
        self.timing: dict[str, dict] = {}
        self._results: dict[str, Outcome] = {}
        self._diagnoses: dict[str, Diagnosis | None] = {}

    def result(self, item: Item):
        """Return the adapter's gradients for the item's group, or the exception it raised."""
        return self.outcome(item).got

    def outcome(self, item: Item) -> Outcome:
        """Return the group's outcome, calling the adapter only for a group not seen last."""
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
                diag = diagnosed(item.config, item.spec, got, ref, operations=True)
            except (KeyError, ValueError, TypeError, AttributeError):
                diag = None
            self._diagnoses = {item.group: diag}
        return self._diagnoses[item.group]

    def _call(self, item: Item) -> Outcome:
        """Call the adapter once, then once or --timing times more; return what came back."""
        expected_for(item), tier_for(item)  # before any call
        name = item.config.adapter
        if item.config.order == second.SECOND and not has_hvp(self.adapters[name]):
            return Outcome(OrderMissing(
                f"adapter {name!r} has no hvp(case, v, dtype, device): its second-order items "
                "are skipped (adapters/README.md)"))
        n, call = 1 + max(1, self.repeats), 1
        try:
            got, seconds = self._once(item)
            got = _kept(got)
            spread, times = Spread(got), []
            for call in range(2, n + 1):
                later, elapsed = self._once(item)
                spread.add(later, call)
                times.append(elapsed)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - the adapter's failure is the finding
            return Outcome(_failure(exc, name, self.adapters[name], call, n))
        # the first call's time goes to the group, not to the item that happened to run it
        self.timing = {item.group: {"first_call_s": seconds,
                                    **(_timing(times) if self.repeats else {})}}
        return Outcome(got, spread)

    def _once(self, item: Item) -> tuple[object, float]:
        """Call the adapter on a fresh read-only case; check that the case came back unchanged."""
        c = item.config
        setting = {} if c.precision == "default" else {"precision": c.precision}
        pristine = case_for(item.spec)
        case = fresh(pristine)
        v = None if c.order == 1 else fresh_direction(second.direction_for(item.spec))
        start = time.perf_counter()
        with _deadline(self.timeout):
            got = isolation.call(self.adapters[c.adapter], case, c.dtype, c.device, v=v,
                                 **setting)
        elapsed = time.perf_counter() - start
        changed = changes(case, pristine) or (v is not None and direction_changes(
            v, second.direction_for(item.spec)))
        if changed:
            raise CaseWritten(changed)
        return got, elapsed


def diagnosed(config: Config, spec: Spec, got: dict, ref: dict, operations: bool = False
              ) -> Diagnosis:
    """Return a group's diagnosis: the field of errors read against simulated arithmetics and
    named by the nearest known bug (first order), or by the second-order mistakes.

    `operations` adds the reading of which element-wise operation lost precision (a float64
    run's errors in the span of one operation's effect); a shrinking search, which judges
    dozens of candidates, leaves it out and keeps the level reading."""
    dtype = config.dtype
    if config.order == second.SECOND:
        return second.diagnose_hvp(spec, got, dtype)
    diag = diagnose(got, ref, dtype, functools.partial(bounds_for, spec),
                    functools.partial(simulated_for, spec),
                    case=case_for(spec) if operations else None)
    return named(diag, case_for(spec), got, ref, bounds_for(spec, dtype))


def _well_formed(got, ref: dict) -> bool:
    """Say whether every tensor is there, shaped like the reference's, and finite: only then
    is the field of errors worth diagnosing (each broken tensor fails on its own line)."""
    return isinstance(got, dict) and all(
        isinstance(got.get(k), np.ndarray) and got[k].shape == v.shape
        and bool(np.isfinite(got[k]).all()) for k, v in ref.items())


@dataclasses.dataclass
class Outcome:
    """What a group's calls gave: the first call's gradients (or the failure), and how later
    calls differed from it."""

    got: object
    spread: Spread | None = None


class Spread:
    """Accumulates, per tensor, which entries of later calls differ bitwise from the first
    call's, and the greatest such difference."""

    def __init__(self, first):
        self.first = first if isinstance(first, dict) else {}
        self.calls = 1
        self.differ: dict[str, np.ndarray] = {}
        self.diff: dict[str, np.ndarray] = {}

    def add(self, later, call: int) -> None:
        """Compare one later call's gradients with the first's; raise on a changed layout."""
        self.calls = call
        for k, g in self.first.items():
            if not _float_array(g):
                continue
            o = later.get(k) if isinstance(later, dict) else None
            if not _float_array(o) or o.shape != g.shape or o.dtype != g.dtype:
                raise GroupFailed(f"nondeterministic: call {call} returned {k} as "
                                  f"{layout(o)}, call 1 as {layout(g)}")
            differ = bits(o) != bits(g)
            diff = np.abs(o.astype(np.float64) - g.astype(np.float64))
            diff = np.where(differ, np.nan_to_num(diff, nan=np.inf), 0.0)
            self.differ[k] = differ | self.differ.get(k, False)
            self.diff[k] = np.fmax(diff, self.diff.get(k, 0.0))


def _kept(got):
    """Return the first call's gradients copied: an adapter that returns one buffer and fills
    it again on its next call must not change what was checked."""
    if not isinstance(got, dict):
        return got
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in got.items()}


def _float_array(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _failure(exc: BaseException, name: str, adapter, call: int, calls: int) -> Exception:
    """Return what a call's exception means for its group: one line naming the adapter."""
    if isinstance(exc, GroupFailed):
        return GroupFailed(f"adapter {name!r} is {exc}")
    if isinstance(exc, CaseWritten):
        return GroupFailed(f"adapter {name!r} wrote into the case: {exc}")
    if isinstance(exc, AdapterTimeout):
        return GroupFailed(f"adapter {name!r} did not return within {exc} s "
                           f"(call {call} of {calls}; --adapter-timeout)")
    if isinstance(exc, ImportError):
        return FrameworkMissing(f"{getattr(adapter, 'framework', name)} cannot be imported: "
                                f"{_first_line(exc)}")
    if isinstance(exc, DeviceUnavailable):
        return FrameworkMissing(_first_line(exc))
    which = f" (call {call} of {calls})" if call > 1 else ""
    if isinstance(exc, ChildFailed):  # its own process said it all (tests/engine/isolation.py)
        return AdapterFailed(f"{exc}{which}")
    last = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, TwoLayerField):  # name the adapter's line that read the field
        last = [f for f in last if not f.filename.endswith(f"reference{os.sep}case.py")]
    where = f" ({last[-1].filename.rsplit('/', 1)[-1]}:{last[-1].lineno})" if last else ""
    where = getattr(exc, "where", where) if isinstance(exc, TwoLayerField) else where
    if isinstance(exc, TwoLayerField):
        return ContractV1(f"adapter {name!r} keeps contract v1, two layers only (it read a "
                          f"2-layer field{where}): its cases of another depth are skipped; "
                          "read case.layers to run them (adapters/README.md)")
    return AdapterFailed(f"{type(exc).__name__}: {_first_line(exc)}{where}{which}")


def _first_line(exc: BaseException) -> str:
    """Return an exception's first non-empty line, cut to REASON_CHARS."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a __str__ that raises still names its type
        text = ""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= REASON_CHARS else line[:REASON_CHARS] + "…"


AGAIN = 0.1
"""Seconds between AdapterTimeouts once the deadline has passed, until the call returns."""


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise AdapterTimeout inside the block after `seconds`, and again every AGAIN seconds
    until the block ends: an adapter whose bare `except:` swallows one (in a retry loop, say)
    gets the next. A block that ends after the deadline raises AdapterTimeout, whatever it did
    meanwhile. SIGALRM: main thread only, where pytest and each xdist worker run their items;
    the previous handler and timer are restored."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed, fired = True, False

    def expire(signum, frame):
        nonlocal fired
        fired = True
        if armed:
            raise AdapterTimeout(f"{seconds:g}")

    previous = signal.signal(signal.SIGALRM, expire)
    before = signal.setitimer(signal.ITIMER_REAL, seconds, min(AGAIN, seconds))
    start = time.monotonic()
    ended = None  # what the block raised, when it was not the timeout itself
    try:
        yield
    except (AdapterTimeout, KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - after a swallowed timeout, the timeout counts
        if not fired:
            raise
        ended = exc
    finally:
        armed = False  # first: from here on the handler raises nothing
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if before[0]:
            left = max(before[0] - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, before[1])
    if fired:
        raise AdapterTimeout(f"{seconds:g}") from ended


def _timing(times: list[float]) -> dict:
    """Summarise the timed calls (those after the first, the warm-up).

    Each call ends by copying the gradients to NumPy, which waits for the device: on CUDA
    the times are synchronised without an explicit synchronize.
    """
    times = sorted(times)
    return {"repeats": len(times), "median_s": statistics.median(times), "min_s": times[0],
            "max_s": times[-1]}


def check_group(runner: Runner, item: Item, node: pytest.Item) -> None:
    """Record how the group's calls differed; fail a nondeterministic tensor."""
    __tracebackhide__ = True
    spread = runner.outcome(item).spread
    if spread is None or item.tensor not in spread.differ:
        return
    differ, diff = spread.differ[item.tensor], spread.diff[item.tensor]
    bound = tier_for(item)[item.tensor]
    if item.entry is not None:
        _entry_spread(runner, item, node, spread, differ, diff, bound)
        return
    bound = np.asarray(bound, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff > 0, diff / bound, 0.0)
    n, worst = int(differ.sum()), int(np.argmax(ratio))
    node.stash[COMPARED]["determinism"] = {"calls": spread.calls, "differing": n,
                                           "of": int(differ.size),
                                           "max_ratio": float(ratio.max())}
    if ratio.max() > 1 or (runner.deterministic and n):
        pytest.fail(_nondeterministic(item, n, ratio, worst, spread.calls, differ.shape),
                    pytrace=False)


def _entry_spread(runner: Runner, item: Item, node: pytest.Item, spread, differ, diff,
                  bound) -> None:
    """`check_group` for an entry item, from its one entry's numbers."""
    __tracebackhide__ = True
    n, d, b = int(differ[item.entry]), float(diff[item.entry]), float(bound[item.entry])
    ratio = (d / b if b else math.inf) if d > 0 else 0.0
    node.stash[COMPARED]["determinism"] = {"calls": spread.calls, "differing": n, "of": 1,
                                           "max_ratio": ratio}
    if ratio > 1 or (runner.deterministic and n):
        pytest.fail(_nondeterministic(item, n, np.array([ratio]), 0, spread.calls, (1,)),
                    pytrace=False)


def _nondeterministic(item: Item, n: int, ratio: np.ndarray, worst: int, calls: int,
                      shape: tuple) -> str:
    """Say how a tensor's calls differed, in one line."""
    index = item.entry or np.unravel_index(worst, shape)
    at = f"{item.tensor}[{', '.join(map(str, index))}]"
    head = (f"{item.config.id} {item.quantity} nondeterministic: {n} of {ratio.size} entries "
            f"differ between {calls} calls")
    if ratio.max() > 1:
        return f"{head}; greatest difference {ratio.max():.3g} × its bound, at {at}"
    return (f"{head} bitwise, within the bound (greatest {ratio.max():.3g} × at {at}); "
            "--deterministic allows none")


def check(item: Item) -> Comparison:
    """Check one item of the matrix in the test item now running, with the run's runner."""
    __tracebackhide__ = True
    node = RUNNING.get()
    return check_item(node.config.stash[RUNNER], item,
                      node.config.getoption("require_frameworks"), node)


def check_item(runner: Runner, item: Item, require: bool, node: pytest.Item) -> Comparison:
    """Fail, skip or pass one item; leave what was compared in `node.stash[COMPARED]` for
    reports."""
    __tracebackhide__ = True
    name, tensor = item.config.adapter, item.tensor
    adapter = runner.adapters[name]
    seen = node.stash[COMPARED] = {"item": item, "adapter": adapter}
    got = runner.result(item)
    if isinstance(got, FrameworkMissing):
        (pytest.fail if require else pytest.skip)(f"adapter {name!r}: {got}", **_quiet(require))
    if isinstance(got, ContractV1 | OrderMissing):
        pytest.skip(str(got))
    if isinstance(got, AdapterFailed):
        pytest.fail(f"adapter {name!r} raised while computing {tensor}: {got}", pytrace=False)
    if isinstance(got, GroupFailed):
        pytest.fail(str(got), pytrace=False)
    ref, bound = expected_for(item), tier_for(item)
    g = _checked_once(got, name, tensor, ref[tensor].shape, item.config.dtype)
    if item.entry is not None:  # entry-granular mode: compare this one entry, not the tensor
        cmp = _compared_once(g, tensor, ref[tensor], bound[tensor], item.config.dtype).at(
            item.entry)
    else:
        cmp = compare(tensor, g, ref[tensor], bound[tensor], item.config.dtype)
    diag = runner.diagnosis(item, ref)
    seen["comparison"] = cmp
    seen["fingerprint"] = None if diag is None else str(diag)
    seen["note"] = precise.note(item, got, ref, diag)
    if recording(node.config):  # what only results and reports read: computed for them
        seen["sensitivity"] = sensitivity(cmp, caught_for(item.spec) if (
            item.config.dtype, item.config.order) == ("float32", 1) else {})
    seen["precision_resolved"] = _resolved_once(adapter, item)
    if item.group in runner.timing:
        seen["timing"] = runner.timing[item.group]
    check_group(runner, item, node)
    if not cmp.passed or (diag is not None and diag.field is not None):
        if runner.repro is not None and diag is not None:
            seen["repro"] = runner.repro.export(item, adapter)
        pytest.fail(_message(item, cmp, diag, _reproduce(node), adapter), pytrace=False)
    return cmp


_ONCE: dict = {}
"""What every entry item of one tensor shares (`--entries`): the checked tensor and the
resolved precision, kept with the gradients they came from (held, so never mistaken)."""


def _checked_once(got, name: str, tensor: str, shape: tuple, dtype: str) -> np.ndarray:
    """Return `_checked_tensor` of these gradients, checked once for all of its entry items."""
    __tracebackhide__ = True
    if _ONCE.get("got") is got and _ONCE.get("tensor") == tensor:
        return _ONCE["checked"]
    g = _checked_tensor(got, name, tensor, shape, dtype)
    _ONCE.clear()
    _ONCE.update(got=got, tensor=tensor, checked=g)
    return g


def _compared_once(g: np.ndarray, tensor: str, ref: np.ndarray, bound: np.ndarray,
                   dtype: str) -> Comparison:
    """Return the whole tensor's comparison, made once for all of its entry items."""
    if _ONCE.get("compared_of") is g:
        return _ONCE["compared"]
    _ONCE.update(compared_of=g, compared=compare(tensor, g, ref, bound, dtype))
    return _ONCE["compared"]


def _resolved_once(adapter, item: Item) -> str:
    """Return `_resolved`, asked once per group and config."""
    key = (id(adapter), item.group)
    if _ONCE.get("resolved_key") != key:
        _ONCE.update(resolved_key=key, resolved=_resolved(adapter, item), adapter=adapter)
    return _ONCE["resolved"]


def sensitivity(cmp: Comparison, caught: dict[str, str]) -> dict:
    """Return what the item could have caught: the smallest relative change of one entry that
    fails it, and what the diagnosis read of the case run in tf32 and in bf16 (`caught_for`)."""
    if cmp.ref.size == 1:  # an entry item: the same quotient, without array overhead
        ref = abs(float(cmp.ref.ravel()[0]))
        entry = float(cmp.bound.ravel()[0]) / ref if ref > 0 else None
    else:
        ref = np.abs(cmp.ref)
        nonzero = ref > 0
        entry = float(np.min(cmp.bound[nonzero] / ref[nonzero])) if nonzero.any() else None
    return {"entry_change": entry, **caught}


def _reproduce(node: pytest.Item) -> str:
    """Return the command that runs this one item again (xdist's @group suffix left off)."""
    rerun = node.config.stash.get(RERUN, "")
    nodeid = node.nodeid.split("@", 1)[0]
    return f"{_python()} -m pytest '{nodeid}'" + (f" {rerun}" if rerun else "")


def _python() -> str:
    """Return `python` when that is, on PATH, the interpreter running the suite; else its path.

    Paths are compared unresolved first: a virtual environment's python is a symlink to the
    system one, yet runs with other packages, so a shared target proves nothing inside a venv.
    """
    found = shutil.which("python")
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
        return "python"
    in_venv = sys.prefix != sys.base_prefix
    if found and not in_venv and os.path.realpath(found) == os.path.realpath(sys.executable):
        return "python"
    return shlex.quote(sys.executable)


def _resolved(adapter, item: Item) -> str:
    """Return the precision setting the item ran under, the default resolved to its value."""
    if item.config.precision != "default" or not hasattr(adapter, "resolve_precision"):
        return item.config.precision
    return f"default: {adapter.resolve_precision(item.config.device)}"


def _advice(item: Item, diag: Diagnosis, adapter) -> str:
    """Say which setting restores float32 when the field matched lower-precision products."""
    if diag.field == "float32" and item.config.dtype == "float64":
        if diag.operations is not None:
            return " (float64 was asked: the operations named ran in float32)"
        return " (float64 was asked: it was computed in float32)"
    if item.config.dtype != "float32" or diag.field not in ("tf32", "bfloat16"):
        return ""
    setting = getattr(adapter, "float32_setting", None)
    restore = f"; {setting} restores float32" if setting else ""
    which = "the products named" if diag.products else "its matrix products"
    return f" (float32 was asked: {which} ran in {diag.field}{restore})"


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
        f"{item.config.id} {item.quantity}: {bad} of {cmp.ref.size} entries "
        f"({100 * bad / cmp.ref.size:.3g}%) outside their bound; greatest ratio {cmp.max_ratio:.3g}"
    ]
    if not bad and diag is not None and diag.field is not None:
        lines[0] = (f"{item.config.id} {item.quantity}: every entry inside its bound (greatest "
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
