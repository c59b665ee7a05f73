"""HIPS autograd adapter: `autograd.grad` of the cost written as a NumPy function, and H·v as
`autograd.grad` of ⟨grad, v⟩ (reverse over reverse)."""

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

        cost, params = _cost(case, dtype, device)
        return keyed(autograd.grad(cost)(params))

    def hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v: autograd.grad of the gradient's inner product with v."""
        import autograd
        import autograd.numpy as anp

        cost, params = _cost(case, dtype, device)
        t = [(np.asarray(v[f"W{i}"], dtype), np.asarray(v[f"b{i}"], dtype))
             for i in range(1, len(params) + 1)]

        def along(p):
            return sum(anp.sum(g * d) for gs, ds in zip(autograd.grad(cost)(p), t, strict=True)
                       for g, d in zip(gs, ds, strict=True))

        return keyed(autograd.grad(along)(params))


def _cost(case: Case, dtype: str, device: str) -> tuple:
    """Return the summed cost (19) as a function of [(W, b), …], and the case's parameters."""
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

    return cost, [(np.asarray(W, dtype), np.asarray(b, dtype)) for W, b, _ in layers(case)]
