"""What the JAX-based adapters (Flax, Equinox) share: float64 in a scope, and the device."""

from __future__ import annotations

import contextlib

from adapters import DeviceUnavailable


@contextlib.contextmanager
def dtype_scope(dtype: str):
    """Run the block with 64-bit types on for float64 and off for float32, then restore the
    caller's setting: `jax.enable_x64` scopes the flag (thread-locally) and jit caches by it, so
    nothing global changes and no compiled function is shared across the two."""
    import jax

    with jax.enable_x64(dtype == "float64"):
        yield jax


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
