"""Flax adapter: an NNX module of nnx.Linear layers; nnx.grad of the loss, split and merged
inside one jax.jit compiled once per sizes, σs and dtype; H·v as jax.jvp of that function of
the state (forward over reverse)."""

from __future__ import annotations

import functools

import numpy as np

from adapters import keyed
from adapters.jax_scope import OneRun, check_dtype, dtype_scope, jax_device, network
from reference.case import Case

ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softplus": "softplus",
               "identity": None}  # catalogue name → attribute of flax.nnx (None: identity)


def _mlp(sizes: tuple[int, ...], sigmas: tuple[str, ...], dtype: str):
    """Return an NNX MLP of these sizes and σs, its parameters in dtype (values replaced)."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.linears = nnx.List(
                nnx.Linear(n_in, n_out, dtype=dtype, param_dtype=dtype, rngs=rngs)
                for n_in, n_out in zip(sizes, sizes[1:], strict=False))
            self.sigmas = tuple(ACTIVATIONS[s] for s in sigmas)

        def __call__(self, x):
            for linear, sigma in zip(self.linears, self.sigmas, strict=True):
                z = linear(x)  # (15), (17): x @ kernel + bias, kernel = Wᵀ
                x = z if sigma is None else getattr(nnx, sigma)(z)  # (16), (18)
            return x

    return MLP(nnx.Rngs(0))


@functools.cache
def _compiled(sizes: tuple[int, ...], sigmas: tuple[str, ...], dtype: str):
    """Return jit(grad) and jit(H·v) for one network, built once per sizes, σs and dtype (jax.jit
    then compiles once per batch size)."""
    import jax
    from flax import nnx

    graphdef, _ = nnx.split(_mlp(sizes, sigmas, dtype))

    def loss(model, x, y):
        return ((model(x) - y) ** 2).sum()  # (19), summed over the batch

    def grads(params, x, y):
        model = nnx.merge(graphdef, params)
        return nnx.state(nnx.grad(loss)(model, x, y))

    def hvp(params, tangents, x, y):
        return jax.jvp(lambda p: grads(p, x, y), (params,), (tangents,))[1]

    return jax.jit(grads), jax.jit(hvp)


def _run(case: Case, v: dict | None, dtype: str, device: str) -> dict[str, np.ndarray]:
    """Return the gradients (v None) or H·v, read back from the state as W and b."""
    with dtype_scope(dtype) as jax:
        from flax import nnx

        dev, (params, sizes, sigmas) = jax_device(jax, device), network(case)
        put = lambda a: jax.device_put(np.asarray(a, dtype), dev)  # noqa: E731
        state = lambda pairs: nnx.State({"linears": {  # noqa: E731
            i: {"kernel": nnx.Param(put(np.asarray(W).T)), "bias": nnx.Param(put(b))}
            for i, (W, b) in enumerate(pairs)}})
        grads, hvp = _compiled(sizes, sigmas, dtype)
        x, y, p = put(case.x), put(case.y), state((W, b) for W, b, _ in params)
        if v is None:
            g = grads(p, x, y)
        else:
            g = hvp(p, state((v[f"W{i}"], v[f"b{i}"]) for i in range(1, len(params) + 1)), x, y)
        out = keyed((np.asarray(g["linears"][i]["kernel"][...]).T.copy(),
                     np.asarray(g["linears"][i]["bias"][...])) for i in range(len(params)))
    return check_dtype(out, dtype, "flax")


class FlaxNNX(OneRun):
    """flax.nnx.Linear layers with the case's kernels (Wᵀ) and biases, nnx.grad under jax.jit;
    H·v by jax.jvp of that function along a state holding v."""

    name = "flax"
    framework = "flax"
    distributions = ("flax", "jax", "jaxlib")
    run = staticmethod(_run)
