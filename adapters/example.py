"""A complete third-party adapter in NumPy: the contract of adapters/README.md, runnable as is.

    pytest --adapter adapters.example:adapter

It backpropagates by hand in the requested dtype, so it is also a correct, framework-free
adapter that the suite's self-tests plant bugs into (tests/planted.py overrides its steps).
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
    """Hand-written backprop in NumPy, in float32 or float64, on the CPU."""

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
        p = {k: np.asarray(v, dtype=dtype) for k, v in case.params.items()}
        x, y = case.x.astype(dtype), case.y.astype(dtype)
        (f1, df1), (f2, df2) = SIGMA[case.sigma1], SIGMA[case.sigma2]
        z1 = self.matmul(x, p["W1"].T) + p["b1"]  # (15)
        a1 = f1(z1)  # (16)
        z2 = self.matmul(a1, p["W2"].T) + p["b2"]  # (17)
        a2 = f2(z2)  # (18)
        delta2 = df2(z2, a2) * self.dC_da2(a2, y)  # (24)
        delta1 = df1(z1, a1) * self.matmul(delta2, p["W2"])  # (26), (28)–(29)
        return {
            "W1": self.matmul(delta1.T, x),
            "b1": self.colsum(delta1),
            "W2": self.dW2(delta2, a1, z2, a2, y),
            "b2": self.colsum(delta2),
        }

    def dC_da2(self, a2: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Differentiate (19), summed over the batch."""
        return 2 * (a2 - y)

    def dW2(self, delta2, a1, z2, a2, y) -> np.ndarray:
        """Return (22) summed over the batch."""
        return self.matmul(delta2.T, a1)


adapter = NumpyAdapter()
