"""Adapters with planted bugs: each breaks a known set of tensors, and the suite must say so;
and (from tests/orders.py) correct adapters that sum in every order frameworks use, which must
pass."""

from __future__ import annotations

import numpy as np

from adapters.example import SIGMA, NumpyAdapter
from reference.simulate import product, round_mantissa, truncate_mantissa
from tests.orders import (  # noqa: F401  the correct adapters, one per summation order
    ORDERS,
    BlockedSums,
    FMASums,
    PairwiseSums,
    SequentialSums,
    SplitSums,
)


class MissingPrime(NumpyAdapter):
    """(22) as printed: σL(zL) where σL′(zL) belongs in ∂C/∂WL; breaks WL (W2) only."""

    name = "planted_missing_prime"

    def dW(self, i, delta, a_prev, z, dC_da):
        if i < len(self.sigmas):
            return super().dW(i, delta, a_prev, z, dC_da)
        return self.matmul((SIGMA[self.sigmas[-1]][0](z) * dC_da).T, a_prev)

    def gradients(self, case, dtype, device):
        self.sigmas = [layer.sigma for layer in case.layers]
        return super().gradients(case, dtype, device)


class MissingPrimeMiddle(MissingPrime):
    """σ⁽²⁾(z⁽²⁾) where σ⁽²⁾′(z⁽²⁾) belongs in layer 2's own gradients, of a net of three or more
    layers (the δ passed on to layer 1 is right); breaks W2 and b2 only."""

    name = "planted_missing_prime_middle"

    def dW(self, i, delta, a_prev, z, dC_da):
        return NumpyAdapter.dW(self, i, self._delta(i, delta, z, dC_da), a_prev, z, dC_da)

    def db(self, i, delta, z, dC_da):
        return NumpyAdapter.db(self, i, self._delta(i, delta, z, dC_da), z, dC_da)

    def _delta(self, i, delta, z, dC_da):
        if i != 2 or len(self.sigmas) < 3:
            return delta
        return SIGMA[self.sigmas[1]][0](z) * dC_da


class SwappedMiddle(NumpyAdapter):
    """Returns layers 2 and 3's gradients swapped (W2 ↔ W3, b2 ↔ b3), a loop's off-by-one
    that shapes alone cannot catch where those layers are alike (784-16-16-16-10); breaks W2,
    b2, W3 and b3 only."""

    name = "planted_swapped_middle"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        if len(case.layers) >= 4:
            g["W2"], g["W3"], g["b2"], g["b3"] = g["W3"], g["W2"], g["b3"], g["b2"]
        return g


class MeanLoss(NumpyAdapter):
    """nn.MSELoss's default reduction: the cost divided by batch × nL; breaks every tensor."""

    name = "planted_mean_loss"

    def dC_daL(self, aL, y):
        return 2 * (aL - y) / aL.size


class Float32Leak(NumpyAdapter):
    """Computes in float32 whatever was asked, returns the asked dtype; breaks float64."""

    name = "planted_float32_leak"

    def gradients(self, case, dtype, device):
        return {k: v.astype(dtype) for k, v in super().gradients(case, "float32", device).items()}


class OffByOneEntry(NumpyAdapter):
    """One entry of ∂C/∂W1 (the largest) off by a relative 1e-9 in float64."""

    name = "planted_off_entry"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        if dtype == "float64":
            i = np.unravel_index(np.argmax(np.abs(g["W1"])), g["W1"].shape)
            g["W1"][i] *= 1 + 1e-9
        return g


class RoundedOperands(NumpyAdapter):
    """float32 matrix products on operands rounded to fewer mantissa bits (tensor-core style).

    The products sum the inner dimension in reverse: a device's own summation order, not the
    one `reference.simulate` uses, so the fingerprint is tested on errors it did not compute.
    """

    name = "planted_tf32"
    bits = 10
    cut = staticmethod(round_mantissa)
    float32_setting = "RoundedOperands.bits = 23"

    def matmul(self, a, b):
        if a.dtype != np.float32:
            return a @ b
        return self.cut(a, self.bits)[:, ::-1] @ self.cut(b, self.bits)[::-1, :]


class TruncatedOperands(RoundedOperands):
    """float32 matrix products on operands truncated to tf32's 10 bits, as a tensor core that
    reads only the first 10 mantissa bits does."""

    name = "planted_tf32_truncated"
    cut = staticmethod(truncate_mantissa)


class BF16Operands(RoundedOperands):
    """float32 matrix products on operands rounded to bfloat16."""

    name = "planted_bf16"
    bits = 7


class TruncatedBF16Operands(RoundedOperands):
    """float32 matrix products on operands truncated to bfloat16's 7 bits."""

    name = "planted_bf16_truncated"
    bits = 7
    cut = staticmethod(truncate_mantissa)


class Raises(NumpyAdapter):
    """Raises inside gradients; every item of its groups must fail, the run must go on."""

    name = "planted_raises"

    def gradients(self, case, dtype, device):
        raise RuntimeError("planted failure inside the adapter")


class ReturnsNaN(NumpyAdapter):
    """Returns one NaN entry in ∂C/∂b1."""

    name = "planted_nan"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        g["b1"][0] = np.nan
        return g


class WrongShape(NumpyAdapter):
    """Returns ∂C/∂W1 transposed (in, out), the classic layout mix-up."""

    name = "planted_wrong_shape"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        g["W1"] = np.ascontiguousarray(g["W1"].T)
        if g["W1"].shape == g["W1"].T.shape:  # a square W1 would hide the bug
            g["W1"] = g["W1"][:, :-1]
        return g


class TwoLayerOnly:
    """A correct contract-v1 adapter: it reads case.W1, b1, W2, b2, sigma1, sigma2 only, as
    third-party adapters written before depth do; on a deeper case it must fail in one line."""

    name = "two_layer_only"
    framework = "numpy"

    def gradients(self, case, dtype, device):
        W1, b1, W2, b2 = (np.asarray(getattr(case, k), dtype=dtype) for k in
                          ("W1", "b1", "W2", "b2"))
        (f1, df1), (f2, df2) = SIGMA[case.sigma1], SIGMA[case.sigma2]
        x, y = case.x.astype(dtype), case.y.astype(dtype)
        z1 = x @ W1.T + b1  # (15)
        a1 = f1(z1)  # (16)
        z2 = a1 @ W2.T + b2  # (17)
        a2 = f2(z2)  # (18)
        delta2 = df2(z2, a2) * 2 * (a2 - y)  # (24)
        delta1 = df1(z1, a1) * (delta2 @ W2)  # (26), (28)–(29)
        return {"W1": delta1.T @ x, "b1": delta1.sum(axis=0), "W2": delta2.T @ a1,
                "b2": delta2.sum(axis=0)}


class MissingTensor(NumpyAdapter):
    """Returns no ∂C/∂b2."""

    name = "planted_missing"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        del g["b2"]
        return g


NUMERIC = {a.name: a for a in (MissingPrime, MissingPrimeMiddle, SwappedMiddle, MeanLoss,
                               Float32Leak, OffByOneEntry,
                               RoundedOperands, TruncatedOperands, BF16Operands,
                               TruncatedBF16Operands)}
"""Bugs that change values: the separation is measured on these."""
CONTRACT = {a.name: a for a in (Raises, ReturnsNaN, WrongShape, MissingTensor)}
"""Bugs that break the contract: a one-line failure naming adapter and tensor."""


class ReducedProducts(NumpyAdapter):
    """float32 with only some matrix products in a reduced arithmetic, the others in float32,
    as real libraries choose per product (oneDNN's bf16 under torch's `medium`, a GPU's BLAS
    per shape). `products` names them as `reference.simulate.products` does; the sums run in
    reverse (not the simulation's order). Subclasses fix the arithmetic and the products."""

    name = "planted_reduced_products"
    arithmetic = "bfloat16"
    products: tuple[str, ...] = ("forward layer 1", "∂W1")
    float32_setting = "ReducedProducts.products = ()"

    def gradients(self, case, dtype, device):
        self._calls = iter(_product_order(len(case.layers)))
        return super().gradients(case, dtype, device)

    def matmul(self, a, b):
        name = next(self._calls)
        if a.dtype != np.float32 or name not in self.products:
            return a @ b
        return product(self.arithmetic)(a[:, ::-1], b[::-1, :])


def _product_order(depth: int) -> list[str]:
    """Return the products in the order NumpyAdapter.gradients multiplies: forward 1 … L, then
    per layer from L down ∂Wi and the backward product (layer 1's too, unused)."""
    back = []
    for i in range(depth, 0, -1):
        back += [f"∂W{i}", f"backward layer {i}"]
    return [f"forward layer {i}" for i in range(1, depth + 1)] + back


class BF16FirstLayer(ReducedProducts):
    """bf16 in layer 1's forward and weight-gradient products only: the field torch's
    `medium` gave on AMX-BF16 for the 784-16-10 net at batch 32."""

    name = "planted_bf16_first_layer"


class BF16OneProduct(ReducedProducts):
    """bf16 in the product that carries δ back through W2 only."""

    name = "planted_bf16_one_product"
    products = ("backward layer 2",)


class TF32Forward(ReducedProducts):
    """tf32 in every forward product only."""

    name = "planted_tf32_forward"
    arithmetic = "tf32"
    products = tuple(f"forward layer {i}" for i in range(1, 9))


class AutocastOutputs(ReducedProducts):
    """bf16 operands and outputs in every product, as torch.autocast runs them."""

    name = "planted_autocast"
    arithmetic = "bfloat16-outputs"
    products = tuple(p for i in range(1, 9) for p in
                     (f"forward layer {i}", f"∂W{i}", f"backward layer {i}"))


PER_PRODUCT = {a.name: a for a in (BF16FirstLayer, BF16OneProduct, TF32Forward, AutocastOutputs)}
"""Reduced arithmetic in some products only: the reading must name those products."""
NUMERIC.update(PER_PRODUCT)
