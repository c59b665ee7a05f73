"""Which operation of a float64 run lost precision: planted float32 operations are named by
operation and layer, on every case and at depth 4; a wrong gradient and too few rows never
name one (reference/operations.py)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from adapters.example import NumpyAdapter
from reference.bounds import bounds
from reference.compare import diagnose
from reference.network import gradients
from reference.simulate import simulate
from tests.engine.matrix import Spec, draw
from tests.fixtures import planted

SPECS = [Spec((784, 16, 10), 1, 0, ("sigmoid", "sigmoid")),
         Spec((784, 16, 10), 8, 1, ("tanh", "softplus")),
         Spec((5, 4, 3), 3, 0, ("tanh", "softplus")),
         Spec((784, 32, 16, 16, 10), 4, 0, ("sigmoid", "tanh", "softplus", "sigmoid"))]
EVERY = "; everything else is float64"


def _diagnose(got, case, dtype="float64"):
    return diagnose(got, gradients(case), dtype, functools.partial(bounds, case),
                    functools.partial(simulate, case), case=case)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("adapter,label", [
    (planted.Float32Sigma, "σ and σ′ of layer 1 ({0})"),  # σ′ taken from the float32 σ
    (planted.Float32Prime, "σ′ of layer 1 ({0})"),
    (planted.Float32SigmaLast, "σ or σ′ of layer {L} ({1})"),
], ids=["sigma", "prime", "last"])
def test_a_float32_operation_is_named_with_its_layer(spec, adapter, label):
    """One element-wise operation evaluated in float32 inside a float64 run: the group fails,
    reads float32 and names that operation and its layer, and nothing else."""
    case = draw(spec)
    diag = _diagnose(adapter().gradients(case, "float64", "cpu"), case)
    want = label.format(spec.sigmas[0], spec.sigmas[-1], L=case.depth)
    verb = "are" if " and " in want else "is"
    assert diag.fails and diag.reads == "float32", str(diag)
    assert str(diag) == f"{want} {verb} float32-accurate{EVERY}", str(diag)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_float32_products_are_named_as_products(spec):
    """Every matrix product in float32 inside a float64 run (Keras 3.15 on torch): W1's errors
    off the inputs' span are ∂W1's, and the reading names the products, not a leak."""
    case = draw(spec)
    diag = _diagnose(planted.Float32Products().gradients(case, "float64", "cpu"), case)
    assert diag.fails and str(diag) == ("float32 in its matrix products (computed in float32 "
                                        "there; the element-wise operations cannot be told "
                                        "apart at this size)")


@pytest.mark.parametrize("spec", [Spec((784, 16, 10), 1, 0, ("sigmoid", "sigmoid")),
                                  Spec((784, 16, 10), 32, 0, ("relu", "sigmoid")),
                                  Spec((784, 16, 10), 32, 0, ("tanh", "identity"))],
                         ids=lambda s: s.id)
@pytest.mark.parametrize("tensor", ["W1", "b1", "W2", "b2"])
def test_one_wrong_entry_of_a_float64_run_is_one_wrong_entry(spec, tensor):
    """One entry shifted by 1e-4 of its tensor's largest magnitude: `wrong gradient: 1 entry`,
    never a float32 leak (the mean of a field of exact entries once read it as one)."""
    case = draw(spec)
    got = NumpyAdapter().gradients(case, "float64", "cpu")
    g = got[tensor].reshape(-1)
    g[len(g) // 2] += 1e-4 * np.abs(g).max()
    diag = _diagnose(got, case)
    assert str(diag) == "wrong gradient: 1 entry" and diag.field is None


@pytest.mark.parametrize("adapter", [planted.Float32Leak, planted.Float32Sigma,
                                     planted.Float32Products])
def test_the_chain_names_no_arithmetic(adapter):
    """The 1-1-1 chain has 2 rows: no arithmetic and no operation is named from it."""
    case = draw(Spec((1, 1, 1), 1, 0, ("sigmoid", "sigmoid")))
    diag = _diagnose(adapter().gradients(case, "float64", "cpu"), case)
    assert diag.field is None and str(diag).endswith("not enough evidence to name an arithmetic")


@pytest.mark.parametrize("adapter", [planted.MissingPrime, planted.MeanLoss,
                                     planted.MissingPrimeMiddle])
@pytest.mark.parametrize("spec", SPECS[:2] + SPECS[3:], ids=lambda s: s.id)
def test_a_wrong_formula_is_never_an_operation(adapter, spec):
    """A wrong formula whose errors lie in an operation's span (σ for σ′ in the output layer
    moves δ⁽ᴸ⁾ only) errs far beyond float32's size: never named as an operation."""
    case = draw(spec)
    diag = _diagnose(adapter().gradients(case, "float64", "cpu"), case)
    assert diag.operations is None and diag.field is None


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("adapter", [NumpyAdapter, *planted.ORDERS.values()],
                         ids=lambda a: a.__name__)
def test_a_correct_float64_run_names_nothing(spec, adapter):
    """Correct float64 runs, in every summation order: float64, no operation named."""
    case = draw(spec)
    diag = _diagnose(adapter().gradients(case, "float64", "cpu"), case)
    assert str(diag) == "float64" and not diag.fails


SATURATED = {sigmas: [Spec((16, 8, 4), 4, seed, sigmas, saturate=25) for seed in range(4)]
             for sigmas in (("sigmoid", "softplus"), ("relu", "sigmoid"))}
PRODUCTS = ("float32 in its matrix products (computed in float32 there; the element-wise "
            "operations cannot be told apart at this size)")


@pytest.mark.parametrize("spec", SATURATED["sigmoid", "softplus"], ids=lambda s: s.id)
def test_float32_products_are_named_in_saturation(spec):
    """In saturation a sigmoid output with z > 0 has a σ′ = σ(1 − σ) that cancels, and its
    float64 tier takes in float32's errors; the field's median hid the products there. The
    reading goes by the errors' size against the float32 tier: the products are named."""
    case = draw(spec)
    diag = _diagnose(planted.Float32Products().gradients(case, "float64", "cpu"), case)
    assert diag.fails and str(diag) == PRODUCTS, str(diag)


@pytest.mark.parametrize("spec", SATURATED["relu", "sigmoid"], ids=lambda s: s.id)
def test_a_float32_output_sigma_is_named_in_saturation(spec):
    """σ of the sigmoid output in float32, σ′ taken from it: σ′ is 0 where σ rounds to 1, off
    by u absolutely, 10¹¹ float32 ulps of σ′ itself but within σ′'s float32 budget (8u·σ);
    fitted to σ or to σ′ of the output layer alike, the reading takes the smaller errors."""
    case = draw(spec)
    diag = _diagnose(planted.Float32SigmaLast().gradients(case, "float64", "cpu"), case)
    assert str(diag) == f"σ or σ′ of layer 2 (sigmoid) is float32-accurate{EVERY}", str(diag)


@pytest.mark.parametrize("spec", SATURATED["relu", "sigmoid"], ids=lambda s: s.id)
def test_float32_products_failing_in_one_row_name_nothing(spec):
    """On the saturated relu-sigmoid case only the output units with z < 0 show float32's
    errors (one or two rows): float32-sized, too few rows to name an arithmetic."""
    case = draw(spec)
    diag = _diagnose(planted.Float32Products().gradients(case, "float64", "cpu"), case)
    assert diag.field is None and str(diag).endswith(
        "not enough evidence to name an arithmetic"), str(diag)


@pytest.mark.parametrize("seed", range(6))
def test_float32_tanh_near_zero_reads_one_label_over_seeds(seed):
    """tanh in float32 in both layers, parameters × 2⁻¹² (Keras 3.15 on JAX): σ's errors are
    10⁻⁴–10⁻³ of σ′'s there, either side of RESIDUAL by seed, and read three labels over 21
    seeds. The reading names every operation whose errors stand above float64's own."""
    case = draw(Spec((16, 8, 4), 4, seed, ("tanh", "tanh"), scale=12))
    diag = _diagnose(planted.Float32SigmaEvery().gradients(case, "float64", "cpu"), case)
    assert str(diag) == ("σ and σ′ of layer 1 (tanh), σ or σ′ of layer 2 (tanh) are "
                         f"float32-accurate{EVERY}"), str(diag)


def test_a_relu_layer_is_named_by_its_forward_product():
    """relu computes nothing but z or 0: its σ and σ′ are exact given z, so a float32 z before
    a relu is named as the forward product, never as a float32-accurate relu."""
    case = draw(Spec((16, 8, 4), 4, 0, ("relu", "sigmoid"), saturate=25))
    diag = _diagnose(planted.Float32Leak().gradients(case, "float64", "cpu"), case)
    assert "(relu)" not in str(diag) and "the forward product of layer 1 (z, before relu)" in \
        str(diag), str(diag)


@pytest.mark.parametrize("seed", range(8))
def test_an_operation_a_later_one_explains_is_dropped(seed):
    """δ of both layers rounded to float32 at batch 1: σ of layer 1's span reaches δ⁽²⁾ through
    z⁽²⁾, and the greedy reading named it first beside σ′ of layer 1 on 5 of 8 seeds. An
    operation the others make redundant is dropped: one label on every seed."""
    case = draw(Spec((784, 16, 10), 1, seed, ("sigmoid", "sigmoid")))
    diag = _diagnose(planted.Float32Delta().gradients(case, "float64", "cpu"), case)
    assert str(diag) == ("σ′ of layer 1 (sigmoid), σ or σ′ of layer 2 (sigmoid) are "
                         f"float32-accurate{EVERY}"), str(diag)
