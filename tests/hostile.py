"""Hostile adapters: each tries to pass with wrong gradients, or to break the run, and the suite
must fail it with one line naming the adapter (tests/test_integrity.py)."""

from __future__ import annotations

import ctypes
import sys
import time

import numpy as np

from adapters.example import NumpyAdapter

CALLS: list[str] = []
"""Every call of a counting adapter appends its name: calls per group are counted on it."""


class WritesThroughMemory(NumpyAdapter):
    """Doubles W2 in place through its memory address, past the read-only flag, as
    `torch.from_numpy(case.W2).mul_(2.0)` does (torch only warns); then backpropagates
    correctly."""

    name = "hostile_writes_w2"

    def gradients(self, case, dtype, device):
        w2 = (ctypes.c_double * case.W2.size).from_address(case.W2.ctypes.data)
        for i in range(case.W2.size):
            w2[i] *= 2.0
        return super().gradients(case, dtype, device)


class CentresInputs(NumpyAdapter):
    """Centres the inputs in place (`x -= x.mean()`), then backpropagates correctly."""

    name = "hostile_centres_x"

    def gradients(self, case, dtype, device):
        x = case.x
        x -= x.mean()
        return super().gradients(case, dtype, device)


class SGDStep(NumpyAdapter):
    """Returns correct gradients, then takes a correct SGD step on the case's parameters."""

    name = "hostile_sgd_step"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        for k, v in g.items():  # W3 is layer 3's W: the frozen layer is stepped past its guard
            layer, part = case.layers[int(k[1:]) - 1], k[0]
            object.__setattr__(layer, part, getattr(layer, part) - 0.1 * v)
        return g


class Counted(NumpyAdapter):
    """Correct; counts its calls."""

    name = "counted"

    def gradients(self, case, dtype, device):
        CALLS.append(self.name)
        return super().gradients(case, dtype, device)


class EverySecondCall(Counted):
    """Returns gradients × (1 + 1e-3) on every second call."""

    name = "hostile_every_second"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        if len(CALLS) % 2 == 0:
            g = {k: v * (1 + 1e-3) for k, v in g.items()}
        return g


class LastBit(Counted):
    """Moves W1[0, 0] by one ulp on every second call: within the bound, not bitwise equal."""

    name = "hostile_last_bit"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        if len(CALLS) % 2 == 0:
            w = g["W1"]
            w[0, 0] = np.nextafter(w[0, 0], w.dtype.type(np.inf))
        return g


class ReusesBuffer(Counted):
    """Returns the same arrays on every call, filled again; ×(1 + 1e-3) on every second call."""

    name = "hostile_reuses_buffer"
    buffers: dict = {}

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        scale = (1 + 1e-3) if len(CALLS) % 2 == 0 else 1.0
        for k, v in g.items():
            out = self.buffers.setdefault((k, dtype, v.shape), np.empty_like(v))
            np.multiply(v, scale, out=out)
        return {k: self.buffers[(k, dtype, v.shape)] for k, v in g.items()}


class ChangesDtype(Counted):
    """Returns float16 gradients on every second call."""

    name = "hostile_changes_dtype"

    def gradients(self, case, dtype, device):
        g = super().gradients(case, dtype, device)
        return {k: v.astype(np.float16) for k, v in g.items()} if len(CALLS) % 2 == 0 else g


class Exits(Counted):
    """Calls sys.exit inside gradients."""

    name = "hostile_exits"

    def gradients(self, case, dtype, device):
        super().gradients(case, dtype, device)
        sys.exit(3)


class BlankLines(NumpyAdapter):
    """Raises with a message that starts with blank lines and goes on for 5 MB."""

    name = "hostile_blank_lines"

    def gradients(self, case, dtype, device):
        raise ValueError("\n\n   the real reason " + "x" * 5_000_000 + "\nsecond line")


class Sleeps(NumpyAdapter):
    """Takes a minute per call, swallowing every Exception on the way."""

    name = "hostile_sleeps"

    def gradients(self, case, dtype, device):
        try:
            time.sleep(60)
        except Exception:  # noqa: BLE001, S110 - a careless adapter
            pass
        return super().gradients(case, dtype, device)


class SwallowsTimeouts(NumpyAdapter):
    """Retries a 2-second step five times, its bare `except:` swallowing whatever interrupts a
    try (a timeout included), then returns the right gradients: 10 s a call."""

    name = "hostile_swallows"

    def gradients(self, case, dtype, device):
        for _ in range(5):
            try:
                time.sleep(2)
            except:  # noqa: E722 - a careless adapter's retry loop
                pass
        return super().gradients(case, dtype, device)


class NeedsArgument(NumpyAdapter):
    """A class whose __init__ needs an argument."""

    def __init__(self, path):
        self.path = path


class InitRaises(NumpyAdapter):
    """A class whose __init__ raises."""

    def __init__(self):
        raise RuntimeError("no GPU driver")


class NameRaises(NumpyAdapter):
    """An adapter whose `name` property raises."""

    @property
    def name(self):
        raise RuntimeError("name not decided yet")


class PrecisionsString(NumpyAdapter):
    """`precisions` as one string, not a tuple of names."""

    name = "hostile_precisions"
    precisions = "highest"


class NameNewline(NumpyAdapter):
    """A name with a trailing newline."""

    name = "hostile_newline\n"
