"""The conformance matrix: which cases, σ pairs, dtypes and devices a run checks by default."""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

from reference.case import TENSORS, Case, make_case

CASES = {  # name → (sizes, batch)
    "seed": ((784, 16, 10), 1),  # the seed's 784-16-10 net, one sample, as in (15)–(20)
    "minibatch": ((784, 16, 10), 32),
    "chain": ((1, 1, 1), 1),  # the one-neuron chain (1)–(12)
    "small": ((5, 4, 3), 3),
    "nearzero": ((16, 8, 4), 4),  # parameters × 2^-12: every z within ~1e-3 of 0
}
SCALES = {"nearzero": 12}
"""Cases whose drawn parameters are scaled by 2^-e (exact in every dtype): z near 0, where
an activation computed through another (tinygrad's tanh as 2·sigmoid(2z) − 1) cancels."""
PAIRS = {  # name → the σ pairs the default matrix runs it with
    "seed": (("sigmoid", "sigmoid"), ("softplus", "tanh")),
    "minibatch": (("relu", "sigmoid"), ("tanh", "identity")),
    "chain": (("sigmoid", "sigmoid"),),
    "small": (("tanh", "softplus"),),
    "nearzero": (("tanh", "tanh"),),
}
"""Each case with few pairs: every new shape costs JAX a compilation per op (≈50 ms each on
the CPU, eagerly), so the default spreads its pairs over the cases; `--pairs all` crosses
every case with every pair of ALL_PAIRS, and `--pairs relu-tanh,…` with those."""
ALL_PAIRS = (
    ("sigmoid", "sigmoid"), ("relu", "sigmoid"), ("tanh", "identity"), ("softplus", "tanh"),
    ("tanh", "softplus"), ("identity", "relu"),
)
DTYPES = ("float32", "float64")
DEVICES = ("cpu",)
KNOWN_DEVICES = ("cpu", "cuda")


class Spec(NamedTuple):
    """A case by name only: the arrays are drawn when an item first needs them."""

    sizes: tuple[int, int, int]
    batch: int
    seed: int
    sigma1: str
    sigma2: str
    scale: int = 0  # the parameters are drawn, then multiplied by 2^-scale

    @property
    def id(self) -> str:
        """Return `sigmoid-sigmoid-784x16x10-b1-s0`, `tanh-tanh-16x8x4-b4-s0-w2e-12` scaled."""
        n0, n1, n2 = self.sizes
        tail = f"-w2e-{self.scale}" if self.scale else ""
        return f"{self.sigma1}-{self.sigma2}-{n0}x{n1}x{n2}-b{self.batch}-s{self.seed}{tail}"


def draw(spec: Spec) -> Case:
    """Return the spec's case: drawn by make_case, its parameters scaled by 2^-scale."""
    case = make_case(spec.sizes, spec.batch, spec.seed, spec.sigma1, spec.sigma2)
    if not spec.scale:
        return case
    f = 2.0**-spec.scale
    return dataclasses.replace(case, **{k: v * f for k, v in case.params.items()})


class Config(NamedTuple):
    """How one adapter is run: device, dtype and float32 matmul precision setting."""

    adapter: str
    device: str
    dtype: str
    precision: str = "default"  # "default": the framework's setting left untouched

    @property
    def id(self) -> str:
        """Return `torch-cpu-float64`, or `torch-cuda-float32.high` under a setting."""
        base = f"{self.adapter}-{self.device}-{self.dtype}"
        return base if self.precision == "default" else f"{base}.{self.precision.lower()}"


class Item(NamedTuple):
    """One conformance test: a tensor (or one entry of it) of one config on one case."""

    config: Config
    spec: Spec
    tensor: str
    entry: tuple[int, ...] | None = None

    @property
    def group(self) -> str:
        """Return what items share one gradient computation (one adapter call)."""
        return f"{self.config.id}-{self.spec.id}"

    @property
    def id(self) -> str:
        """Return `torch-cpu-float64-sigmoid-sigmoid-784x16x10-b1-s0-W1[3,701]`."""
        tail = "" if self.entry is None else "[" + ",".join(map(str, self.entry)) + "]"
        return f"{self.group}-{self.tensor}{tail}"


MEMORY_FALLBACK = 16 * 2**30
"""The memory limit where the machine does not say how much it has."""


def memory_bytes(sizes: tuple[int, int, int], batch: int) -> int:
    """Estimate the bytes one case of these sizes holds at its peak, all float64: the pristine
    case and each call's copy, the reference's and the adapter's gradients, the bounds of both
    dtypes, the simulated arithmetic and the intermediates of each pass (measured peak on
    4000x2000x10, batch 200, with the NumPy adapter: 0.70 GB; this says 0.80 GB)."""
    n0, n1, n2 = sizes
    params = n1 * n0 + n1 + n2 * n1 + n2
    data = batch * (n0 + n2)
    hidden = batch * (n1 + n2)
    return 8 * (12 * params + 4 * data + 12 * hidden)


def memory_limit() -> int:
    """Return half the machine's physical memory, the most one run may plan to use."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return MEMORY_FALLBACK


Shape = tuple[tuple[int, int, int], int, tuple[tuple[str, str], ...], int]
"""sizes, batch, σ pairs, scale"""


def named(cases: list[str]) -> list[Shape]:
    """Return the named cases with their own σ pairs and scales."""
    return [(*CASES[name], PAIRS[name], SCALES.get(name, 0)) for name in cases]


def grid(sizes: list[tuple[int, int, int]], batches: list[int]) -> list[Shape]:
    """Return every sizes × batch case, with (sigmoid, sigmoid) as the pair unless overridden."""
    return [(s, b, (("sigmoid", "sigmoid"),), 0) for s in sizes for b in batches]


def specs(shapes: list[Shape], pairs: list[tuple[str, str]] | None, seeds: range) -> list[Spec]:
    """Return every (case, σ pair, seed) of the matrix; pairs None means each case's own."""
    return [
        Spec(sizes, batch, seed, s1, s2, scale)
        for sizes, batch, own, scale in shapes for (s1, s2) in (pairs or own) for seed in seeds
    ]


def entry_indices(sizes: tuple[int, int, int], tensor: str) -> list[tuple[int, ...]]:
    """Return every index of one parameter tensor, row-major."""
    n0, n1, n2 = sizes
    shape = {"W1": (n1, n0), "b1": (n1,), "W2": (n2, n1), "b2": (n2,)}[tensor]
    import numpy as np

    return [tuple(int(i) for i in idx) for idx in np.ndindex(shape)]


def items(configs: list[Config], specs_: list[Spec], entries: bool) -> list[Item]:
    """Return the matrix's items, grouped so that items sharing an adapter call are adjacent."""
    out = []
    for config in configs:
        for spec in specs_:
            for tensor in TENSORS:
                if entries:
                    entries_ = entry_indices(spec.sizes, tensor)
                    out += [Item(config, spec, tensor, e) for e in entries_]
                else:
                    out.append(Item(config, spec, tensor))
    return out
