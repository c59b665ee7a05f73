"""The suite run on planted bugs: each is flagged on the tensors it breaks, correct code passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")


def run_suite(pytester: pytest.Pytester, *args: str) -> tuple[dict[str, str], dict[str, str]]:
    """Run the conformance suite in-process; return each item's outcome and failure message."""
    result = pytester.runpytest_inprocess(CONFORMANCE, "-p", "no:randomly", "-rA", *args)
    outcomes, messages = {}, {}
    for rep in result.reprec.getreports("pytest_runtest_logreport"):
        item_id = rep.nodeid.split("[", 1)[1][:-1]
        if rep.when == "call" or rep.outcome != "passed":
            outcomes[item_id] = rep.outcome
        if rep.failed:
            messages[item_id] = str(rep.longrepr)
    return outcomes, messages


def failed(outcomes: dict[str, str]) -> set[str]:
    return {k for k, v in outcomes.items() if v == "failed"}


def test_correct_example_adapter_passes(pytester):
    """The NumPy example adapter, loaded with --adapter, passes the whole default matrix."""
    outcomes, _ = run_suite(pytester, "--adapter", "adapters.example:adapter")
    assert outcomes and set(outcomes.values()) == {"passed"}



def test_sums_in_the_least_accurate_order_pass(pytester):
    """Matrix products summed term by term without FMA (the order with the largest rounding
    error a device may choose) pass the default matrix, all pairs, and batch 1024."""
    for matrix_args in ((), ("--pairs", "all", "--sizes", "784x16x10", "--batches", "1024")):
        outcomes, messages = run_suite(pytester, "--frameworks=", "--adapter",
                                       "tests.fixtures.planted:SequentialSums", *matrix_args)
        assert outcomes and set(outcomes.values()) == {"passed"}, messages

def groups(items, marker: str) -> set[str]:
    """Return the groups (an item id less its tensor) of the items whose id holds `marker`."""
    return {k.rsplit("-", 1)[0] for k in items if marker in k}


def last_weights(item_id: str) -> str:
    """Return the name of an item's last-layer weights: W2 on 784x16x10, W4 on 784x64x32x16x10."""
    sizes = re.search(r"-(\d+(?:x\d+)+)-b\d+-s\d+-", item_id).group(1)
    return f"W{sizes.count('x')}"


def test_missing_prime_breaks_w2_only(pytester):
    """(22) as printed is flagged on every W2 item (WL on the deep case) and nowhere else."""
    outcomes, _ = run_suite(pytester, "--adapter", "tests.fixtures.planted:MissingPrime")
    assert failed(outcomes) == {k for k in outcomes if k.endswith(f"-{last_weights(k)}")}
    assert any(k.endswith("-W4") for k in failed(outcomes))


DEEP = ("--frameworks=", "--sizes", "784x16x16x16x10", "--batches", "8", "--activations",
        "relu-tanh-sigmoid-softplus")
"""A deep case whose middle layers 2 and 3 are alike (16×16), so a swap keeps every shape."""


def test_missing_prime_in_a_middle_layer_breaks_that_layer_only(pytester):
    """σ′ lost in layer 2's own gradients of a 4-layer net: W2 and b2 fail, in both dtypes,
    each naming its worst entries in W2 or b2; W1, W3, b3, W4, b4 and b1 pass."""
    outcomes, messages = run_suite(pytester, *DEEP, "--adapter",
                                   "tests.fixtures.planted:MissingPrimeMiddle")
    assert len(outcomes) == 2 * 8
    assert failed(outcomes) == {k for k in outcomes if k.endswith(("-W2", "-b2"))}
    for k, message in messages.items():
        tensor = k.rsplit("-", 1)[1]
        assert re.search(rf"{tensor}: \d+ of \d+ entries .* outside their bound", message)
        assert re.search(rf"  {tensor}\[\d+(, \d+)?\]: got", message), message


def test_swapped_middle_layers_break_those_layers_only(pytester):
    """Layers 2 and 3's gradients returned swapped (same shapes): W2, b2, W3, b3 fail and
    nothing else, on the deep case; the 2-layer cases it cannot swap pass."""
    outcomes, _ = run_suite(pytester, *DEEP, "--adapter", "tests.fixtures.planted:SwappedMiddle")
    assert failed(outcomes) == {k for k in outcomes if k.endswith(("-W2", "-b2", "-W3", "-b3"))}
    outcomes, _ = run_suite(pytester, "--adapter", "tests.fixtures.planted:SwappedMiddle",
                            "--cases", "small,chain")
    assert outcomes and set(outcomes.values()) == {"passed"}


def test_missing_prime_breaks_the_last_layer_at_any_depth(pytester):
    """(22) as printed on a 4-layer net: W4 only."""
    outcomes, _ = run_suite(pytester, *DEEP, "--adapter", "tests.fixtures.planted:MissingPrime")
    assert failed(outcomes) == {k for k in outcomes if k.endswith("-W4")}


def test_a_two_layer_only_adapter_skips_deeper_cases_with_one_reason(pytester):
    """A contract-v1 adapter (case.W1 … case.sigma2) passes the 2-layer cases, nearzero too,
    and its deeper cases are skipped, every item with the one reason that says why; the run
    exits 0, under --require-frameworks too (nothing is missing from the machine)."""
    for require in ((), ("--require-frameworks",)):
        result = pytester.runpytest_inprocess(CONFORMANCE, "--adapter",
                                              "tests.fixtures.planted:TwoLayerOnly", "--cases",
                                              "small,nearzero,deep", "-rs", *require)
        assert result.ret == 0
        deep = 2 * 8  # float32 and float64, W1 … b4
        result.assert_outcomes(passed=2 * (4 + 4), skipped=deep)
        result.stdout.fnmatch_lines([
            f"SKIPPED [[]{deep}[]] *: adapter 'two_layer_only' keeps contract v1, two layers only "
            "(it read a 2-layer field (planted.py:*)): its cases of another depth are "
            "skipped; read case.layers to run them (adapters/README.md)"])


def test_mean_loss_breaks_every_tensor_where_mean_differs_from_sum(pytester):
    """A mean-reduced cost fails every item except the 1-1-1 chain at batch 1 (mean = sum), and
    each failure names it with its factor (reference/mistakes.py); on the saturated case every
    group fails, though a tensor whose entries lie below the tier's floor may not (a float32
    σ′ of a saturated sigmoid ≈ 10⁻¹¹, under its budget of 8u: 1 − σ rounds to 0 there)."""
    outcomes, messages = run_suite(pytester, "--adapter", "tests.fixtures.planted:MeanLoss")
    broken = {k for k in outcomes if "-1x1x1-b1-" not in k}
    assert {k for k in broken if "-z25-" not in k} <= failed(outcomes) <= broken
    assert groups(outcomes, "-z25-") == groups(failed(outcomes), "-z25-") != set()
    for k, message in messages.items():
        B, n = re.search(r"x(\d+)-b(\d+)-s\d+-", k).group(2, 1)
        mean = "the batch and the outputs" if B != "1" else f"the {n} outputs"
        assert (f"errors consistent with: every entry is {1 / (int(B) * int(n)):.4g}× the "
                f"reference: the cost is averaged over {mean}") in message, k


def test_float32_leak_breaks_float64(pytester):
    """float32 arithmetic where float64 was asked fails every float64 item, no float32 one;
    on the saturated case every float64 group fails, though a tensor below the tier's floor
    (entries under the activations' budgets) may not tell float32 from float64."""
    outcomes, messages = run_suite(pytester, "--adapter", "tests.fixtures.planted:Float32Leak")
    float64 = {k for k in outcomes if "-float64-" in k}
    assert {k for k in float64 if "-z25-" not in k} <= failed(outcomes) <= float64
    assert groups(float64, "-z25-") == groups(failed(outcomes), "-z25-") != set()
    assert "errors consistent with: float32" in next(iter(messages.values()))


def test_one_entry_off_by_1e9_is_named(pytester):
    """A relative 1e-9 on one float64 entry of W1 fails exactly the float64 W1 items, by index."""
    outcomes, messages = run_suite(pytester, "--adapter", "tests.fixtures.planted:OffByOneEntry")
    w1 = {k for k in outcomes if "-float64-" in k and k.endswith("-W1")}
    # on the saturated case W1 may lie below the tier's floor: 1e-9 of it is invisible there
    assert {k for k in w1 if "-z25-" not in k} <= failed(outcomes) <= w1
    for message in messages.values():
        assert re.search(r"1 of \d+ entries .* outside their bound", message)
        assert re.search(r"W1\[\d+, \d+\]: got .* ref .* bound .* ratio", message)


@pytest.mark.parametrize("planted,reads", [
    ("RoundedOperands", "tf32"), ("TruncatedOperands", "tf32"), ("BF16Operands", "bfloat16"),
    ("TruncatedBF16Operands", "bfloat16")])
def test_reduced_operands_fail_every_float32_item_and_say_so(pytester, planted, reads):
    """Products on operands rounded or truncated to TF32 or bf16 fail every float32 item (the
    group's field of errors matches the simulation, in bound or not), each saying what ran;
    float64 passes."""
    outcomes, messages = run_suite(pytester, "--adapter", f"tests.fixtures.planted:{planted}")
    bad = failed(outcomes)
    float32 = {k for k in outcomes if "-float32-" in k}
    assert {k for k in float32 if "-784x" in k} <= bad <= float32
    # a reading needs evidence: the wide nets name the arithmetic; a small one (the 2-row
    # chain, 5-4-3 at batch 3) may read a wrong gradient, never another arithmetic
    wide = {k for k in bad if "-784x" in k and "-b1-" not in k}
    assert wide and all(re.search(f"errors consistent with: {reads} .*float32 was asked",
                                  messages[k]) for k in wide)
    # the saturated case fails every float32 item, but its reading is not claimed: where the
    # output layer's σ′ is e^−|z|, the errors lie in the few dimensions of Δz, where another
    # arithmetic's rounding fits too (tf32 has read bfloat16 there)
    assert {k for k in float32 if "-z25-" in k} <= bad
    assert all(re.search(f"errors consistent with: ({reads} |wrong gradient)", messages[k])
               for k in bad if "-z25-" not in k)


@pytest.mark.parametrize("planted,tensor,reason", [
    ("Raises", None, r"adapter 'planted_raises' raised while computing [Wb][1-4]: "
                     r"RuntimeError: planted failure inside the adapter \(planted.py:\d+\)"),
    ("ReturnsNaN", "b1", r"adapter 'planted_nan' returned b1 with 1 NaN/Inf of \d+ entries "
                   r"\(first at b1\[0\]\)"),
    ("WrongShape", "W1", r"adapter 'planted_wrong_shape' returned W1 with shape \(\d+, \d+\), "
                         r"expected \(\d+, \d+\)"),
    ("MissingTensor", "b2", r"adapter 'planted_missing' returned no b2 \(it returned W1, b1, W2"
                            r"(, W3, b3, W4, b4)?\)"),
])
def test_contract_breaks_fail_one_line_and_run_goes_on(pytester, planted, tensor, reason):
    """A broken adapter fails its items with a one-line reason; every other item still runs."""
    outcomes, messages = run_suite(pytester, "--adapter", f"tests.fixtures.planted:{planted}",
                         "--adapter", "adapters.example:adapter")
    broken = {k for k in outcomes if k.startswith("planted_")
              and (tensor is None or k.endswith(f"-{tensor}"))}
    assert failed(outcomes) == broken and broken
    assert all(v == "passed" for k, v in outcomes.items() if k not in broken)
    for k in broken:
        message = messages[k]
        assert re.fullmatch(reason, message.strip()), message


def test_reproduce_line_runs_the_failing_item_again(tmp_path):
    """The failure's `reproduce:` command, pasted into a shell, runs that one item and fails it."""
    base = [sys.executable, "-m", "pytest", CONFORMANCE, "-p", "no:randomly", "--adapter",
            "tests.fixtures.planted:OffByOneEntry", "--cases", "small", "--dtypes", "float64",
            "-n", "2", "--dist", "loadgroup"]
    first = subprocess.run(base, cwd=ROOT, capture_output=True, text=True)
    line = next(ln for ln in first.stdout.splitlines() if "reproduce: " in ln)
    command = line.split("reproduce: ", 1)[1]
    assert "@" not in command and "--adapter tests.fixtures.planted:OffByOneEntry" in command
    again = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)
    assert "1 failed" in again.stdout and "passed" not in again.stdout.splitlines()[-1]
