"""Run integrity: an adapter cannot fake a pass, hide nondeterminism, hang the run or break it
before it starts; each fails with one line naming it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from reports.html import render
from tests.fixtures import hostile
from tests.test_planted import CONFORMANCE, ROOT, failed, run_suite

pytest_plugins = ["pytester"]

CHAIN = ("--frameworks=", "--cases", "chain")


def hostile_run(pytester, adapter: str, *args: str) -> tuple[dict, dict]:
    """Run one hostile adapter on the chain case; return outcomes and messages."""
    hostile.CALLS.clear()
    return run_suite(pytester, "--adapter", f"tests.fixtures.hostile:{adapter}", *CHAIN, *args)


@pytest.mark.parametrize("adapter,says", [
    ("WritesThroughMemory", r"adapter 'hostile_writes_w2' wrote into the case: "
                           r"W2 changed \(1 of 1 entries\)"),
    ("CentresInputs", r"adapter 'hostile_centres_x' raised while computing \w+: ValueError: "
                      r".*read-only.*"),
    ("SGDStep", r"adapter 'hostile_sgd_step' wrote into the case: W1 changed \(1 of 1 entries\)"),
])
def test_an_adapter_that_writes_into_the_case_fails_every_item(pytester, adapter, says):
    """Writing into the case, in place or after the gradients, fails every dtype's every item."""
    outcomes, messages = hostile_run(pytester, adapter)
    assert outcomes and failed(outcomes) == set(outcomes)
    for message in messages.values():
        assert re.fullmatch(says, message.strip()), message


def test_the_reference_is_the_pristine_case_whatever_an_adapter_did(pytester):
    """After a writing adapter, a correct one on the same case still passes."""
    outcomes, _ = run_suite(pytester, "--adapter", "tests.fixtures.hostile:SGDStep", "--adapter",
                            "adapters.example:adapter", *CHAIN)
    assert {k for k, v in outcomes.items() if v == "passed"} == {
        k for k in outcomes if k.startswith("numpy-")}


@pytest.mark.parametrize("timing", [(), ("--timing", "3")])
def test_gradients_that_change_between_calls_fail_as_nondeterministic(pytester, timing):
    """×(1 + 1e-3) on every second call fails every item, with or without --timing."""
    outcomes, messages = hostile_run(pytester, "EverySecondCall", *timing)
    assert outcomes and failed(outcomes) == set(outcomes)
    calls = 4 if timing else 2
    for message in messages.values():
        assert re.fullmatch(rf"hostile_every_second-cpu-float\d\d \w+ nondeterministic: 1 of 1 "
                            rf"entries differ between {calls} calls; greatest difference "
                            rf"\S+ × its bound, at \w+\[0(, 0)?\]", message.strip()), message


def test_a_buffer_filled_again_by_the_next_call_is_caught(pytester):
    """Returning one buffer, refilled with other values on the next call, is nondeterminism,
    not a wrong gradient: the first call's gradients are kept as they came."""
    outcomes, messages = hostile_run(pytester, "ReusesBuffer")
    assert outcomes and failed(outcomes) == set(outcomes)
    assert all(" nondeterministic: 1 of 1 entries differ between 2 calls" in m
               for m in messages.values())


def test_a_later_call_of_another_layout_fails_the_group(pytester):
    """A second call that returns another dtype fails every item in one line."""
    outcomes, messages = hostile_run(pytester, "ChangesDtype", "--dtypes", "float64")
    assert outcomes and failed(outcomes) == set(outcomes)
    assert {m.strip() for m in messages.values()} == {
        "adapter 'hostile_changes_dtype' is nondeterministic: call 2 returned W1 as float16 "
        "(1, 1), call 1 as float64 (1, 1)"}


def test_bitwise_differences_within_the_bound_fail_only_under_deterministic(pytester, tmp_path):
    """One ulp on one entry passes and is recorded; --deterministic fails it."""
    results = tmp_path / "r.json"
    outcomes, _ = hostile_run(pytester, "LastBit", "--results", str(results))
    assert outcomes and set(outcomes.values()) == {"passed"}
    items = {i["id"]: i for i in json.loads(results.read_text())["items"]}
    w1 = items["hostile_last_bit-cpu-float64-sigmoid-sigmoid-1x1x1-b1-s0-W1"]["details"]
    assert w1["determinism"]["calls"] == 2 and w1["determinism"]["differing"] == 1
    assert w1["timing"]["first_call_s"] >= 0  # the call's time is the group's, on every item
    assert "nondeterministic: 1 of 1 entries differ bitwise" in render(
        json.loads(results.read_text()))
    outcomes, messages = hostile_run(pytester, "LastBit", "--deterministic")
    assert failed(outcomes) == {k for k in outcomes if k.endswith("-W1")}
    assert all("--deterministic allows none" in m for m in messages.values())


def test_a_raising_adapter_is_called_once_per_group(pytester):
    """sys.exit inside gradients fails the group's items from one call."""
    outcomes, messages = hostile_run(pytester, "Exits", "--dtypes", "float64")
    assert failed(outcomes) == set(outcomes) and len(outcomes) == 4
    assert hostile.CALLS == ["hostile_exits"]
    assert "SystemExit: 3 (hostile.py:" in next(iter(messages.values()))


def test_an_exception_reason_is_its_first_line_capped(pytester):
    """A message that starts with blank lines gives its first non-empty line, cut short."""
    _, messages = hostile_run(pytester, "BlankLines", "--dtypes", "float64")
    for message in messages.values():
        assert re.fullmatch(r"adapter 'hostile_blank_lines' raised while computing \w+: "
                            r"ValueError: the real reason x{400,600}… \(hostile.py:\d+\)",
                            message.strip()), message[:200]


@pytest.mark.parametrize("workers", [(), ("-n", "1")])
def test_an_adapter_past_its_timeout_fails_its_group(pytester, workers):
    """--adapter-timeout ends a call that would take a minute, in the main process or an xdist
    worker; the group fails in one line."""
    outcomes, messages = hostile_run(pytester, "Sleeps", "--dtypes", "float64",
                                     "--adapter-timeout", "0.5", *workers)
    assert failed(outcomes) == set(outcomes) and len(outcomes) == 4
    for message in messages.values():
        assert message.strip() == ("adapter 'hostile_sleeps' did not return within 0.5 s "
                                   "(call 1 of 2; --adapter-timeout)")


def test_an_adapter_that_swallows_its_timeout_still_fails_its_group(pytester):
    """A bare `except:` in a retry loop swallows the first AdapterTimeout: the timeout fires
    again until the call returns, and the group fails as timed out though it returned."""
    start = time.monotonic()
    outcomes, messages = hostile_run(pytester, "SwallowsTimeouts", "--dtypes", "float64",
                                     "--adapter-timeout", "0.5")
    assert time.monotonic() - start < 5  # not the 2 × 10 s of its two calls
    assert failed(outcomes) == set(outcomes) and len(outcomes) == 4
    for message in messages.values():
        assert message.strip() == ("adapter 'hostile_swallows' did not return within 0.5 s "
                                   "(call 1 of 2; --adapter-timeout)")


@pytest.mark.parametrize("adapter,says", [
    ("NeedsArgument", "NeedsArgument() failed: TypeError: "),
    ("InitRaises", "InitRaises() failed: RuntimeError: no GPU driver"),
    ("NameRaises", "reading name raised RuntimeError: name not decided yet"),
    ("PrecisionsString", "precisions must be a tuple of setting names"),
    ("NameNewline", "name must be a lowercase -k-safe string, got 'hostile_newline\\n'"),
])
def test_an_adapter_that_breaks_before_it_runs_is_a_usage_error(pytester, adapter, says):
    """Construction, a raising attribute or a malformed one stop the run naming the adapter."""
    result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter",
                                          f"tests.fixtures.hostile:{adapter}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*'tests.fixtures.hostile:{adapter}': {says}*"])


@pytest.mark.parametrize("body,says", [
    ("import sys\nsys.exit(2)\n", "SystemExit: 2"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
])
def test_an_adapter_module_that_exits_at_import_is_a_usage_error(pytester, body, says):
    """sys.exit or KeyboardInterrupt while importing an adapter is a usage error naming it."""
    pytester.makepyfile(exits_at_import=body)
    result = pytester.run(sys.executable, "-m", "pytest", CONFORMANCE, "--rootdir", str(ROOT),
                          "-c", str(ROOT / "pyproject.toml"), "--adapter",
                          f"{pytester.path / 'exits_at_import.py'}:Adapter")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--adapter '*exits_at_import.py:Adapter': cannot import "
                                 f"*exits_at_import.py: {says}"])


@pytest.mark.parametrize("args,says", [
    (("--sizes", "100000x100000x10"), "--sizes 100000x100000x10 --batches 1: needs about"),
    (("--sizes", ""), "--sizes '': expected e.g."),
    (("--batches", ""), "--batches '': expected e.g."),
    (("--precisions", ","), "--precisions ',': empty"),
    (("--adapter-timeout", "-1"), "--adapter-timeout must be 0 (no limit) or more seconds"),
    (("--adapter-timeout", "nan"), "--adapter-timeout must be 0 (no limit) or more seconds"),
])
def test_empty_or_oversized_options_are_usage_errors(pytester, args, says):
    """A case too large for memory, an empty list or a negative timeout stop the run."""
    result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter", "adapters.example:adapter",
                                          *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{says}*"])


@pytest.mark.parametrize("cases", [("--cases", "chain,chain"), ("--sizes", "1x1x1,01x1x1",
                                                                   "--batches", "1,1")])
def test_repeated_values_are_run_once(pytester, cases):
    """Repeats in --dtypes, --cases, --sizes, --devices, --frameworks and --order collect items
    once."""
    result = pytester.runpytest_inprocess(
        CONFORMANCE, "--frameworks", "torch,torch", "--dtypes", "float64,float64", *cases,
        "--devices", "cpu,cpu", "--order", "2,1,2", "--collect-only", "-q")
    lines = [ln for ln in result.stdout.lines if "::test_gradient[" in ln]
    assert len(lines) == len(set(lines)) == 3 * 4 * 2  # torch's idioms × tensors × orders


def test_reproduce_line_names_the_interpreter_when_python_is_another(tmp_path):
    """With another `python` first on PATH, the reproduce line still runs this interpreter."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\necho 'not the interpreter of the run'\nexit 3\n")
    (fake / "python").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path)}
    base = [sys.executable, "-m", "pytest", CONFORMANCE, "-p", "no:randomly", "--adapter",
            "tests.fixtures.planted:OffByOneEntry", "--cases", "small", "--dtypes", "float64",
            "-k", "W1"]
    first = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, env=env)
    line = next(ln for ln in first.stdout.splitlines() if "reproduce: " in ln)
    command = line.split("reproduce: ", 1)[1]
    again = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True,
                           env=env)
    assert "1 failed" in again.stdout, again.stdout + again.stderr
