"""More precise than asked: float32 gradients computed partly in float64 pass with a note that
names what was float64 (reference/precision.py); correct float32 runs are never noted; the note
reaches the results, the terminal and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adapters.example import NumpyAdapter
from reference.bounds import bounds
from reference.network import gradients
from reference.precision import Precise, read
from reference.simulate import simulate
from reports import study_page
from reports.reading import read as read_results
from tests.engine.matrix import CASES, PAIRS, Spec, _transform, draw
from tests.fixtures import orders, planted

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")


def _specs(seeds) -> list[tuple[str, Spec]]:
    """Return the default matrix's specs at these seeds, each with its case's name."""
    return [(name, Spec(sizes, batch, seed, sigmas, **_transform(name)))
            for name, (sizes, batch) in CASES.items() for sigmas in PAIRS[name]
            for seed in seeds]


def _read(case, got) -> Precise:
    noise = {k: 2 * v for k, v in bounds(case, "float64").items()}
    got = {k: np.asarray(v) for k, v in got.items()}
    return read(case, got, gradients(case), noise, simulate(case, "float32"))


S1 = ("σ′ of layer 1", "σ of layer 2", "σ′ of layer 2")
S4 = ("σ′ of layer 2", "σ of layer 3", "σ′ of layer 3", "σ of layer 4", "σ′ of layer 4")
SEED = ("sigmoid-sigmoid-784x16x10-b1-s0", "softplus-tanh-784x16x10-b1-s0")
MINI = ("relu-sigmoid-784x16x10-b32-s0", "tanh-identity-784x16x10-b32-s0")
DEEP, NEAR = "relu-tanh-sigmoid-softplus-784x64x32x16x10-b8-s0", "tanh-tanh-16x8x4-b4-s0-w2e-12"
EXPECTED = {
    "planted_float64_activation": {
        **{s: Precise((), (), 1, 2, S1) for s in SEED}, **{s: Precise((), (1,)) for s in MINI},
        DEEP: Precise((), (), 1, 4, S4), NEAR: Precise((1,), ())},
    "planted_float64_second_activation": {s: Precise((), (1,)) for s in MINI},
    "planted_float64_products": {s: Precise((), (1,)) for s in MINI},
    "planted_float64_run": {
        **{s: Precise((1, 2), (), 1, 2, S1) for s in SEED}, MINI[0]: Precise((1, 2), ()),
        MINI[1]: Precise((1,), ()), DEEP: Precise((1, 2, 3), (), 1, 4, S4),
        NEAR: Precise((1,), ())},
}
"""What each planted adapter is read as on each default case (seed 0; a case not listed reads
nothing). What cannot be told is not named: at batch 1 a float32 ∂W is one rounding of one
product, as a float64 one is; at batch 32 the 512 columns of z⁽¹⁾'s effect take most of the
698 numbers, so no operation after it shows (only ∂W⁽¹⁾'s product does, off the inputs' span);
relu's σ on a float32 z is exact, so it never shows; the 1-1-1, 5-4-3 and saturated cases hold
too few numbers whose float64 noise is below a float32 rounding. The activation planted in
float64 leaves z⁽¹⁾'s float32 errors in every gradient: only on nearzero (z ≈ 10⁻³, where σ′
hides them) do W1 and b1 agree with one rounding; layer 2's planted in float64 shows only where
layer 1's products do."""


@pytest.mark.parametrize("adapter", list(planted.MORE_PRECISE.values()), ids=lambda a: a.name)
@pytest.mark.parametrize("spec", [s for _, s in _specs([0])], ids=lambda s: s.id)
def test_a_float32_run_computed_in_float64_is_read_so(adapter, spec):
    """Each planted adapter is read as computed in float64 where the case can tell, with the
    layers it ran so, and nothing where it cannot."""
    case = draw(spec)
    found = _read(case, adapter().gradients(case, "float32", "cpu"))
    want = EXPECTED[adapter.name].get(spec.id, Precise((), ()))
    assert (found.whole, found.products, found.after, found.ops) == (
        want.whole, want.products, want.after, want.ops), str(found)


CORRECT = {"numpy": NumpyAdapter, **orders.ORDERS}


@pytest.mark.parametrize("name", ["simulated", *CORRECT])
def test_correct_float32_runs_are_never_noted(name):
    """NumPy's own float32 run and the correct adapters of every summation order are never
    read as more precise, over the default cases at three seeds."""
    noted = []
    for _, spec in _specs(range(3)):
        case = draw(spec)
        got = simulate(case, "float32") if name == "simulated" else CORRECT[name]().gradients(
            case, "float32", "cpu")
        found = _read(case, got)
        if found:
            noted.append(f"{spec.id}: {found}")
    assert not noted, noted


def test_a_one_entry_chain_names_nothing():
    """The 1-1-1 chain's few numbers never name anything, whatever they agree with."""
    case = draw(Spec((1, 1, 1), 1, 0, ("sigmoid", "sigmoid")))
    assert not _read(case, planted.Float64Run().gradients(case, "float32", "cpu"))


def test_the_note_reaches_terminal_results_and_report(pytester):
    """A planted float64 run passes every item; the terminal's summary names the group with its
    note, the results carry it in `note`, and the report and the study's comparison page mark
    it beside the arithmetic."""
    results, report = pytester.path / "r.json", pytester.path / "r.html"
    run = pytester.runpytest_inprocess(
        CONFORMANCE, "-p", "no:cacheprovider", "--frameworks=", "--adapter",
        "tests.fixtures.planted:Float64Run", "--cases", "minibatch", "--dtypes", "float32",
        "--results", str(results), "--report", str(report))
    run.assert_outcomes(passed=8)
    run.stdout.fnmatch_lines([
        "conformance notes: 2 groups more precise than asked (they pass)",
        "  planted_float64_run-cpu-float32-relu-sigmoid-784x16x10-b32-s0: more precise than "
        "asked: W1, b1, W2, b2 agree with float64 arithmetic rounded once to float32"])
    items = [i for i, _ in read_results(results)[1]]  # read back through the schema
    assert {i["note"] for i in items} == {
        "more precise than asked: W1, b1, W2, b2 agree with float64 arithmetic rounded once to "
        "float32", "more precise than asked: W1, b1 agree with float64 arithmetic rounded once "
        "to float32"}
    page = report.read_text()
    assert page.count('<span class="precise" title="more precise than asked') == 1
    assert page.count('<span class="precise"> +</span>') == 2
    runs, _ = read_results(results)
    study = study_page.render({"runs": runs, "items": items})  # a comparison's timings too
    assert ">+ more precise than asked in 2 calls</span>" in study


def test_a_correct_run_has_no_note(pytester):
    """The NumPy adapter's float32 run: no summary line, and no `note` in the results."""
    results = pytester.path / "r.json"
    run = pytester.runpytest_inprocess(
        CONFORMANCE, "-p", "no:cacheprovider", "--frameworks=", "--adapter",
        "adapters.example:adapter", "--dtypes", "float32", "--results", str(results))
    assert run.ret == 0
    assert not [ln for ln in run.outlines if ln.startswith("conformance notes")]
    doc = json.loads(results.read_text())
    assert doc["items"] and not [i for i in doc["items"] if i.get("note")]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_built_in_float32_runs_are_never_noted(framework):
    """Every idiom of the built-in torch and jax adapters, float32 on the CPU, over the default
    cases at three seeds (the soak's draws): no note."""
    pytest.importorskip(framework)
    import adapters

    noted = []
    for adapter in adapters.builtin([framework]):
        for _, spec in _specs(range(3)):
            case = draw(spec)
            found = _read(case, adapter.gradients(case, "float32", "cpu"))
            if found:
                noted.append(f"{adapter.name} {spec.id}: {found}")
    assert not noted, noted


def test_autograds_relu_runs_the_backward_below_it_in_float64():
    """HIPS autograd's vjp of `where` fills with float64 zeros: through the relu of its adapter
    (`anp.where(z > 0, z, 0)`) δ⁽¹⁾ becomes float64 and ∂W1 = δ⁽¹⁾ᵀx is summed in float64, cast
    to float32 at the end. The note says so at batch 32 (at batch 1 a product is one rounding
    either way); with no relu (tanh-identity) nothing is noted."""
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    through = autograd.grad(lambda z: anp.sum(anp.where(z > 0, z, 0)))(
        np.array([-1.0, 2.0], np.float32))
    assert through.dtype == np.float64  # the mechanism, as autograd has it
    from adapters.autograd import Autograd

    for sigmas, want in ((("relu", "sigmoid"), Precise((), (1,))),
                         (("tanh", "identity"), Precise((), ()))):
        case = draw(Spec((784, 16, 10), 32, 0, sigmas))
        found = _read(case, Autograd().gradients(case, "float32", "cpu"))
        assert (found.whole, found.products, found.after) == (
            want.whole, want.products, want.after), str(found)
