"""The conformance matrix: which cases, σ pairs, dtypes and devices a run checks by default."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import NamedTuple

from reference.case import Case, Layer, make_case, tensors

CASES = {  # name → (sizes n0…nL, batch)
    "seed": ((784, 16, 10), 1),  # the seed's 784-16-10 net, one sample, as in (15)–(20)
    "minibatch": ((784, 16, 10), 32),
    "chain": ((1, 1, 1), 1),  # the one-neuron chain (1)–(12)
    "small": ((5, 4, 3), 3),
    "deep": ((784, 64, 32, 16, 10), 8),  # the general layer (13) stacked four times
    "nearzero": ((16, 8, 4), 4),  # parameters × 2^-12: every z within ~1e-3 of 0
    "saturated": ((16, 8, 4), 4),  # every |z| in (25, 28), both signs in every layer
}
SCALES = {"nearzero": 12}
"""Cases whose drawn parameters are scaled by 2^-e (exact in every dtype): z near 0, where
an activation computed through another (tinygrad's tanh as 2·sigmoid(2z) − 1) cancels."""
SATURATED = {"saturated": 25}
"""Cases driven into saturation (`saturate`): every z of a unit lies within (s, s + 3) of one
sign, both signs in every layer, so that what a framework's σ does far from 0 (torch's softplus
returning z above 20, tinygrad's σ′ of sigmoid near z = −25) reaches the gradients of any
adapter's network, and no exp overflows float32."""
PAIRS = {  # name → the activations (one per layer) the default matrix runs it with
    "seed": (("sigmoid", "sigmoid"), ("softplus", "tanh")),
    "minibatch": (("relu", "sigmoid"), ("tanh", "identity")),
    "chain": (("sigmoid", "sigmoid"),),
    "small": (("tanh", "softplus"),),
    "deep": (("relu", "tanh", "sigmoid", "softplus"),),
    "nearzero": (("tanh", "tanh"),),
    "saturated": (("sigmoid", "softplus"), ("relu", "sigmoid")),
}
"""Each case with few activation tuples: every new shape costs JAX a compilation per op (≈50 ms
each on the CPU, eagerly), so the default spreads them over the cases; `--pairs all` crosses
every 2-layer case with every pair of ALL_PAIRS, `--pairs relu-tanh,…` with those, and
`--activations relu-relu-sigmoid,…` gives every case of that depth those activations."""
ALL_PAIRS = (
    ("sigmoid", "sigmoid"), ("relu", "sigmoid"), ("tanh", "identity"), ("softplus", "tanh"),
    ("tanh", "softplus"), ("identity", "relu"),
)
DTYPES = ("float32", "float64")
DEVICES = ("cpu",)
KNOWN_DEVICES = ("cpu", "cuda")


class Spec(NamedTuple):
    """A case by name only: the arrays are drawn when an item first needs them."""

    sizes: tuple[int, ...]  # n0…nL
    batch: int
    seed: int
    sigmas: tuple[str, ...]  # σ1…σL
    scale: int = 0  # the parameters are drawn, then multiplied by 2^-scale
    saturate: int = 0  # driven into saturation: every |z| in (s, s + 3), both signs per layer

    @property
    def depth(self) -> int:
        """Return L, the number of layers."""
        return len(self.sizes) - 1

    @property
    def id(self) -> str:
        """Return `sigmoid-sigmoid-784x16x10-b1-s0`, `relu-tanh-sigmoid-784x64x32x10-b8-s0`,
        `tanh-tanh-16x8x4-b4-s0-w2e-12` scaled."""
        sizes = "x".join(map(str, self.sizes))
        tail = (f"-w2e-{self.scale}" if self.scale else "") + (
            f"-z{self.saturate}" if self.saturate else "")
        return f"{'-'.join(self.sigmas)}-{sizes}-b{self.batch}-s{self.seed}{tail}"


def draw(spec: Spec) -> Case:
    """Return the spec's case: drawn by make_case, its parameters scaled by 2^-scale, or
    driven into saturation."""
    case = make_case(spec.sizes, spec.batch, spec.seed, *spec.sigmas)
    if spec.saturate:
        return saturate(case, spec.saturate)
    if not spec.scale:
        return case
    f = 2.0**-spec.scale
    layers = tuple(Layer(layer.W * f, layer.b * f, layer.sigma) for layer in case.layers)
    return dataclasses.replace(case, layers=layers)


def saturate(case: Case, level: int) -> Case:
    """Return the case driven into saturation, layer after layer: each unit's row of W is
    multiplied by the power of two that puts its largest |W a| over the batch in [½, 1), and
    its bias becomes ±(level + 1 + |b|/r) in float32 (r = 1/√n_in, the draw's range; + on even
    units, − on odd ones), so that every z of the unit lies within (level, level + 3) of one
    sign, both signs in every layer of two or more units. Near 25, e^−z is 10⁻¹¹–10⁻¹²: what a
    framework drops there (torch's softplus returns z) is hundreds of float64 ulps.
    """
    import numpy as np

    from reference.activations import activation

    a, layers = case.x, []
    for n_in, layer in zip(case.sizes, case.layers, strict=False):
        f = np.array([_power(p) / 2 for p in np.abs(a @ layer.W.T).max(axis=0)])
        sign = np.where(np.arange(f.size) % 2 == 0, 1.0, -1.0)
        b = (sign * (level + 1 + np.abs(layer.b) * np.sqrt(n_in))).astype(np.float32)
        W = layer.W * f[:, None]
        a = activation(layer.sigma).f(a @ W.T + b)
        layers.append(Layer(W, b.astype(np.float64), layer.sigma))
    return dataclasses.replace(case, layers=tuple(layers))


def _power(peak: float) -> float:
    """Return the power of two that puts a peak in [1, 2) (1 for a peak of 0)."""
    return 2.0 ** -math.floor(math.log2(peak)) if peak > 0 else 1.0


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
        config, spec = self.config, self.spec
        last = _LAST_GROUP[0]  # one tuple, read once: never half of another thread's
        if last[0] is config and last[1] is spec:
            return last[2]
        name = _group(config, spec)
        _LAST_GROUP[0] = (config, spec, name)
        return name

    @property
    def id(self) -> str:
        """Return `torch-cpu-float64-sigmoid-sigmoid-784x16x10-b1-s0-W1[3,701]`."""
        tail = "" if self.entry is None else "[" + ",".join(map(str, self.entry)) + "]"
        return f"{self.group}-{self.tensor}{tail}"


_LAST_GROUP: list[tuple] = [(None, None, "")]
"""The last (config, spec, group name) that `Item.group` returned: a group's items are adjacent
and share their config and spec objects, and an entry item asks its group about ten times, so
the same objects (compared by identity, never equal-but-other ones) skip hashing both."""


@functools.lru_cache(maxsize=4096)
def _group(config: Config, spec: Spec) -> str:
    """Return a group's name (asked many times for each of an entry run's 76,000 items)."""
    return f"{config.id}-{spec.id}"


MEMORY_FALLBACK = 16 * 2**30
"""The memory limit where the machine does not say how much it has."""


def memory_bytes(sizes: tuple[int, ...], batch: int) -> int:
    """Estimate the bytes one case of these sizes holds at its peak, all float64: the pristine
    case and each call's copy, the reference's and the adapter's gradients, the bounds of both
    dtypes, the simulated arithmetic and the intermediates of each pass (measured peak on
    4000x2000x10, batch 200, with the NumPy adapter: 0.70 GB; this says 0.80 GB). At any depth
    the same counts hold layer by layer: every W and b, and every layer's z and a."""
    params = sum(n * m + n for m, n in zip(sizes, sizes[1:], strict=False))
    data = batch * (sizes[0] + sizes[-1])
    hidden = batch * sum(sizes[1:])
    return 8 * (12 * params + 4 * data + 12 * hidden)


def memory_limit() -> int:
    """Return half the machine's physical memory, the most one run may plan to use."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return MEMORY_FALLBACK


Shape = tuple[tuple[int, ...], int, tuple[tuple[str, ...], ...], dict]
"""sizes, batch, activations (one tuple per run of the case), how the draw is transformed
(Spec's `scale` or `saturate`, none by default)"""


def named(cases: list[str]) -> list[Shape]:
    """Return the named cases with their own activations and transforms."""
    return [(*CASES[name], PAIRS[name], _transform(name)) for name in cases]


def _transform(name: str) -> dict:
    return ({"scale": SCALES[name]} if name in SCALES else {}) | (
        {"saturate": SATURATED[name]} if name in SATURATED else {})


def grid(sizes: list[tuple[int, ...]], batches: list[int]) -> list[Shape]:
    """Return every sizes × batch case, with sigmoid in every layer unless overridden."""
    return [(s, b, (("sigmoid",) * (len(s) - 1),), {}) for s in sizes for b in batches]


def specs(shapes: list[Shape], activations: list[tuple[str, ...]] | None,
          seeds: range) -> list[Spec]:
    """Return every (case, activations, seed) of the matrix: each case with the given activation
    tuples of its depth, or with its own where none is of its depth (or none is given)."""
    return [
        Spec(sizes, batch, seed, tuple(sigmas), **transform)
        for sizes, batch, own, transform in shapes
        for sigmas in ([a for a in activations or () if len(a) == len(sizes) - 1] or own)
        for seed in seeds
    ]


def activations(pairs: str, given: str, depths: set[int]) -> list[tuple[str, ...]] | None:
    """Return the activation tuples of --pairs (the 2-layer spelling) or --activations, None for
    each case's own; raise ValueError, in one line, on a bad name or a tuple whose length fits
    none of the cases' depths."""
    from reference.activations import CATALOGUE

    if pairs != "default" and given != "default":
        raise ValueError(f"--pairs {pairs} --activations {given}: --pairs is the 2-layer "
                         "spelling of --activations; give one")
    flag, value = ("pairs", pairs) if pairs != "default" else ("activations", given)
    if value == "default":
        return None
    if flag == "pairs" and value == "all":
        chosen = list(ALL_PAIRS)
    else:
        chosen = list(dict.fromkeys(tuple(a.strip().split("-")) for a in value.split(",")
                                    if a.strip()))
    bad = [a for a in chosen if (flag == "pairs" and len(a) != 2)
           or not all(s in CATALOGUE for s in a)]
    if bad or not chosen:
        shape = "σ1-σ2 pairs" if flag == "pairs" else "σ1-…-σL (one per layer)"
        also = ", 'default' or 'all'" if flag == "pairs" else " or 'default'"
        raise ValueError(f"--{flag} {value}: expected {shape} of {', '.join(CATALOGUE)}{also}")
    unfit = [a for a in chosen if len(a) not in depths]
    if unfit:
        raise ValueError(f"--{flag} {'-'.join(unfit[0])}: {len(unfit[0])} activation(s), but the "
                         f"cases have {' or '.join(map(str, sorted(depths)))} layer(s); give one "
                         "activation per layer")
    return chosen


def shape_of(sizes: tuple[int, ...], tensor: str) -> tuple[int, ...]:
    """Return the shape of W<l> (n_l, n_{l−1}) or b<l> (n_l,) in a net of these sizes."""
    layer = int(tensor[1:])
    return (sizes[layer], sizes[layer - 1]) if tensor[0] == "W" else (sizes[layer],)


def entry_indices(sizes: tuple[int, ...], tensor: str) -> list[tuple[int, ...]]:
    """Return every index of one parameter tensor, row-major."""
    import numpy as np

    return [tuple(int(i) for i in idx) for idx in np.ndindex(shape_of(sizes, tensor))]


def items(configs: list[Config], specs_: list[Spec], entries: bool) -> list[Item]:
    """Return the matrix's items, grouped so that items sharing an adapter call are adjacent."""
    out = []
    for config in configs:
        for spec in specs_:
            for tensor in tensors(spec.depth):
                if entries:
                    entries_ = entry_indices(spec.sizes, tensor)
                    out += [Item(config, spec, tensor, e) for e in entries_]
                else:
                    out.append(Item(config, spec, tensor))
    return out
