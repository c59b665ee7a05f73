"""A complete third-party adapter in NumPy: the contract of adapters/README.md, runnable as is.

    pytest --adapter adapters.example:adapter

It backpropagates by hand in the requested dtype, through any number of layers (contract v2:
`case.layers`), so it is also a correct, framework-free adapter that the suite's self-tests plant
bugs into (tests/fixtures/planted.py overrides its steps).
"""

from __future__ import annotations

import numpy as np

from adapters import DeviceUnavailable
from reference.case import Case

SIGMA = {  # σ and σ′ in the dtype of z; σ′ from the output where frameworks do the same
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    "softplus": (lambda z: np.logaddexp(0, z).astype(z.dtype), lambda z, a: 1 / (1 + np.exp(-z))),
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
}


class NumpyAdapter:
    """Hand-written backprop in NumPy, in float32 or float64, on the CPU, at any depth.

    Layer i = 1…L (the seed's l) reads a⁽ⁱ⁻¹⁾ (a⁽⁰⁾ = x) and writes z⁽ⁱ⁾ and a⁽ⁱ⁾; the lists
    `a[i]`, `z[i]`, `W[i]`, … below are indexed so, their entry 0 unused but a[0] = x.
    Each step is a method, so that tests/fixtures/planted.py can break one.
    """

    name = "numpy"
    framework = "numpy"

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Multiply two matrices in their own dtype."""
        return a @ b

    def colsum(self, a: np.ndarray) -> np.ndarray:
        """Sum a matrix's rows (the batch) in its own dtype."""
        return a.sum(axis=0)

    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the gradients of the summed cost (19) computed in `dtype`."""
        if device != "cpu":
            raise DeviceUnavailable(f"numpy runs on the cpu only, not on {device!r}")
        W = [None] + [np.asarray(layer.W, dtype=dtype) for layer in case.layers]
        b = [None] + [np.asarray(layer.b, dtype=dtype) for layer in case.layers]
        sigma = [None] + self.activations(case)
        L, y = len(case.layers), case.y.astype(dtype)
        z, a = [None], [case.x.astype(dtype)]
        for i in range(1, L + 1):
            z.append(self.matmul(a[i - 1], W[i].T) + b[i])  # (13); (15), (17)
            a.append(sigma[i][0](z[i]))  # (16), (18)
        g, dC_da = {}, self.dC_daL(a[L], y)  # (19) differentiated
        for i in range(L, 0, -1):
            delta = self.prime(i, sigma[i], z[i], a[i]) * dC_da  # (24), (26)
            g[f"W{i}"] = self.dW(i, delta, a[i - 1], z[i], dC_da)  # (22), (26)
            g[f"b{i}"] = self.db(i, delta, z[i], dC_da)  # (24)
            dC_da = self.matmul(delta, W[i])  # (28)–(29): ∂C/∂a⁽ⁱ⁻¹⁾, summed over m
        return {k: g[k] for k in case.params}  # in order: W1, b1, …, WL, bL

    def activations(self, case: Case) -> list:
        """Return (σ, σ′) of each layer, input layer first."""
        return [SIGMA[layer.sigma] for layer in case.layers]

    def dC_daL(self, aL: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Differentiate (19) at the output layer, summed over the batch."""
        return 2 * (aL - y)

    def prime(self, i: int, sigma, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Return σ′(z⁽ˡ⁾) of layer i, from z or from the layer's output a."""
        return sigma[1](z, a)

    def dW(self, i: int, delta, a_prev, z, dC_da) -> np.ndarray:
        """Return ∂C/∂W⁽ˡ⁾ = δ⁽ˡ⁾ᵀ a⁽ˡ⁻¹⁾, (22) and (26) summed over the batch."""
        return self.matmul(delta.T, a_prev)

    def db(self, i: int, delta, z, dC_da) -> np.ndarray:
        """Return ∂C/∂b⁽ˡ⁾, the batch sum of δ⁽ˡ⁾ as in (24)."""
        return self.colsum(delta)


adapter = NumpyAdapter()
