"""Adapters with planted bugs: each breaks a known set of tensors, and the suite must say so;
and (from tests/orders.py) correct adapters that sum in every order frameworks use, which must
pass."""

from __future__ import annotations

import numpy as np

from adapters.example import SIGMA, NumpyAdapter
from reference.simulate import round_mantissa, truncate_mantissa
from tests.orders import (  # noqa: F401  the correct adapters, one per summation order
    ORDERS,
    BlockedSums,
    FMASums,
    PairwiseSums,
    SequentialSums,
    SplitSums,
)


class MissingPrime(NumpyAdapter):
    """(22) as printed: σ2(z2) where σ2′(z2) belongs; breaks W2 only."""

    name = "planted_missing_prime"

    def dW2(self, delta2, a1, z2, a2, y):
        f2 = SIGMA[self.sigma2][0]
        return self.matmul((f2(z2) * self.dC_da2(a2, y)).T, a1)

    def gradients(self, case, dtype, device):
        self.sigma2 = case.sigma2
        return super().gradients(case, dtype, device)


class MeanLoss(NumpyAdapter):
    """nn.MSELoss's default reduction: the cost divided by batch × n2; breaks every tensor."""

    name = "planted_mean_loss"

    def dC_da2(self, a2, y):
        return 2 * (a2 - y) / a2.size


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


class MissingTensor(NumpyAdapter):
    """Returns no ∂C/∂b2."""

    name = "planted_missing"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        del g["b2"]
        return g


NUMERIC = {a.name: a for a in (MissingPrime, MeanLoss, Float32Leak, OffByOneEntry,
                               RoundedOperands, TruncatedOperands, BF16Operands,
                               TruncatedBF16Operands)}
"""Bugs that change values: the separation is measured on these."""
CONTRACT = {a.name: a for a in (Raises, ReturnsNaN, WrongShape, MissingTensor)}
"""Bugs that break the contract: a one-line failure naming adapter and tensor."""
