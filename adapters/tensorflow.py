"""TensorFlow adapter: raw tf.Variables, the cost written out, tf.GradientTape."""

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
            params = [(tf.Variable(np.asarray(W, dtype)), tf.Variable(np.asarray(b, dtype)),
                       tf_activation(sigma)) for W, b, sigma in layers(case)]
            with tf.GradientTape() as tape:
                a = tf.constant(np.asarray(case.x, dtype))
                for W, b, sigma in params:
                    a = sigma(a @ tf.transpose(W) + b)  # (15)–(18), layer by layer
                cost = tf.reduce_sum((a - tf.constant(np.asarray(case.y, dtype))) ** 2)  # (19)
            grads = tape.gradient(cost, [(W, b) for W, b, _ in params])
        return keyed([(dW.numpy(), db.numpy()) for dW, db in grads])
