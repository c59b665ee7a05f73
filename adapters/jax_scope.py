"""What the JAX-based adapters (Flax, Equinox) share: float64 in a scope, and the device."""

from __future__ import annotations

import contextlib

from adapters import DeviceUnavailable, layers


@contextlib.contextmanager
def dtype_scope(dtype: str):
    """Run the block with 64-bit types on for float64 and off for float32, then restore the
    caller's setting: `jax.enable_x64` scopes the flag (thread-locally) and jit caches by it, so
    nothing global changes and no compiled function is shared across the two."""
    import jax

    with jax.enable_x64(dtype == "float64"):
        yield jax


class OneRun:
    """`gradients` and `hvp` of an adapter that computes both in one function of the case and
    the direction (None for the gradients): its `run(case, v, dtype, device)`."""

    def gradients(self, case, dtype: str, device: str) -> dict:
        """Return the gradients of the summed cost (19)."""
        return self.run(case, None, dtype, device)

    def hvp(self, case, v: dict, dtype: str, device: str) -> dict:
        """Return the Hessian-vector product H·v of the summed cost along v."""
        return self.run(case, v, dtype, device)


def network(case) -> tuple[tuple, tuple[int, ...], tuple[str, ...]]:
    """Return what a JAX module is built from: the case's (W, b, σ) layers, sizes n0…nL, σs."""
    params = layers(case)
    sizes = (params[0][0].shape[1], *(W.shape[0] for W, _, _ in params))
    return params, sizes, tuple(s for _, _, s in params)


def jax_device(jax, device: str):
    """Return the first JAX device of a platform, or raise DeviceUnavailable."""
    try:
        return jax.devices(device)[0]
    except RuntimeError as exc:
        raise DeviceUnavailable(f"jax: no {device} device ({str(exc).splitlines()[0]})") from None


def check_dtype(grads: dict, dtype: str, framework: str) -> dict:
    """Return the gradients, or raise if any came back in another dtype (x64 off, a cast)."""
    for k, v in grads.items():
        if v.dtype.name != dtype:
            raise TypeError(f"{framework} returned {k} as {v.dtype}, asked for {dtype}")
    return grads
