"""The effective-precision fingerprint reads planted arithmetic right, and failures say so."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from adapters.example import NumpyAdapter
from reference.bounds import bounds
from reference.case import make_case
from reference.compare import diagnose
from reference.network import gradients
from reference.simulate import simulate
from tests.fixtures import planted

pytest_plugins = ["pytester"]

CASES = [((784, 16, 10), 32, "sigmoid", "sigmoid"), ((784, 16, 10), 1, "relu", "tanh"),
         ((784, 16, 10), 256, "relu", "tanh"), ((5, 4, 3), 3, "tanh", "softplus"),
         ((1, 1, 1), 1, "tanh", "identity")]
IDS = ["784x16x10-b32", "784x16x10-b1", "784x16x10-b256", "5x4x3-b3", "1x1x1-b1"]


class OneSideTF32(planted.RoundedOperands):
    """tf32 on the right operand only: an arithmetic no simulation matches, read by level."""

    def matmul(self, a, b):
        return a @ self.cut(b, self.bits) if a.dtype == np.float32 else a @ b


class OneSideBF16(OneSideTF32):
    bits = 7


@pytest.mark.parametrize("spec", CASES, ids=IDS)
@pytest.mark.parametrize("adapter,dtype,reads", [
    (NumpyAdapter, "float64", "float64"),
    (NumpyAdapter, "float32", "float32"),
    (planted.RoundedOperands, "float32", "tf32"),
    (planted.TruncatedOperands, "float32", "tf32"),
    (planted.BF16Operands, "float32", "bfloat16"),
    (planted.Float32Leak, "float64", "float32"),
    (planted.MissingPrime, "float64", "wrong gradient"),
    (planted.MissingPrime, "float32", "wrong gradient"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_fingerprint_reads_the_arithmetic(spec, adapter, dtype, reads):
    """Each planted arithmetic is read as what it is, on every case, by matching its simulated
    error field (each sums in another order than the simulation does); a wrong gradient reads
    as one, with its count of entries."""
    case = make_case(spec[0], spec[1], 0, spec[2], spec[3])
    got = adapter().gradients(case, dtype, "cpu")
    diag = _diagnose(got, case, dtype)
    if spec[0] == (1, 1, 1) and reads in ("tf32", "bfloat16", "float32") and reads != dtype:
        reads = "wrong gradient"  # 2 rows are no evidence: a 2-row fit never names one
        assert str(diag).endswith("; not enough evidence to name an arithmetic"), str(diag)
    if spec[1] <= 3 and reads in ("tf32", "bfloat16"):  # one to three samples: may not suffice
        assert diag.reads in (reads, "wrong gradient") and diag.fails
    else:
        assert diag.reads == reads


@pytest.mark.parametrize("spec", CASES, ids=IDS)
@pytest.mark.parametrize("adapter,named", [(OneSideTF32, "tf32"), (OneSideBF16, "bfloat16")],
                         ids=["tf32", "bf16"])
def test_an_arithmetic_no_simulation_matches_is_never_named_as_another(spec, adapter, named):
    """Reduced precision on one operand only is no simulated arithmetic: the diagnosis names
    it by the one it resembles when the field fits well enough, else calls it a wrong
    gradient; never the other arithmetic, whose setting advice would mislead."""
    case = make_case(spec[0], spec[1], 0, spec[2], spec[3])
    got = adapter().gradients(case, "float32", "cpu")
    diag = _diagnose(got, case, "float32")
    assert diag.reads in (named, "wrong gradient")


def _diagnose(got, case, dtype):
    return diagnose(got, gradients(case), dtype, functools.partial(bounds, case),
                    functools.partial(simulate, case), case=case)


@pytest.mark.parametrize("spec", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("tensor", ["W1", "b2"])
def test_one_wrong_entry_reads_wrong_gradient_never_an_arithmetic(spec, dtype, tensor):
    """The largest entry moved by 4× its bound (float64: also by a relative 1e-9, when that is
    more) is a wrong gradient in one entry: no arithmetic errs in one entry only."""
    case = make_case(spec[0], spec[1], 0, spec[2], spec[3])
    got = NumpyAdapter().gradients(case, dtype, "cpu")
    g = got[tensor].reshape(-1)
    i = np.argmax(np.abs(g))
    relative = 1e-9 * abs(g[i]) if dtype == "float64" else 0.0
    g[i] += max(4 * bounds(case, dtype)[tensor].reshape(-1)[i], relative)
    diag = _diagnose(got, case, dtype)
    assert str(diag) == "wrong gradient: 1 entry" and diag.field is None


@pytest.mark.parametrize("seed", range(4))
def test_a_wrong_bias_gradient_reads_wrong_gradient(seed):
    """b1 of a relu case doubled is a wrong gradient, whatever bound a reduced arithmetic
    would allow it."""
    case = make_case((784, 16, 10), 32, seed, "relu", "sigmoid")
    got = NumpyAdapter().gradients(case, "float32", "cpu")
    got["b1"] = 2 * got["b1"]
    assert str(_diagnose(got, case, "float32")).startswith("wrong gradient: ")


@pytest.mark.parametrize("batch", [256, 4096])
@pytest.mark.parametrize("product", ["∂W2", "∂W1", "forward layer 2"])
def test_tf32_in_one_product_is_read_as_that_product(product, batch):
    """One product in tf32, the rest in float32: the reading names that product alone."""
    case = make_case((784, 16, 10), batch, 0, "tanh", "identity")
    adapter = planted.ReducedProducts()
    adapter.arithmetic, adapter.products = "tf32", (product,)
    diag = _diagnose(adapter.gradients(case, "float32", "cpu"), case, "float32")
    assert diag.fails and diag.field == "tf32" and diag.products == (product,)
    assert str(diag) == f"tf32 in 1 of 5 products: {product}"


def test_tf32_failure_names_the_setting_that_restores_float32(pytester):
    """A float32 config with TF32-sized errors fails saying so, and what setting fixes it."""
    conformance = str(Path(__file__).resolve().parent / "test_conformance.py")
    result = pytester.runpytest_inprocess(
        conformance, "--adapter", "tests.fixtures.planted:RoundedOperands", "--cases", "seed",
        "--dtypes", "float32", "-p", "no:reports.plugin")
    result.stdout.fnmatch_lines([
        "*errors consistent with: tf32 in * (float32 was asked: * ran in tf32; "
        "RoundedOperands.bits = 23 restores float32)*"])
