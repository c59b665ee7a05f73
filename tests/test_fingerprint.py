"""The effective-precision fingerprint reads planted arithmetic right, and failures say so."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from adapters.example import NumpyAdapter
from reference.bounds import bounds
from reference.case import make_case
from reference.compare import fingerprint
from reference.network import gradients
from reference.simulate import simulate
from tests import planted

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
    (OneSideTF32, "float32", "tf32"),
    (OneSideBF16, "float32", "bfloat16"),
    (planted.Float32Leak, "float64", "float32"),
    (planted.MissingPrime, "float64", "wrong gradient"),
    (planted.MissingPrime, "float32", "wrong gradient"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_fingerprint_reads_the_arithmetic(spec, adapter, dtype, reads):
    """Each planted arithmetic is read as what it is, on every case: those simulated by
    matching their simulation (each sums in another order than it does), the one-sided ones
    by their error level."""
    case = make_case(spec[0], spec[1], 0, spec[2], spec[3])
    got = adapter().gradients(case, dtype, "cpu")
    fp = fingerprint(got, gradients(case), functools.partial(bounds, case),
                     functools.partial(simulate, case))
    assert fp == reads


def test_tf32_failure_names_the_setting_that_restores_float32(pytester):
    """A float32 config with TF32-sized errors fails saying so, and what setting fixes it."""
    conformance = str(Path(__file__).resolve().parent / "test_conformance.py")
    result = pytester.runpytest_inprocess(
        conformance, "--adapter", "tests.planted:RoundedOperands", "--cases", "seed",
        "--dtypes", "float32", "-p", "no:reports.plugin")
    result.stdout.fnmatch_lines([
        "*errors consistent with: tf32 (float32 was asked: its matrix products ran in tf32; "
        "RoundedOperands.bits = 23 restores float32)*"])
