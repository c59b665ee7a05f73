"""tinygrad adapter: Tensors built from the case, the cost written out, `.backward()`."""

from __future__ import annotations

import os
import shutil

import numpy as np

from adapters import DeviceUnavailable, keyed, layers
from reference.case import Case

DEVICES = {"cpu": "CPU", "cuda": "CUDA"}  # the suite's device → tinygrad's
ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softplus": "softplus",
               "identity": None}  # catalogue name → Tensor method (None: identity)


def tinygrad_device(device: str) -> str:
    """Return tinygrad's device, or raise DeviceUnavailable saying why it cannot run."""
    from tinygrad import Device

    if device == "cpu":
        compiler = os.environ.get("CC", "clang")
        if shutil.which(compiler) is None:
            raise DeviceUnavailable(
                f"tinygrad: its CPU device compiles every kernel with {compiler!r}, which is not "
                "on PATH (install Debian's clang, or point CC at a clang)")
    name = DEVICES.get(device, device.upper())
    try:
        Device[name]
    except Exception as exc:  # noqa: BLE001 - each backend fails to open in its own way
        raise DeviceUnavailable(f"tinygrad: no {device} device ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return name


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
