"""Reduced precision read per matrix product: planted per-product arithmetics, torch's `medium`
on this CPU's bf16 units, and sensitivity claims checked against the runs they claim."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from reference.bounds import bounds
from reference.case import make_case
from reference.compare import diagnose
from reference.network import gradients
from reference.simulate import simulate
from tests.engine.conformance import caught_for
from tests.engine.matrix import Spec, draw
from tests.fixtures import planted


def _diagnose(got, case):
    return diagnose(got, gradients(case), "float32", functools.partial(bounds, case),
                    functools.partial(simulate, case))


NETS = [((784, 16, 10), 32, ("tanh", "sigmoid")), ((784, 16, 10), 512, ("relu", "sigmoid")),
        ((784, 64, 32, 16, 10), 64, ("relu", "tanh", "sigmoid", "softplus"))]


@pytest.mark.parametrize("net", NETS, ids=lambda n: f"{'x'.join(map(str, n[0]))}-b{n[1]}")
@pytest.mark.parametrize("adapter,reads,products", [
    (planted.BF16FirstLayer, "bfloat16", ("forward layer 1", "∂W1")),
    (planted.BF16OneProduct, "bfloat16", ("backward layer 2",)),
])
def test_a_per_product_arithmetic_names_its_products(net, adapter, reads, products):
    """bf16 in some products only (summed in another order than the simulation): the group
    fails, reads bfloat16 and names those products, never one that ran in float32 (a product
    whose effect hides in the summation noise may go unnamed; where no product stands out
    alone, the products read together include one that ran in bf16)."""
    case = make_case(net[0], net[1], 0, *net[2])
    diag = _diagnose(adapter().gradients(case, "float32", "cpu"), case)
    assert diag.fails and diag.reads == reads
    assert set(diag.products) <= set(products)  # never a product that ran in float32
    assert diag.products or set(diag.among) & set(products)


@pytest.mark.parametrize("sizes", [(784, 16, 10), (784, *(64,) * 7, 10)],
                         ids=["784x16x10", "784x64x7x10"])
def test_one_sample_never_names_a_product_or_arithmetic_that_did_not_run(sizes):
    """At batch 1 the evidence is thinnest: bf16 in layer 1's products reads bfloat16 and names
    no product that ran in float32 (tf32 regressors of a depth-8 net fitted two forward
    products there at t past the critical value, explaining 6% of the errors)."""
    case = make_case(sizes, 1, 0, *(["tanh"] * (len(sizes) - 2) + ["sigmoid"]))
    diag = _diagnose(planted.BF16FirstLayer().gradients(case, "float32", "cpu"), case)
    assert diag.fails and diag.reads == "bfloat16", str(diag)
    assert set(diag.products) <= {"forward layer 1", "∂W1"}, str(diag)


@pytest.mark.parametrize("batch", [1, 8])
def test_every_product_in_bf16_reads_bfloat16_at_depth_8(batch):
    """bf16 in all 23 products of a depth-8 net reads bfloat16, not a wrong gradient: the
    products' effects compound past first order, so their sum explains 29% of the errors at
    batch 1, and the run with all of them reduced is fitted too."""
    case = make_case((784, *(64,) * 7, 10), batch, 0, *(["tanh"] * 7 + ["sigmoid"]))
    diag = _diagnose(planted.BF16Operands().gradients(case, "float32", "cpu"), case)
    assert diag.fails and diag.reads == "bfloat16", str(diag)


@pytest.mark.parametrize("net", NETS, ids=lambda n: f"{'x'.join(map(str, n[0]))}-b{n[1]}")
def test_tf32_forward_products_and_autocast_are_read(net):
    """tf32 in the forward products reads tf32 in forward products only; autocast's bf16
    operands and outputs read bfloat16."""
    case = make_case(net[0], net[1], 0, *net[2])
    tf = _diagnose(planted.TF32Forward().gradients(case, "float32", "cpu"), case)
    assert tf.reads == "tf32" and tf.products
    assert all(p.startswith("forward layer") for p in tf.products)
    auto = _diagnose(planted.AutocastOutputs().gradients(case, "float32", "cpu"), case)
    assert auto.fails and auto.reads == "bfloat16"


@pytest.mark.parametrize("seed", range(3))
def test_correct_float32_reads_no_product(seed):
    """A correct float32 run names no arithmetic and no product."""
    from adapters.example import NumpyAdapter

    for sizes, batch, sigmas in NETS:
        case = make_case(sizes, batch, seed, *sigmas)
        diag = _diagnose(NumpyAdapter().gradients(case, "float32", "cpu"), case)
        assert not diag.fails and diag.reads == "float32" and not diag.products


@pytest.mark.parametrize("spec", [Spec((784, 16, 10), 32, 0, ("sigmoid", "sigmoid")),
                                  Spec((5, 4, 3), 3, 0, ("tanh", "softplus")),
                                  Spec((1, 1, 1), 1, 0, ("tanh", "identity"))],
                         ids=["784x16x10-b32", "5x4x3-b3", "1x1x1-b1"])
def test_a_sensitivity_claim_holds_for_a_run_of_its_arithmetic(spec):
    """`detectable` is claimed only where a planted run of the arithmetic (another summation
    order than the simulation the claim came from) is read as that arithmetic."""
    claims = caught_for(spec)
    case = draw(spec)
    for arithmetic, adapter in (("tf32", planted.RoundedOperands), ("bfloat16",
                                                                     planted.BF16Operands)):
        diag = _diagnose(adapter().gradients(case, "float32", "cpu"), case)
        if claims[arithmetic] == "detectable":
            assert diag.field == arithmetic, (arithmetic, claims)
        assert diag.fails  # caught, named or not


# --- torch's `medium` on this CPU's bf16 units -----------------------------------------------

def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


BF16_UNITS = {"avx512_bf16", "amx_bf16"} & _cpu_flags()


def _ran_in_bf16(torch, a, b) -> bool:
    """Say whether torch's `medium` runs the product a·b (torch tensors, in the layouts autograd
    uses) in bf16 on this machine: its error against float64 is far above what `highest`
    gives (bf16 errs ~2⁻⁹ relatively, float32 ~2⁻²⁴)."""
    exact = a.double() @ b.double()
    scale = a.double().abs() @ b.double().abs()
    out = {}
    for precision in ("highest", "medium"):
        torch.set_float32_matmul_precision(precision)
        try:
            got = a @ b
        finally:
            torch.set_float32_matmul_precision("highest")
        out[precision] = float(((got.double() - exact).abs() / scale.clamp_min(1e-30)).max())
    return out["medium"] > 2.0**-14 > out["highest"]


def _products_in_bf16(torch, case) -> tuple[str, ...]:
    """Return the products of the case that torch's `medium` runs in bf16, each measured on
    its own with the case's shapes and autograd's layouts (x @ Wᵀ as a view, δᵀ @ a as a view,
    δ @ W), on the case's float32 activations and δ-like values of every mantissa bit."""
    rng = np.random.default_rng(0)
    a, ran = [torch.from_numpy(case.x.astype(np.float32))], []
    for i, layer in enumerate(case.layers, 1):
        W = torch.from_numpy(layer.W.astype(np.float32))
        if _ran_in_bf16(torch, a[-1], W.t()):
            ran.append(f"forward layer {i}")
        a.append(torch.tanh(a[-1] @ W.t() + torch.from_numpy(layer.b.astype(np.float32))))
    for i in range(len(case.layers), 0, -1):
        W = torch.from_numpy(case.layers[i - 1].W.astype(np.float32))
        delta = torch.from_numpy(rng.standard_normal((case.batch, W.shape[0]), np.float32))
        if _ran_in_bf16(torch, delta.t(), a[i - 1]):
            ran.append(f"∂W{i}")
        if i > 1 and _ran_in_bf16(torch, delta, W):
            ran.append(f"backward layer {i}")
    return tuple(ran)


LADDER = [((784, 16, 10), b) for b in (1, 8, 64, 512)] + [((784, 64, 32, 16, 10), 8)]


@pytest.mark.skipif(not BF16_UNITS, reason="this CPU has no bf16 units (neither avx512_bf16 "
                                           "nor amx_bf16 in /proc/cpuinfo): torch's `medium` "
                                           "runs float32 here")
@pytest.mark.parametrize("sizes,batch", LADDER, ids=[f"{'x'.join(map(str, s))}-b{b}"
                                                     for s, b in LADDER])
def test_torch_medium_fails_and_reads_bf16_exactly_where_a_product_ran_in_bf16(sizes, batch):
    """torch's `medium` on this CPU: where a product ran in bf16 (measured against `highest`)
    the group fails reading bfloat16, naming only products that ran in bf16; where none did it
    passes."""
    torch = pytest.importorskip("torch")
    from adapters.torch import TorchAutograd

    case = make_case(sizes, batch, 0, *(["tanh"] * (len(sizes) - 2) + ["sigmoid"]))
    ran = _products_in_bf16(torch, case)
    got = TorchAutograd().gradients(case, "float32", "cpu", precision="medium")
    diag = _diagnose(got, case)
    if ran:
        assert diag.fails and diag.reads == "bfloat16", (ran, str(diag))
        assert set(diag.products) <= set(ran), (ran, str(diag))
    else:
        assert not diag.fails, (ran, str(diag))


def test_tf32_in_both_forward_products_is_read_together():
    """tf32 in both forward products of 784-16-10 at batch 1: a reduced z⁽¹⁾ moves the operands
    layer 2 rounds, so neither product's own effect fits (shares 0.2–0.3) and the run of every
    product does not either; the run of every forward product does (it read
    `wrong gradient: 11939 entries`)."""
    case = draw(Spec((784, 16, 10), 1, 0, ("sigmoid", "sigmoid")))
    diag = _diagnose(planted.TF32Forward().gradients(case, "float32", "cpu"), case)
    assert diag.reads == "tf32" and set(diag.among or diag.products) <= {
        "forward layer 1", "forward layer 2"}, str(diag)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("adapter,reads", [(planted.RoundedOperands, "tf32"),
                                           (planted.TruncatedBF16Operands, "bfloat16")],
                         ids=["tf32", "bf16-truncated"])
def test_a_relu_flipped_by_rounding_does_not_swap_the_arithmetic(adapter, reads, seed):
    """784-64-32-16-10 at batch 8 behind a relu: a unit that any rounding of z⁽¹⁾ flips moves
    the gradients alike under tf32 and bf16, and both fit forward layer 1 at share 1. The
    reading takes the arithmetic that explains the larger share of the errors (the residuals'
    weights differ per fit, so their sums do not compare); tf32 read bfloat16 at seed 4,
    bf16-truncated read tf32 at seeds 3 and 4."""
    case = draw(Spec((784, 64, 32, 16, 10), 8, seed, ("relu", "tanh", "sigmoid", "softplus")))
    diag = _diagnose(adapter().gradients(case, "float32", "cpu"), case)
    assert diag.reads == reads, str(diag)


def test_too_few_rows_for_a_joint_fit_say_so():
    """bf16 in layer 1 of the 5-4-3 net at batch 3, seed 4: 7 rows and 5 products leave no fit
    its degrees of freedom; the one-regressor fits need t ≥ 84. Nothing is named, and the
    reading says there is not enough evidence rather than a bare count."""
    case = draw(Spec((5, 4, 3), 3, 4, ("tanh", "softplus")))
    diag = _diagnose(planted.BF16FirstLayer().gradients(case, "float32", "cpu"), case)
    assert str(diag).endswith("not enough evidence to name an arithmetic"), str(diag)
