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
from tests import planted
from tests.conformance import caught_for
from tests.matrix import Spec, draw


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
    whose effect hides in the summation noise may go unnamed)."""
    case = make_case(net[0], net[1], 0, *net[2])
    diag = _diagnose(adapter().gradients(case, "float32", "cpu"), case)
    assert diag.fails and diag.reads == reads
    assert diag.products and set(diag.products) <= set(products)


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


def _ran_in_bf16(torch, a: np.ndarray, b: np.ndarray) -> bool:
    """Say whether torch's `medium` runs the product a·b in bf16 on this machine: its error
    against float64 is far above what `highest` gives (bf16 errs ~2⁻⁹ relatively)."""
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    out = {}
    for precision in ("highest", "medium"):
        torch.set_float32_matmul_precision(precision)
        try:
            got = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
        finally:
            torch.set_float32_matmul_precision("highest")
        out[precision] = float(np.max(np.abs(got - exact) / np.maximum(scale, 1e-30)))
    return out["medium"] > 2.0**-14 > out["highest"]


def _products_in_bf16(torch, case) -> tuple[str, ...]:
    """Return the products of the case that torch's `medium` runs in bf16, measured one by
    one on the case's own float32 operands, with the layouts autograd uses."""
    sim, x = {}, case.x.astype(np.float32)
    a, z, ran = [x], [None], []
    for i, layer in enumerate(case.layers, 1):
        W = layer.W.astype(np.float32)
        if _ran_in_bf16(torch, a[-1], W.T):
            ran.append(f"forward layer {i}")
        z.append(a[-1] @ W.T + layer.b.astype(np.float32))
        a.append(np.tanh(z[-1]).astype(np.float32))
    delta = np.ones_like(a[-1])  # the shapes decide the kernel; the values only scale
    for i in range(len(case.layers), 0, -1):
        W = case.layers[i - 1].W.astype(np.float32)
        if _ran_in_bf16(torch, np.ascontiguousarray(delta.T), a[i - 1]):
            ran.append(f"∂W{i}")
        if i > 1:
            if _ran_in_bf16(torch, delta, W):
                ran.append(f"backward layer {i}")
            delta = delta @ W
    del sim
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
