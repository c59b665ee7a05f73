"""Adapters that ask for a process of their own (`process = "own"`, tests/engine/isolation.py):
frameworks that pick a backend once per process share a run, under -n 0 and -n 2."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

BACKEND = """
import os

picked = os.environ["FAKE_BACKEND"]  # like Keras 3: the backend is read once, at import
"""

ADAPTERS = """
import importlib
import os
import sys
import time

from adapters.example import NumpyAdapter


class OnBackend(NumpyAdapter):
    framework = "numpy"
    process = {process!r}

    def gradients(self, case, dtype, device):
        os.environ.setdefault("FAKE_BACKEND", self.backend)
        fake = importlib.import_module("fakebackend")
        if fake.picked != self.backend:
            raise RuntimeError(f"fakebackend already runs on {{fake.picked}}")
        if self.backend == "crash" and case.batch == 3:
            os._exit(3)  # a native crash, on one case only
        if self.backend == "sleep" and case.batch == 3:
            time.sleep(60)  # stuck in one call
        if self.backend == "writer":
            case.layers[0].W.base.setflags(write=True)
            case.layers[0].W.base[0, 0] += 1
        return super().gradients(case, dtype, device)


class Jax(OnBackend):
    name, backend = "on_jax", "jax"


class Torch(OnBackend):
    name, backend = "on_torch", "torch"


class Crash(OnBackend):
    name, backend = "on_crash", "crash"


class Sleeper(OnBackend):
    name, backend = "on_sleep", "sleep"


class Writer(OnBackend):
    name, backend = "on_writer", "writer"


class TwoLayers:
    name, framework, process = "two_layers", "numpy", "own"

    def gradients(self, case, dtype, device):
        return {{"W1": case.W1}}
"""

MATRIX = ("--cases", "chain,small,deep", "--dtypes", "float64", "-p", "no:randomly", "-rs")


def make(pytester: pytest.Pytester, process: str | None) -> None:
    pytester.makepyfile(fakebackend=BACKEND, backends=ADAPTERS.format(process=process))
    pytester.syspathinsert()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the suite in a subprocess (xdist, and no module cache shared with this process)."""
    from tests.test_planted import CONFORMANCE

    return pytester.runpytest_subprocess(CONFORMANCE, *MATRIX, *args, timeout=600)


def adapters(*names: str) -> list[str]:
    return [a for n in names for a in ("--adapter", f"backends:{n}")]


def test_two_backends_cannot_share_a_process(pytester):
    """Without `process = "own"` the second backend fails every item: the fake framework, like
    Keras 3, runs on the backend of its first import."""
    make(pytester, None)
    result = run(pytester, *adapters("Jax", "Torch"), "-n", "0")
    result.assert_outcomes(passed=16, failed=16)
    result.stdout.fnmatch_lines(["*fakebackend already runs on jax*"])


@pytest.mark.parametrize("workers", ["0", "2"])
def test_adapters_in_their_own_processes_share_a_run(pytester, workers):
    """Two backends, each `process = "own"`, beside a built-in-like adapter in the suite's
    process: every item passes, under -n 0 and -n 2."""
    make(pytester, "own")
    result = run(pytester, *adapters("Jax", "Torch"), "--adapter", "adapters.example:adapter",
                 "-n", workers)
    result.assert_outcomes(passed=3 * 16)


def test_a_crash_in_its_own_process_costs_only_its_call(pytester):
    """An adapter that kills its own process fails that call's items, naming how it died; its
    other cases run in a new process."""
    make(pytester, "own")
    result = run(pytester, *adapters("Crash"), "-n", "0")
    result.assert_outcomes(passed=4 + 8, failed=4)
    result.stdout.fnmatch_lines(["*adapter 'on_crash' raised while computing W1: its own "
                                 "process died (exit status 3)*"])


def test_a_call_past_the_timeout_is_ended_with_its_process(pytester):
    """--adapter-timeout ends a call stuck in its own process (the process is killed, not left
    running); the adapter's other cases run in a new one."""
    make(pytester, "own")
    result = run(pytester, *adapters("Sleeper"), "--adapter-timeout", "3", "-n", "0")
    result.assert_outcomes(passed=4 + 8, failed=4)
    result.stdout.fnmatch_lines(["*adapter 'on_sleep' did not return within 3 s (call 1 of 2; "
                                 "--adapter-timeout)*"])
    assert result.duration < 40


def test_a_write_into_the_case_is_caught_in_its_own_process(pytester):
    make(pytester, "own")
    result = run(pytester, *adapters("Writer"), "--cases", "chain", "-n", "0")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*adapter 'on_writer' wrote into the case: W1 changed (1 of 1 "
                                 "entries)*"])


def test_a_contract_v1_adapter_in_its_own_process_skips_deeper_cases(pytester):
    """TwoLayerField crosses the process boundary as itself: the skip names the adapter's line."""
    make(pytester, "own")
    result = run(pytester, *adapters("TwoLayers"), "--cases", "deep", "-n", "0")
    result.assert_outcomes(skipped=8)
    result.stdout.fnmatch_lines(["SKIPPED [[]8[]] *: adapter 'two_layers' keeps contract v1, "
                                 "two layers only (it read a 2-layer field (backends.py:*)):*"])


def test_process_must_be_own_or_absent(pytester):
    make(pytester, "shared")
    result = run(pytester, *adapters("Jax"), "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*adapter 'backends:Jax': process must be \"own\" (call it in a "
                                 "process of its own) or absent, got 'shared'"])
