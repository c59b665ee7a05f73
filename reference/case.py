"""The case type every adapter receives: one network's exact parameters, inputs and targets."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from reference.activations import activation

TENSORS = ("W1", "b1", "W2", "b2")


@dataclass(frozen=True, eq=False)
class Case:
    """A 2-layer network (15)–(18) with its batch; every value is a float32 stored as float64."""

    sizes: tuple[int, int, int]  # (n0, n1, n2)
    batch: int
    seed: int
    sigma1: str
    sigma2: str
    W1: np.ndarray = field(repr=False)  # (n1, n0), as in (20)
    b1: np.ndarray = field(repr=False)  # (n1,)
    W2: np.ndarray = field(repr=False)  # (n2, n1)
    b2: np.ndarray = field(repr=False)  # (n2,)
    x: np.ndarray = field(repr=False)  # (batch, n0): pixel intensities in [0, 1]
    y: np.ndarray = field(repr=False)  # (batch, n2): one-hot targets

    @property
    def shape_id(self) -> str:
        """Return the sizes, batch and seed as an id piece: `784x16x10-b1-s0`."""
        n0, n1, n2 = self.sizes
        return f"{n0}x{n1}x{n2}-b{self.batch}-s{self.seed}"

    @property
    def id(self) -> str:
        """Return the case's id: `sigmoid-sigmoid-784x16x10-b1-s0`."""
        return f"{self.sigma1}-{self.sigma2}-{self.shape_id}"

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Return the parameters keyed like the gradients."""
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}


def _draw(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    # Drawn in float32 (every mantissa bit used) and widened: exact in float32 and float64.
    return rng.uniform(low, high, size=shape).astype(np.float32).astype(np.float64)


def make_case(
    sizes: tuple[int, int, int], batch: int, seed: int, sigma1: str, sigma2: str
) -> Case:
    """Draw the case for (sizes, batch, seed); the σ pair does not change the numbers."""
    activation(sigma1), activation(sigma2)  # fail early on an unknown name
    n0, n1, n2 = sizes
    key = zlib.crc32(f"{n0}x{n1}x{n2}-b{batch}".encode())
    rng = np.random.default_rng([seed, key])
    # PyTorch's nn.Linear initialisation range, U(±1/√fan_in), keeps z of order 1.
    r1, r2 = 1.0 / np.sqrt(n0), 1.0 / np.sqrt(n1)
    W1, b1 = _draw(rng, (n1, n0), -r1, r1), _draw(rng, (n1,), -r1, r1)
    W2, b2 = _draw(rng, (n2, n1), -r2, r2), _draw(rng, (n2,), -r2, r2)
    x = _draw(rng, (batch, n0), 0.0, 1.0)
    y = np.eye(n2)[rng.integers(0, n2, size=batch)]
    return Case(tuple(sizes), batch, seed, sigma1, sigma2, W1, b1, W2, b2, x, y)
