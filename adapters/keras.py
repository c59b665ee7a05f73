"""Keras 3 adapter: a Sequential of Dense layers on the TensorFlow backend, GradientTape (nested
tapes for the Hessian-vector product: Keras 3 has no backend-neutral second derivative)."""

from __future__ import annotations

import os
import sys

import numpy as np

from adapters import keyed, layers
from adapters.tensorflow import nested_tapes, tf_device, tf_module
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
        keras_module()  # first: it sets the backend before Keras is imported
        tf = tf_module()
        with tf.device(tf_device(device)):
            model, cost = _model(case, dtype)
            with tf.GradientTape() as tape:
                c = cost()
            grads = tape.gradient(c, [(d.kernel, d.bias) for d in model.layers])
        return keyed([(np.asarray(dK).T.copy(), np.asarray(db)) for dK, db in grads])

    def hvp(self, case: Case, v: dict, dtype: str, device: str) -> dict[str, np.ndarray]:
        """Return H·v by nested GradientTapes over the Dense kernels (Wᵀ, so v's Wᵀ) and biases."""
        keras_module()  # first: it sets the backend before Keras is imported
        tf = tf_module()
        with tf.device(tf_device(device)):
            model, cost = _model(case, dtype)
            flat = [t for d in model.layers for t in (d.kernel, d.bias)]
            tangents = [tf.constant(np.asarray(v[f"W{i}"], dtype).T if k == "W" else
                                    np.asarray(v[f"b{i}"], dtype))
                        for i in range(1, len(model.layers) + 1) for k in "Wb"]
            hv = [np.asarray(t) for t in nested_tapes(tf, cost, flat, tangents)]
        return keyed((hK.T.copy(), hb) for hK, hb in zip(hv[::2], hv[1::2], strict=True))


def _model(case: Case, dtype: str) -> tuple:
    """Return the Sequential with the case's weights, and its summed cost (19) as a function."""
    keras = keras_module()
    ops = keras.ops
    params = layers(case)
    model = keras.Sequential(
        [keras.Input(shape=(params[0][0].shape[1],), dtype=dtype)]
        + [keras.layers.Dense(W.shape[0], activation=ACTIVATIONS[sigma], dtype=dtype)
           for W, _, sigma in params])
    for dense, (W, b, _) in zip(model.layers, params, strict=True):
        dense.set_weights([np.asarray(W, dtype).T, np.asarray(b, dtype)])  # (in, out)
    x, y = (ops.convert_to_tensor(np.asarray(a, dtype)) for a in (case.x, case.y))
    return model, lambda: ops.sum(ops.square(model(x) - y))  # (19), summed: not a Keras mean
