"""Equinox adapter: eqx.nn.Sequential of Linear and Lambda layers, vmapped over the batch;
eqx.filter_grad under eqx.filter_jit, compiled once per structure, shape and dtype; H·v as
eqx.filter_jvp of that gradient (forward over reverse)."""

from __future__ import annotations

import functools

import numpy as np

from adapters import keyed
from adapters.jax_scope import OneRun, check_dtype, dtype_scope, jax_device, network
from reference.case import Case

ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softplus": "softplus",
               "identity": "identity"}  # catalogue name → attribute of jax.nn


def _loss(model, x, y):
    import jax

    return ((jax.vmap(model)(x) - y) ** 2).sum()  # (15)–(18) per sample; (19) summed


@functools.cache
def _grad():
    """Return filter_jit(filter_grad(loss)): one function whose cache holds every compilation."""
    import equinox as eqx

    return eqx.filter_jit(eqx.filter_grad(_loss))


def _hvp_fn(model, tangent, x, y):
    """Return H·v as the Linear layers' [weight, bias, …] (a model holding σs is no JAX value)."""
    import equinox as eqx

    grads = lambda m: _arrays(eqx.filter_grad(_loss)(m, x, y))  # noqa: E731
    tangent = eqx.filter(tangent, eqx.is_inexact_array)  # None where the model holds a σ
    return eqx.filter_jvp(grads, (model,), (tangent,))[1]


def _arrays(model) -> list:
    """Return a Sequential's Linear weights and biases, [W1, b1, …, WL, bL]."""
    return [a for lin in model.layers[::2] for a in (lin.weight, lin.bias)]


@functools.cache
def _hvp():
    """Return filter_jit of H·v, the jvp of filter_grad(loss) along a tangent model."""
    import equinox as eqx

    return eqx.filter_jit(_hvp_fn)


@functools.cache
def _template(sizes: tuple[int, ...], sigmas: tuple[str, ...], dtype: str):
    """Return a Sequential of these sizes and σs in dtype, its values to be replaced."""
    import equinox as eqx
    import jax

    keys = jax.random.split(jax.random.key(0), len(sigmas))
    modules = []
    for n_in, n_out, sigma, key in zip(sizes, sizes[1:], sigmas, keys, strict=False):
        fn = (lambda z: z) if sigma == "identity" else getattr(jax.nn, ACTIVATIONS[sigma])
        modules += [eqx.nn.Linear(n_in, n_out, key=key, dtype=dtype), eqx.nn.Lambda(fn)]
    return eqx.nn.Sequential(modules)


def _run(case: Case, v: dict | None, dtype: str, device: str) -> dict[str, np.ndarray]:
    """Return the gradients (v None) or H·v, read back from the Linear layers."""
    with dtype_scope(dtype) as jax:
        import equinox as eqx

        dev, (params, sizes, sigmas) = jax_device(jax, device), network(case)
        template = _template(sizes, sigmas, dtype)
        put = lambda a: jax.device_put(np.asarray(a, dtype), dev)  # noqa: E731
        model = lambda values: eqx.tree_at(_arrays, template, [put(a) for a in values])  # noqa: E731
        m, x, y = model(a for W, b, _ in params for a in (W, b)), put(case.x), put(case.y)
        g = _arrays(_grad()(m, x, y)) if v is None else _hvp()(m, model(v.values()), x, y)
        out = keyed(zip(map(np.asarray, g[::2]), map(np.asarray, g[1::2]), strict=True))
    return check_dtype(out, dtype, "equinox")


class Equinox(OneRun):
    """eqx.nn.Linear (weight (out, in), as in the case) with the case's values, filter_grad;
    H·v by filter_jvp of filter_grad along a model holding v."""

    name = "equinox"
    framework = "equinox"
    distributions = ("equinox", "jax", "jaxlib")
    run = staticmethod(_run)
