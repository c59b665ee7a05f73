"""JAX adapters: jax.grad run eagerly and under jax.jit, and H·v as jax.jvp of jax.grad (forward
over reverse); float64 turns x64 on explicitly."""

from __future__ import annotations

import functools

import numpy as np

from adapters import DeviceUnavailable
from reference.case import Case

ACTIVATIONS = {  # catalogue name → attribute of jax.nn (None: identity)
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "softplus": "softplus",
    "identity": None,
}


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 is never silently float32
    return jax


def _activation(name: str):
    jax = _jax()
    attr = ACTIVATIONS[name]
    return (lambda z: z) if attr is None else getattr(jax.nn, attr)


def _cost(p: dict, x, y, sigmas: tuple[str, ...]):
    a = x
    for i, sigma in enumerate(sigmas, 1):
        a = _activation(sigma)(a @ p[f"W{i}"].T + p[f"b{i}"])  # (13): z⁽ⁱ⁾, then a⁽ⁱ⁾ = σ⁽ⁱ⁾(z⁽ⁱ⁾)
    return ((a - y) ** 2).sum()  # (19), summed over the batch


@functools.cache
def _jitted_grad():
    jax = _jax()
    return jax.jit(jax.grad(_cost), static_argnums=(3,))


def _hvp(p: dict, t: dict, x, y, sigmas: tuple[str, ...]):
    """Return H·v: the directional derivative of jax.grad along t (forward over reverse)."""
    jax = _jax()
    return jax.jvp(lambda q: jax.grad(_cost)(q, x, y, sigmas), (p,), (t,))[1]


@functools.cache
def _jitted_hvp():
    return _jax().jit(_hvp, static_argnums=(4,))


def _device(device: str):
    """Return the first JAX device of a platform, or raise DeviceUnavailable."""
    jax = _jax()
    try:
        return jax.devices(device)[0]
    except RuntimeError as exc:
        raise DeviceUnavailable(f"jax: no {device} device ({str(exc).splitlines()[0]})") from None


def _run(grad_fn, case: Case, dtype: str, device: str, v: dict | None = None
         ) -> dict[str, np.ndarray]:
    """Return grad_fn(p, x, y, σs), or grad_fn(p, t, x, y, σs) with the direction v as t."""
    jax = _jax()
    dev = _device(device)
    put = lambda a: jax.device_put(np.asarray(a, dtype=dtype), dev)  # noqa: E731
    p = {k: put(a) for k, a in case.params.items()}
    t = () if v is None else ({k: put(v[k]) for k in p},)
    g = grad_fn(p, *t, put(case.x), put(case.y), tuple(layer.sigma for layer in case.layers))
    out = {k: np.asarray(v) for k, v in g.items()}
    for k, v in out.items():
        if v.dtype != np.dtype(dtype):  # x64 off or a downcast would show here
            raise TypeError(f"jax returned {k} as {v.dtype}, asked for {dtype}")
    return out


class _Jax:
    """What both JAX idioms share: the matmul precision settings and how to restore float32."""

    framework = "jax"
    # jax_default_matmul_precision's legacy names; its dot-algorithm presets are accepted too.
    precisions = ("highest", "high", "tensorfloat32", "bfloat16", "float32")
    float32_setting = (
        'jax.default_matmul_precision("highest") or JAX_DEFAULT_MATMUL_PRECISION=highest'
    )

    def resolve_precision(self, device: str) -> str:
        """Return the untouched setting: None means each backend's DEFAULT precision."""
        value = _jax().config.jax_default_matmul_precision
        return "DEFAULT (backend's choice)" if value is None else str(value)

    def gradients(self, case: Case, dtype: str, device: str, precision: str = "default"):
        """Return the idiom's gradients of the summed cost (19) as NumPy arrays."""
        return _under(precision, self._gradients, case, dtype, device)

    def hvp(self, case: Case, v: dict, dtype: str, device: str, precision: str = "default"):
        """Return the idiom's Hessian-vector product H·v of the summed cost as NumPy arrays."""
        return _under(precision, self._hvp, case, v, dtype, device)


def _under(precision: str, fn, *args):
    """Return fn(*args), under a matmul precision setting unless it is the default."""
    if precision == "default":
        return fn(*args)
    with _jax().default_matmul_precision(precision):
        return fn(*args)


class JaxEager(_Jax):
    """jax.grad, dispatched op by op."""

    name = "jax_eager"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        jax = _jax()
        with jax.disable_jit():
            return _run(jax.grad(_cost), case, dtype, device)

    def _hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        with _jax().disable_jit():
            return _run(_hvp, case, dtype, device, v)


class JaxJit(_Jax):
    """jax.jit(jax.grad(cost)), compiled per shape, dtype, activations and precision setting."""

    name = "jax"

    def _gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        return _run(_jitted_grad(), case, dtype, device)

    def _hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        return _run(_jitted_hvp(), case, dtype, device, v)
