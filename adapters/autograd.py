"""HIPS autograd adapter: `autograd.grad` of the cost written as a NumPy function."""

from __future__ import annotations

import numpy as np

from adapters import DeviceUnavailable, keyed, layers
from reference.case import Case


def _activations(anp) -> dict:
    """Return the catalogue's σ written in autograd.numpy, as its users write them."""
    return {
        "sigmoid": lambda z: 0.5 * (anp.tanh(z / 2) + 1),  # autograd's examples' logistic
        "tanh": anp.tanh,
        "relu": lambda z: anp.where(z > 0, z, 0),  # maximum(z, 0) would give relu′(0) = ½
        "softplus": lambda z: anp.logaddexp(0, z),
        "identity": lambda z: z,
    }


class Autograd:
    """The forward pass and summed cost in autograd.numpy, `autograd.grad` over the layers."""

    name = "autograd"
    framework = "autograd"
    distributions = ("autograd",)

    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return autograd's gradients of the summed cost (19), computed in `dtype`."""
        import autograd
        import autograd.numpy as anp

        if device != "cpu":
            raise DeviceUnavailable(f"autograd runs NumPy on the cpu only, not on {device!r}")
        sigma = _activations(anp)
        names = [s for _, _, s in layers(case)]
        x, y = (np.asarray(a, dtype) for a in (case.x, case.y))

        def cost(params):
            a = x
            for (W, b), s in zip(params, names, strict=True):
                a = sigma[s](anp.dot(a, W.T) + b)  # (15)–(18), layer by layer
            return anp.sum((a - y) ** 2)  # (19), summed over the batch

        params = [(np.asarray(W, dtype), np.asarray(b, dtype)) for W, b, _ in layers(case)]
        return keyed(autograd.grad(cost)(params))
