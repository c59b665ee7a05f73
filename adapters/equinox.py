"""Equinox adapter: eqx.nn.Sequential of Linear and Lambda layers, vmapped over the batch;
eqx.filter_grad under eqx.filter_jit, compiled once per structure, shape and dtype."""

from __future__ import annotations

import functools

import numpy as np

from adapters import keyed, layers
from adapters.jax_scope import check_dtype, dtype_scope, jax_device
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


class Equinox:
    """eqx.nn.Linear (weight (out, in), as in the case) with the case's values, filter_grad."""

    name = "equinox"
    framework = "equinox"
    distributions = ("equinox", "jax", "jaxlib")

    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return Equinox's gradients of the summed cost (19)."""
        with dtype_scope(dtype) as jax:
            import equinox as eqx

            dev, params = jax_device(jax, device), layers(case)
            sizes = (params[0][0].shape[1], *(W.shape[0] for W, _, _ in params))
            template = _template(sizes, tuple(s for _, _, s in params), dtype)
            put = lambda a: jax.device_put(np.asarray(a, dtype), dev)  # noqa: E731
            linears = lambda m: [v for lin in m.layers[::2] for v in (lin.weight, lin.bias)]  # noqa: E731
            model = eqx.tree_at(linears, template, [put(a) for W, b, _ in params for a in (W, b)])
            g = _grad()(model, put(case.x), put(case.y))
            out = keyed((np.asarray(lin.weight), np.asarray(lin.bias)) for lin in g.layers[::2])
        return check_dtype(out, dtype, "equinox")
