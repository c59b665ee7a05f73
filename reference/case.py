"""The case type every adapter receives: one network's exact parameters, inputs and targets."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from reference.activations import activation

TENSORS = ("W1", "b1", "W2", "b2")
"""The gradients of a 2-layer case, in order; `tensors(depth)` names them at any depth."""

CONTRACT = "adapter contract v2, adapters/README.md"


def tensors(depth: int) -> tuple[str, ...]:
    """Return the gradient names of a depth-L network in order: W1, b1, …, WL, bL."""
    return tuple(f"{p}{i}" for i in range(1, depth + 1) for p in ("W", "b"))


class TwoLayerField(AttributeError):
    """A 2-layer field (W1, b1, W2, b2, sigma1, sigma2) was read on a case of another depth."""


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer (13): z = a_prev @ W.T + b, a = σ(z)."""

    W: np.ndarray = field(repr=False)  # (n_l, n_{l−1}), as in (20)
    b: np.ndarray = field(repr=False)  # (n_l,)
    sigma: str


def _two_layer(name: str, layer: int, part: str):
    """Return a property reading `part` of layer `layer` (1 or 2) on a 2-layer case only."""

    def read(case: Case):
        if case.depth != 2:
            n = case.depth
            raise TwoLayerField(f"this case has {n} layer{'s' if n != 1 else ''}: {name} is a "
                                f"2-layer field; read case.layers ({CONTRACT})")
        return getattr(case.layers[layer - 1], part)

    read.__doc__ = f"Return {part} of layer {layer} of a 2-layer case (contract v1's {name})."
    return property(read)


@dataclass(frozen=True, eq=False)
class Case:
    """A network of L layers (13) with its batch; every value is a float32 stored as float64."""

    sizes: tuple[int, ...]  # (n0, n1, …, nL)
    batch: int
    seed: int
    sigmas: tuple[str, ...]  # σ of layers 1 … L
    layers: tuple[Layer, ...] = field(repr=False)  # layers[l − 1] is layer l
    x: np.ndarray = field(repr=False)  # (batch, n0): pixel intensities in [0, 1]
    y: np.ndarray = field(repr=False)  # (batch, nL): one-hot targets

    W1 = _two_layer("W1", 1, "W")
    b1 = _two_layer("b1", 1, "b")
    W2 = _two_layer("W2", 2, "W")
    b2 = _two_layer("b2", 2, "b")
    sigma1 = _two_layer("sigma1", 1, "sigma")
    sigma2 = _two_layer("sigma2", 2, "sigma")

    def __post_init__(self) -> None:
        if not len(self.sizes) - 1 == len(self.sigmas) == len(self.layers) >= 1:
            raise ValueError(f"{len(self.sizes)} sizes need {len(self.sizes) - 1} layers and "
                             f"activations, got {len(self.layers)} and {len(self.sigmas)}")
        if tuple(layer.sigma for layer in self.layers) != tuple(self.sigmas):
            raise ValueError(f"the layers' activations {[la.sigma for la in self.layers]} "
                             f"are not sigmas {list(self.sigmas)}")

    @property
    def depth(self) -> int:
        """Return L, the number of layers."""
        return len(self.layers)

    @property
    def shape_id(self) -> str:
        """Return the sizes, batch and seed as an id piece: `784x64x32x10-b8-s0`."""
        return f"{'x'.join(map(str, self.sizes))}-b{self.batch}-s{self.seed}"

    @property
    def id(self) -> str:
        """Return the case's id: `relu-relu-sigmoid-784x64x32x10-b8-s0`."""
        return f"{'-'.join(self.sigmas)}-{self.shape_id}"

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Return the parameters keyed like the gradients: W1, b1, …, WL, bL."""
        return {f"{p}{i}": getattr(layer, p)
                for i, layer in enumerate(self.layers, start=1) for p in ("W", "b")}


def _draw(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    # Drawn in float32 (every mantissa bit used) and widened: exact in float32 and float64.
    return rng.uniform(low, high, size=shape).astype(np.float32).astype(np.float64)


def make_case(sizes: tuple[int, ...], batch: int, seed: int, *sigmas: str) -> Case:
    """Draw the case for (sizes, batch, seed), one σ per layer; the σs do not change the numbers.

    The draws are W1, b1, …, WL, bL, x, y in that order from a generator keyed by the seed and
    `n0x…xnL-b{batch}`: a 2-layer case is the same numbers it was before depth.
    """
    sizes = tuple(int(n) for n in sizes)
    if len(sigmas) != len(sizes) - 1 or not sigmas:
        raise ValueError(f"sizes {'x'.join(map(str, sizes))} need {len(sizes) - 1} "
                         f"activation(s), one per layer; got {len(sigmas)}")
    for s in sigmas:
        activation(s)  # fail early on an unknown name
    key = zlib.crc32(f"{'x'.join(map(str, sizes))}-b{batch}".encode())
    rng = np.random.default_rng([seed, key])
    layers = []
    for n_in, n_out, s in zip(sizes, sizes[1:], sigmas, strict=False):
        # PyTorch's nn.Linear initialisation range, U(±1/√fan_in), keeps z of order 1.
        r = 1.0 / np.sqrt(n_in)
        W, b = _draw(rng, (n_out, n_in), -r, r), _draw(rng, (n_out,), -r, r)
        layers.append(Layer(W, b, s))
    x = _draw(rng, (batch, sizes[0]), 0.0, 1.0)
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=batch)]
    return Case(sizes, batch, seed, tuple(sigmas), tuple(layers), x, y)
