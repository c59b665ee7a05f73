"""Adapters build the reference's network in a framework and return its autodiff gradients.

The contract (adapters/README.md has the whole of it, with a runnable example): an adapter is
an object with

    name: str        # lowercase, -k-safe, first piece of every test id: "torch", "jax_jit"
    framework: str   # what it tests: "torch", "jax"; a distribution name gives its version
    distributions: tuple[str, ...]   # optional: what it runs on, recorded with their versions
    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]

`gradients` builds the network from exactly the case's layers (contract v2: `case.layers`, each
with W, b and sigma, any depth L), inputs and targets in `dtype` ("float32", "float64") on
`device` ("cpu", "cuda"), and returns ∂C/∂W1, ∂C/∂b1, …, ∂C/∂WL, ∂C/∂bL of the summed cost (19)
as NumPy arrays shaped like the parameters. It holds no
tolerances, compares nothing, prints nothing, and imports its framework only when called.

Optional, for second order: `hvp(case, v, dtype, device)` returns the Hessian-vector product
H·v of the same cost, v a dict keyed and shaped like the parameters (float64 arrays holding
values exact in every dtype), keyed like `gradients`. An adapter without it runs first order
only; one that has it runs both (`--order`).

Optional, for a framework that cannot share a process (Keras 3 picks its backend once):
`process = "own"`, and the suite calls the adapter in a child process that holds it alone
(tests/engine/isolation.py).

Optional, for precision studies: `precisions` (the framework's float32 matmul settings the
adapter can run under, besides leaving the default alone), `gradients(..., precision=name)`
that runs under one of them, `resolve_precision(device)` naming what the untouched default
is, and `float32_setting`, the call that restores full float32 products.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

BUILTIN: dict[str, tuple[str, ...]] = {
    "torch": ("adapters.torch:TorchAutograd", "adapters.torch:TorchNN", "adapters.torch:TorchFunc"),
    "jax": ("adapters.jax:JaxJit", "adapters.jax:JaxEager"),
    "tensorflow": ("adapters.tensorflow:TensorFlowTape",),
    "keras": ("adapters.keras:KerasSequential",),
    "autograd": ("adapters.autograd:Autograd",),
    "tinygrad": ("adapters.tinygrad:Tinygrad",),
    "flax": ("adapters.flax:FlaxNNX",),
    "equinox": ("adapters.equinox:Equinox",),
}
"""Each framework the suite knows, with the adapters (one idiom each) that test it."""

SLOW = frozenset({"adapters.jax:JaxEager"})
"""Idioms left out of a run unless asked for (`--all-idioms`): eager JAX compiles every
primitive for every new shape and dtype, ≈100 ms each on a 2-core CPU, 20 s over the default
matrix, five times what all the other idioms together take."""

_NAME = re.compile(r"[a-z0-9_.]+")
_PRECISION = re.compile(r"[A-Za-z0-9_]+")


def layers(case) -> tuple[tuple, ...]:
    """Return the case's layers as (W, b, sigma) tuples, W (n_out, n_in), input layer first:
    `case.layers` where the case has it (any depth), else the 2-layer case's own fields. The
    gradients an adapter returns are keyed W1, b1, …, WL, bL in the same order."""
    found = getattr(case, "layers", None)
    if found is not None:
        return tuple((layer.W, layer.b, layer.sigma) if hasattr(layer, "sigma")
                     else tuple(layer[:3]) for layer in found)
    return ((case.W1, case.b1, case.sigma1), (case.W2, case.b2, case.sigma2))


def keyed(grads) -> dict:
    """Return per-layer (dW, db) pairs as the contract's dict {"W1": dW1, "b1": db1, …}."""
    return {f"{k}{i}": g for i, pair in enumerate(grads, 1) for k, g in zip("Wb", pair,
                                                                           strict=True)}


class AdapterError(Exception):
    """An adapter could not be loaded or does not keep the contract."""


class DeviceUnavailable(Exception):
    """The adapter's framework is there but the asked-for device is not (no CUDA, say)."""


def load(spec: str):
    """Load `package.module:object` or `path/to/file.py:object` (an instance, or a class)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise AdapterError(f"--adapter {spec!r}: expected package.module:object")
    try:
        module = _import(module_name)
    except BaseException as exc:  # noqa: BLE001 - sys.exit and Ctrl-C at import included
        raise AdapterError(f"--adapter {spec!r}: cannot import {module_name}: "
                           f"{_said(exc)}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise AdapterError(f"--adapter {spec!r}: {module_name} has no {attr!r}") from None
    except BaseException as exc:  # noqa: BLE001 - a module __getattr__ that fails
        raise AdapterError(f"--adapter {spec!r}: {module_name}.{attr}: {_said(exc)}") from None
    if isinstance(obj, type):
        try:
            obj = obj()
        except BaseException as exc:  # noqa: BLE001 - the class is the adapter's
            raise AdapterError(f"--adapter {spec!r}: {attr}() failed: {_said(exc)}") from None
    return check(obj, spec)


def _said(exc: BaseException) -> str:
    """Return an exception as `Type: first line`, cut to 300 characters."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a __str__ that raises
        text = ""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    said = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return said if len(said) <= 300 else said[:300] + "…"


def _import(module_name: str):
    """Import a dotted module name, or a .py file by its path."""
    if not module_name.endswith(".py"):
        return importlib.import_module(module_name)
    path = Path(module_name).resolve()
    spec = importlib.util.spec_from_file_location(f"_adapter_{path.stem}", path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check(adapter, spec: str):
    """Return the adapter if it keeps the contract's shape, else raise saying what is missing."""
    name = _attribute(adapter, "name", spec)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AdapterError(
            f"adapter {spec!r}: name must be a lowercase -k-safe string, got {name!r}")
    if not isinstance(_attribute(adapter, "framework", spec), str):
        raise AdapterError(f"adapter {spec!r}: framework must be a string")
    if not callable(_attribute(adapter, "gradients", spec)):
        raise AdapterError(f"adapter {spec!r}: has no gradients(case, dtype, device) method")
    hvp = _attribute(adapter, "hvp", spec)
    if hvp is not None and not callable(hvp):
        raise AdapterError(f"adapter {spec!r}: hvp must be a method hvp(case, v, dtype, device) "
                           f"or absent, got {repr(hvp)[:100]}")
    process = _attribute(adapter, "process", spec)
    if process not in (None, "own"):
        raise AdapterError(f"adapter {spec!r}: process must be \"own\" (call it in a process of "
                           f"its own) or absent, got {repr(process)[:100]}")
    precisions = _attribute(adapter, "precisions", spec, ())
    if not _settings(precisions):
        raise AdapterError(f"adapter {spec!r}: precisions must be a tuple of setting names "
                           f"(e.g. ('highest', 'high')), got {repr(precisions)[:100]}")
    return adapter


def has_hvp(adapter) -> bool:
    """Say whether the adapter offers second order: a callable `hvp(case, v, dtype, device)`."""
    return callable(getattr(adapter, "hvp", None))


def _settings(precisions) -> bool:
    """Say whether `precisions` is a tuple or list of setting names (a str is not: "highest"
    would read as seven settings, one per letter)."""
    return isinstance(precisions, (tuple, list)) and all(
        isinstance(p, str) and _PRECISION.fullmatch(p) and p != "default" for p in precisions)


def _attribute(adapter, attr: str, spec: str, default=None):
    """Return one of the adapter's attributes; one that raises is a contract error."""
    try:
        return getattr(adapter, attr, default)
    except BaseException as exc:  # noqa: BLE001 - a property that raises, or exits
        raise AdapterError(f"adapter {spec!r}: reading {attr} raised {_said(exc)}") from None


def builtin(frameworks: list[str], slow: bool = False) -> list:
    """Return the built-in adapters of the named frameworks, or raise naming the known ones."""
    unknown = [f for f in frameworks if f not in BUILTIN]
    if unknown:
        known = ", ".join(sorted(BUILTIN))
        raise AdapterError(f"unknown framework {', '.join(map(repr, unknown))}; known: {known}")
    return [load(s) for f in frameworks for s in BUILTIN[f] if slow or s not in SLOW]
