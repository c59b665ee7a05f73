"""The adapters' own promises: importable without frameworks, thin, dtype and device honest."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adapters
from reference.case import make_case, tensors
from reference.network import gradients

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK_MODULES = ("torch", "jax", "tensorflow", "keras", "autograd", "tinygrad", "flax",
                     "equinox")
NO_FRAMEWORKS = (
    "import sys\n"
    f"for m in {FRAMEWORK_MODULES!r}: sys.modules[m] = None  # any import of them now fails\n"
    "import adapters, adapters.example\n"
    "print(sorted(a.name for a in adapters.builtin(list(adapters.BUILTIN), slow=True)))\n"
)


def test_adapters_import_with_neither_framework_installed():
    """`import adapters` and every built-in adapter load with no framework importable."""
    done = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert eval(done.stdout) == sorted(  # noqa: S307 - our own subprocess's list of names
        ["torch", "torch_nn", "torch_func", "jax", "jax_eager", "tensorflow", "keras",
         "autograd", "tinygrad", "flax", "equinox"])


DEPTHS = {  # depth → (sizes, activations): one layer, the seed's two, a deep mixed net
    1: ((5, 3), ("tanh",)),
    2: ((5, 4, 3), ("tanh", "sigmoid")),
    4: ((6, 5, 4, 4, 3), ("relu", "tanh", "sigmoid", "softplus")),
}
NAMES = {"numpy": None, "torch": "torch", "torch_nn": "torch", "torch_func": "torch",
         "jax": "jax", "jax_eager": "jax", "tensorflow": "tensorflow", "keras": "keras",
         "autograd": "autograd", "tinygrad": "tinygrad", "flax": "flax", "equinox": "equinox"}


@pytest.mark.parametrize("name", list(NAMES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_builtin_adapters_return_every_layer_in_the_asked_dtype(name, dtype, depth):
    """Every built-in adapter, and the example, returns W1, b1, …, WL, bL at any depth, shaped
    like the parameters, in dtype, and close to the reference (the suite judges the rest)."""
    framework = NAMES[name]
    if framework is None:
        adapter = adapters.load("adapters.example:adapter")
    else:
        if importlib.util.find_spec(framework) is None:  # the adapter imports it, not this
            pytest.skip(f"{framework} is not installed")
        adapter = {a.name: a for a in adapters.builtin([framework], slow=True)}[name]
    sizes, sigmas = DEPTHS[depth]
    case = make_case(sizes, 2, 0, *sigmas)
    got, ref = adapter.gradients(case, dtype, "cpu"), gradients(case)
    assert list(got) == list(tensors(depth)) or set(got) == set(tensors(depth))
    for k, v in got.items():
        assert isinstance(v, np.ndarray) and v.dtype == np.dtype(dtype), k
        assert v.shape == case.params[k].shape, k
        assert np.allclose(v, ref[k], rtol=1e-4, atol=1e-5), k


def test_unknown_precision_setting_is_the_framework_error():
    """A setting the framework does not know fails loudly, never runs at some default."""
    torch = pytest.importorskip("torch")
    adapter = adapters.load("adapters.torch:TorchAutograd")
    with pytest.raises((RuntimeError, ValueError)):
        adapter.gradients(make_case((2, 2, 2), 1, 0, "relu", "relu"), "float32", "cpu",
                          precision="sloppy")
    assert torch.get_float32_matmul_precision() == "highest"  # restored after the error


def test_new_adapters_take_any_depth_through_adapters_layers():
    """A case with `layers` (the any-depth contract) reaches every depth-generic adapter: a
    3-layer case's gradients are keyed W1…b3 and agree with the 2-layer fields' where shared."""
    import dataclasses
    from typing import NamedTuple

    class Layer(NamedTuple):
        W: np.ndarray
        b: np.ndarray
        sigma: str

    base = make_case((4, 3, 2), 2, 0, "tanh", "sigmoid")
    W3, b3 = np.full((2, 2), 0.25), np.array([0.5, -0.5])
    layers = (Layer(base.W1, base.b1, "tanh"), Layer(base.W2, base.b2, "sigmoid"),
              Layer(W3, b3, "identity"))
    deep = dataclasses.make_dataclass("Deep", [("layers", tuple), ("x", np.ndarray),
                                               ("y", np.ndarray)])(layers, base.x, base.y)
    assert [tuple(layer) for layer in adapters.layers(deep)] == [tuple(la) for la in layers]
    got = adapters.load("adapters.autograd:Autograd").gradients(deep, "float64", "cpu")
    assert sorted(got) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert got["W3"].shape == (2, 2) and got["b1"].shape == (3,)
