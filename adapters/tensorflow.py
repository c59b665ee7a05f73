"""TensorFlow adapter: raw tf.Variables, the cost written out, tf.GradientTape (nested tapes for
the Hessian-vector product)."""

from __future__ import annotations

import os

import numpy as np

from adapters import DeviceUnavailable, keyed, layers
from reference.case import Case

ACTIVATIONS = {  # catalogue name → attribute path under tf (None: identity)
    "sigmoid": "math.sigmoid",
    "tanh": "math.tanh",
    "relu": "nn.relu",
    "softplus": "math.softplus",
    "identity": None,
}


def tf_module():
    """Import TensorFlow with its C++ start-up log (oneDNN, CPU features) kept off stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read once, when the library loads
    import tensorflow as tf

    return tf


def tf_device(device: str) -> str:
    """Return TensorFlow's name of the device, or raise DeviceUnavailable."""
    tf = tf_module()
    kind = {"cpu": "CPU", "cuda": "GPU"}.get(device)
    if kind is None or not tf.config.list_logical_devices(kind):
        raise DeviceUnavailable(f"tensorflow: no {device} device "
                                f"(tf.config.list_logical_devices({kind!r}) is empty)")
    return f"/{kind}:0"


def tf_activation(name: str):
    """Return TensorFlow's function for a catalogue activation."""
    tf = tf_module()
    path = ACTIVATIONS[name]
    if path is None:
        return lambda z: z
    module, fn = path.split(".")
    return getattr(getattr(tf, module), fn)


class TensorFlowTape:
    """tf.Variable parameters, the forward pass and summed cost written out, GradientTape."""

    name = "tensorflow"
    framework = "tensorflow"
    distributions = ("tensorflow",)

    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the tape's gradients of the summed cost (19)."""
        tf = tf_module()
        with tf.device(tf_device(device)):
            params, cost = _variables(case, dtype), _cost(case, dtype)
            with tf.GradientTape() as tape:
                c = cost(params)
            grads = tape.gradient(c, [(W, b) for W, b, _ in params])
        return keyed([(dW.numpy(), db.numpy()) for dW, db in grads])

    def hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v by nested tapes: the outer one differentiates ⟨∇C, v⟩, ∇C from the inner."""
        tf = tf_module()
        with tf.device(tf_device(device)):
            params, cost = _variables(case, dtype), _cost(case, dtype)
            flat = [t for W, b, _ in params for t in (W, b)]
            tangents = [tf.constant(np.asarray(v[k], dtype)) for k in case.params]
            hv = [t.numpy() for t in nested_tapes(tf, lambda: cost(params), flat, tangents)]
        return keyed(zip(hv[::2], hv[1::2], strict=True))


def nested_tapes(tf, cost, variables: list, tangents: list) -> list:
    """Return H·v of cost() with respect to the variables along the tangents, by two tapes."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            c = cost()
        grads = inner.gradient(c, variables)
        dot = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangents, strict=True)])
    return outer.gradient(dot, variables)


def _variables(case: Case, dtype: str) -> list:
    """Return (W, b, σ) per layer, W and b as tf.Variables in dtype."""
    tf = tf_module()
    return [(tf.Variable(np.asarray(W, dtype)), tf.Variable(np.asarray(b, dtype)),
             tf_activation(sigma)) for W, b, sigma in layers(case)]


def _cost(case: Case, dtype: str):
    """Return the summed cost (19) as a function of the layers' variables."""
    tf = tf_module()
    x, y = (tf.constant(np.asarray(a, dtype)) for a in (case.x, case.y))

    def cost(params):
        a = x
        for W, b, sigma in params:
            a = sigma(a @ tf.transpose(W) + b)  # (15)–(18), layer by layer
        return tf.reduce_sum((a - y) ** 2)  # (19)

    return cost
