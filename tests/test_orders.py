"""The summation-order adapters: each sums as it says, and each passes the suite's bound."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from reference.bounds import U, _bias
from reference.compare import compare
from reference.simulate import simulate
from tests.engine import matrix
from tests.engine.conformance import bounds_for, case_for, reference_for
from tests.engine.matrix import Spec
from tests.fixtures import orders
from tests.fixtures.orders import ORDERS, fma_chain

LARGE = (((5, 4, 3), 65536, (("tanh", "softplus"),), {}),
         ((784, 16, 10), 1024, (("relu", "sigmoid"),), {}))
"""Long sums at a test's cost: the batch sums of a small net and n0 = 784 at batch 1024."""
SPECS = (matrix.specs(matrix.named(list(matrix.CASES)), None, range(1))
         + matrix.specs(list(LARGE), None, range(1)))
RUNS = [pytest.param(name, dtype, id=f"{name}-{dtype}") for name in ORDERS
        for dtype in matrix.DTYPES if not (name == "fma_sums" and dtype == "float64")]
"""fma_sums sums float64 as sequential_sums does, so it runs in float32 only."""
LONGEST = Spec((5, 4, 3), 262144, 0, ("sigmoid", "sigmoid"))
"""Batch sums of 262,144 terms, left to right in float32: the least accurate order at a length
where a bound that models a tree (⌈log₂ n⌉ + 1 roundings) no longer holds."""


def check_order(name: str, dtype: str, spec: Spec) -> None:
    """Assert every entry of the order's gradients within its bound; float64 within noise."""
    __tracebackhide__ = True
    got = ORDERS[name]().gradients(case_for(spec), dtype, "cpu")
    ref, bound = reference_for(spec), bounds_for(spec, dtype)
    ratios = {t: compare(t, got[t], ref[t], bound[t], dtype) for t in ref}
    failed = {t: f"{c.max_ratio:.3g}" for t, c in ratios.items() if not c.passed}
    assert not failed, f"{name} {dtype} {spec.id}: greatest |g − ref| / bound {failed}"
    # a correct sum: agrees to float64 noise, whatever the bound says (not where σ′ = σ(1 − σ)
    # cancels, the saturated case: there σ′ errs by u absolutely, 10⁻⁴ of itself)
    if dtype == "float64" and not spec.saturate:
        for t in ref:
            assert np.abs(got[t] - ref[t]).max() <= 1e-13 * np.abs(ref[t]).max(), t


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
@pytest.mark.parametrize(("name", "dtype"), RUNS)
def test_order_passes_its_bound(name, dtype, spec):
    """A correct adapter passes every entry of every tensor, whatever order it sums in."""
    check_order(name, dtype, spec)


def test_left_to_right_batch_sums_pass_at_262144():
    """Left-to-right float32 batch sums of 262,144 terms stay inside the bound."""
    check_order("sequential_sums", "float32", LONGEST)


ALIKE = (Spec((784, *(64,) * 7, 10), 4096, 0, ("sigmoid",) * 8),
         Spec((784, *(64,) * 7, 10), 4096, 0,
              ("softplus", "tanh", "sigmoid", "tanh", "softplus", "tanh", "sigmoid", "identity")))
"""Saturating layers make the samples alike: δ⁽⁸⁾ clusters within an ulp of its batch sums (two
values per unit with seven sigmoid layers; a spread a third of an ulp with the identity output),
and those sums round the same way at each addition (reference.bounds._bias). Without that
charge NumPy's float32 order failed b8 at 2.9 and 1.24."""


@pytest.mark.parametrize("spec", ALIKE, ids=["sigmoid", "mixed"])
@pytest.mark.parametrize("name", ["numpy", "sequential_sums", "pairwise_sums"])
def test_alike_samples_pass_in_three_orders(name, spec):
    """Batch sums of clustered values pass left to right (where they round alike), as a tree
    and in NumPy's own float32 run (the blocked, split and FMA orders take 7–17 s each here)."""
    if name != "numpy":
        check_order(name, "float32", spec)
        return
    got, ref, bound = simulate(case_for(spec), "float32"), reference_for(spec), bounds_for(
        spec, "float32")
    worst = {t: compare(t, got[t], ref[t], bound[t], "float32").max_ratio for t in ref}
    assert max(worst.values()) <= 1.0, worst


def test_clustered_addends_are_charged_and_spread_ones_are_not():
    """`_bias` charges a sum of two repeated values, and one of a narrow cluster, their
    left-to-right rounding; a spread of values and exact zeros it charges nothing."""
    rng = np.random.default_rng(0)
    n, u = 4096, U["float32"]
    two = np.where(rng.random(n) < 0.9, 0.0123457, -0.0876543).astype(np.float32)
    narrow = (-1.18198 + 8e-5 * rng.standard_normal(n)).astype(np.float32)
    spread = rng.random(n).astype(np.float32)
    zeros = np.where(rng.random(n) < 0.5, 0.0, spread).astype(np.float32)
    got, clustered = _bias(np.stack([two, narrow, spread, zeros], axis=1), u)
    for j, v in enumerate((two, narrow)):
        exact = float(np.sum(v.astype(np.float64)))
        left_to_right = float(np.cumsum(v, dtype=np.float32)[-1])
        assert abs(left_to_right - exact) <= got[j] * u, j
    assert list(got[2:]) == [0.0, 0.0]
    assert list(clustered) == [True, True, False, False]
    assert _bias(np.stack([spread, zeros], axis=1), u) == (0.0, None)
    on_grid = np.full(n, 0.75, dtype=np.float32)  # rounds nothing alone, clusters for products
    got, clustered = _bias(np.stack([on_grid, spread], axis=1), u)
    assert got == 0.0 and list(clustered) == [True, False]


def loop_sequential(a, b):
    """Sum a @ b one rounded product at a time, as a loop does."""
    acc = np.zeros((a.shape[0], b.shape[1]), a.dtype)
    for k in range(a.shape[1]):
        acc = acc + a[:, k : k + 1] * b[k : k + 1, :]
    return acc


def loop_tree(a, b):
    """Sum a @ b by recursive halving of K padded to a power of two."""
    if a.shape[1] == 1:
        return a * b
    half = 1 << (int(np.ceil(np.log2(a.shape[1]))) - 1)
    return loop_tree(a[:, :half], b[:half]) + loop_tree(a[:, half:], b[half:])


def loop_fma(a, b):
    """Sum a @ b in float32 by fused multiply-adds, the exact sum rounded by Fraction."""
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for i, j in np.ndindex(out.shape):
        for k in range(a.shape[1]):
            exact = Fraction(float(out[i, j])) + Fraction(float(a[i, k])) * float(b[k, j])
            near = np.float32(float(exact))
            up, down = np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(-1e9))
            out[i, j] = min((near, up, down), key=lambda c: (abs(Fraction(float(c)) - exact),
                                                             int(c.view(np.uint32)) & 1))
    return out


@pytest.mark.parametrize("limit", [orders.LIMIT, 64, 7])  # chunking must not change a bit
@pytest.mark.parametrize("dtype", matrix.DTYPES)
def test_orders_sum_bit_for_bit_as_loops(dtype, limit, monkeypatch):
    """Vectorised orders equal plain loops bit for bit, across chunk boundaries."""
    monkeypatch.setattr(orders, "LIMIT", limit)
    rng = np.random.default_rng(1)
    for m, K, n in ((3, 1, 4), (5, 7, 2), (4, 600, 3), (2, 1000, 5)):
        a, b = rng.standard_normal((m, K)).astype(dtype), rng.standard_normal((K, n)).astype(dtype)
        assert np.array_equal(orders.SequentialSums().matmul(a, b), loop_sequential(a, b))
        assert np.array_equal(orders.PairwiseSums().matmul(a, b), loop_tree(a, b))
        blocked = sum((loop_sequential(a[:, k : k + 256], b[k : k + 256])
                       for k in range(256, K, 256)), loop_sequential(a[:, :256], b[:256]))
        assert np.array_equal(orders.BlockedSums().matmul(a, b), blocked)
        whole = orders.SplitSums()
        whole.parts = 1
        assert np.array_equal(whole.matmul(a, b), loop_sequential(a, b))
        assert np.array_equal(orders.SequentialSums().colsum(a.T.copy()),
                              loop_sequential(np.ones((1, K), dtype), a.T)[0])


def test_fma_rounds_once():
    """float32 FMA sums equal the exactly rounded loop, including float64 ties."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 300)).astype("float32"), rng.standard_normal((300, 2))
    b = b.astype("float32")
    assert np.array_equal(orders.FMASums().matmul(a, b), loop_fma(a, b))
    # 1 + 2⁻²⁴ + 2⁻⁶⁰ rounds to 1 + 2⁻²³; through float64 it would tie and round to 1.
    p = np.array([2.0**-24 + 2.0**-60, 2.0**-24]).reshape(2, 1, 1)
    assert fma_chain(p, np.ones((1, 1), np.float32)).item() == 1 + 2.0**-22
