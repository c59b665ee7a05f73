"""tinygrad adapter: Tensors built from the case, the cost written out, `.backward()`; H·v by
`Tensor.gradient` of ⟨∇C, v⟩, ∇C itself from `Tensor.gradient` (tinygrad differentiates its
graph symbolically, so a gradient can be differentiated again)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np

from adapters import DeviceUnavailable, keyed, layers
from reference.case import Case

DEVICES = {"cpu": "CPU", "cuda": "CUDA"}  # the suite's device → tinygrad's
ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softplus": "softplus",
               "identity": None}  # catalogue name → Tensor method (None: identity)
ZIGCC = Path(__file__).with_name("zigcc")  # `zig cc` under clang's flags (see the script)


def tinygrad_device(device: str) -> str:
    """Return tinygrad's device, or raise DeviceUnavailable saying why it cannot run."""
    if device == "cpu":
        c_compiler()
    from tinygrad import Device

    name = DEVICES.get(device, device.upper())
    try:
        Device[name]
    except Exception as exc:  # noqa: BLE001 - each backend fails to open in its own way
        raise DeviceUnavailable(f"tinygrad: no {device} device ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return name


def c_compiler() -> str:
    """Return the C compiler tinygrad's CPU device will run on every kernel: $CC, else clang on
    PATH, else `zig cc` from the ziglang wheel (through adapters/zigcc), so that a machine with
    Python and pip alone runs tinygrad; raise DeviceUnavailable when there is none.

    Choosing zig sets CC and BPC_ZIG for the rest of the process, as a user would export them:
    tinygrad reads CC once, at its first compile, and keeps it."""
    compiler = os.environ.get("CC")
    if compiler:
        if shutil.which(compiler) is None:
            raise DeviceUnavailable(f"tinygrad: its CPU device compiles every kernel with "
                                    f"CC={compiler!r}, which is not on PATH")
        return compiler
    if shutil.which("clang") is not None:
        return "clang"
    zig = ziglang_zig()
    if zig is None:
        raise DeviceUnavailable(
            "tinygrad: its CPU device compiles every kernel with 'clang', which is not on PATH, "
            "and the ziglang wheel that stands in for it is not installed (pip install ziglang, "
            "install Debian's clang, or point CC at a clang)")
    os.environ["BPC_ZIG"], os.environ["CC"] = zig, str(ZIGCC)
    return str(ZIGCC)


def ziglang_zig() -> str | None:
    """Return the path of the zig the ziglang wheel installs, or None when it is not there."""
    spec = importlib.util.find_spec("ziglang")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        zig = Path(folder) / "zig"
        if os.access(zig, os.X_OK):
            return str(zig)
    return None


class Tinygrad:
    """tinygrad Tensors (parameters by default), forward and summed cost, `.backward()`."""

    name = "tinygrad"
    framework = "tinygrad"
    distributions = ("tinygrad",)

    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return tinygrad's gradients of the summed cost (19)."""
        from tinygrad import Tensor

        params, cost = _graph(case, dtype, device)
        cost.backward()
        grads = [(W.grad, b.grad) for W, b in params]
        Tensor.realize(*(g for pair in grads for g in pair))  # one schedule for all of them
        return keyed([(dW.numpy(), db.numpy()) for dW, db in grads])

    def hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v: the gradient of ⟨∇C, v⟩, both by Tensor.gradient."""
        from tinygrad import Tensor

        params, cost = _graph(case, dtype, device)
        flat = [t for pair in params for t in pair]
        tangents = [Tensor(np.asarray(v[k], dtype), device=t.device, dtype=t.dtype)
                    for k, t in zip(case.params, flat, strict=True)]
        grads = cost.gradient(*flat)
        dot = sum((g * t).sum() for g, t in zip(grads, tangents, strict=True))
        hv = dot.gradient(*flat)
        Tensor.realize(*hv)
        return keyed(zip((h.numpy() for h in hv[::2]), (h.numpy() for h in hv[1::2]),
                         strict=True))


def _graph(case: Case, dtype: str, device: str) -> tuple[list, object]:
    """Return the case's (W, b) Tensors per layer and the summed cost (19) built from them."""
    from tinygrad import Tensor, dtypes

    dev, dt = tinygrad_device(device), getattr(dtypes, dtype)
    tensor = lambda a: Tensor(np.asarray(a, dtype), device=dev, dtype=dt)  # noqa: E731
    params = [(tensor(W), tensor(b), ACTIVATIONS[s]) for W, b, s in layers(case)]
    a = tensor(case.x)
    for W, b, sigma in params:
        z = a @ W.T + b  # (15), (17)
        a = z if sigma is None else getattr(z, sigma)()  # (16), (18)
    return [(W, b) for W, b, _ in params], ((a - tensor(case.y)) ** 2).sum()  # (19), summed
