"""Keras 3 adapter: a Sequential of Dense layers on the TensorFlow backend, GradientTape."""

from __future__ import annotations

import os
import sys

import numpy as np

from adapters import keyed, layers
from adapters.tensorflow import tf_device, tf_module
from reference.case import Case

BACKEND = "tensorflow"
"""Keras reads KERAS_BACKEND once, at its first import; this adapter sets it before that
import, so it runs on TensorFlow whatever the environment says (a Keras already imported on
another backend is an error, never a silent switch)."""
ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softplus": "softplus",
               "identity": "linear"}  # catalogue name → Keras activation name


def keras_module():
    """Import Keras on the TensorFlow backend, or raise if it was imported on another."""
    if "keras" not in sys.modules:
        tf_module()  # TensorFlow's start-up log off first
        os.environ["KERAS_BACKEND"] = BACKEND
    import keras

    if keras.backend.backend() != BACKEND:
        raise RuntimeError(f"keras was already imported with the {keras.backend.backend()!r} "
                           f"backend; this adapter needs KERAS_BACKEND={BACKEND}")
    return keras


class KerasSequential:
    """keras.Sequential([Input, Dense(activation=…), …]) in the asked dtype, weights set from
    the case; the cost written with keras.ops, summed (19); tf.GradientTape over the model's
    trainable variables, as a Keras custom training loop does."""

    name = "keras"
    framework = "keras"
    distributions = ("keras", "tensorflow")

    def gradients(self, case: Case, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return the gradients of the summed cost with respect to each Dense kernel and bias."""
        keras, tf = keras_module(), tf_module()
        ops = keras.ops
        with tf.device(tf_device(device)):
            params = layers(case)
            model = keras.Sequential(
                [keras.Input(shape=(params[0][0].shape[1],), dtype=dtype)]
                + [keras.layers.Dense(W.shape[0], activation=ACTIVATIONS[sigma], dtype=dtype)
                   for W, _, sigma in params])
            for dense, (W, b, _) in zip(model.layers, params, strict=True):
                dense.set_weights([np.asarray(W, dtype).T, np.asarray(b, dtype)])  # (in, out)
            x, y = (ops.convert_to_tensor(np.asarray(a, dtype)) for a in (case.x, case.y))
            with tf.GradientTape() as tape:
                cost = ops.sum(ops.square(model(x) - y))  # (19), summed: not a Keras mean loss
            grads = tape.gradient(cost, [(d.kernel, d.bias) for d in model.layers])
        return keyed([(np.asarray(dK).T.copy(), np.asarray(db)) for dK, db in grads])
