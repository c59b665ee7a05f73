"""The adapters' own promises: importable without frameworks, thin, dtype and device honest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adapters
from reference.case import make_case, tensors
from reference.network import gradients

ROOT = Path(__file__).resolve().parents[1]
NO_FRAMEWORKS = (
    "import sys\n"
    "sys.modules['torch'] = sys.modules['jax'] = None  # any import of them now fails\n"
    "import adapters, adapters.torch, adapters.jax, adapters.example\n"
    "print(sorted(a.name for a in adapters.builtin(['torch', 'jax'], slow=True)))\n"
)


def test_adapters_import_with_neither_framework_installed():
    """`import adapters` and every built-in adapter load with torch and jax unimportable."""
    done = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["['jax',", "'jax_eager',", "'torch',", "'torch_func',",
                                   "'torch_nn']"]


DEPTHS = {  # depth → (sizes, activations): one layer, the seed's two, a deep mixed net
    1: ((5, 3), ("tanh",)),
    2: ((5, 4, 3), ("tanh", "sigmoid")),
    4: ((6, 5, 4, 4, 3), ("relu", "tanh", "sigmoid", "softplus")),
}


@pytest.mark.parametrize("name", ["numpy", "torch", "torch_nn", "torch_func", "jax", "jax_eager"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_builtin_adapters_return_every_layer_in_the_asked_dtype(name, dtype, depth):
    """Every built-in adapter, and the example, returns W1, b1, …, WL, bL at any depth, shaped
    like the parameters, in dtype, and close to the reference (the suite judges the rest)."""
    if name == "numpy":
        adapter = adapters.load("adapters.example:adapter")
    else:
        framework = "jax" if name.startswith("jax") else "torch"
        pytest.importorskip(framework)
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
