"""tinygrad adapter: Tensors built from the case, the cost written out, `.backward()`."""

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
        from tinygrad import Tensor, dtypes

        dev, dt = tinygrad_device(device), getattr(dtypes, dtype)
        tensor = lambda a: Tensor(np.asarray(a, dtype), device=dev, dtype=dt)  # noqa: E731
        params = [(tensor(W), tensor(b), ACTIVATIONS[s]) for W, b, s in layers(case)]
        a = tensor(case.x)
        for W, b, sigma in params:
            z = a @ W.T + b  # (15), (17)
            a = z if sigma is None else getattr(z, sigma)()  # (16), (18)
        ((a - tensor(case.y)) ** 2).sum().backward()  # (19), summed over the batch
        grads = [(W.grad, b.grad) for W, b, _ in params]
        Tensor.realize(*(g for pair in grads for g in pair))  # one schedule for all of them
        return keyed([(dW.numpy(), db.numpy()) for dW, db in grads])
