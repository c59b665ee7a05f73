"""The nearest known bug: each catalogued mistake, planted, is named by its class at 2 layers and
at depth 4, in float32 and float64; a one-entry bug still reads as one wrong entry; and no
mistake is named on correct gradients or where the case cannot tell it from them."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from adapters.example import adapter as example
from reference.activations import CATALOGUE
from reference.bounds import bounds
from reference.compare import WRONG, diagnose
from reference.mistakes import MISTAKES, Mistake, Variant, named, nearest
from reference.network import gradients
from reference.simulate import simulate
from tests.engine.matrix import CASES, PAIRS, Spec, draw
from tests.fixtures import planted

SPECS = (Spec((16, 16, 10), 8, 0, ("tanh", "sigmoid")),
         Spec((784, 16, 16, 16, 10), 8, 0, ("relu", "tanh", "sigmoid", "softplus")))
"""A 2-layer and a 4-layer net, each with a square weight (a transpose keeps its shape) and
alike middle layers at depth 4 (a swap keeps every shape)."""


def reading(adapter, spec: Spec, dtype: str):
    """Return the diagnosis of the adapter's gradients on the spec's case, as the suite reads it."""
    case = draw(spec)
    got, ref = adapter.gradients(case, dtype, "cpu"), gradients(case)
    bounds_of = functools.cache(functools.partial(bounds, case))
    diag = diagnose(got, ref, dtype, bounds_of, functools.partial(simulate, case), case=case)
    return named(diag, case, got, ref, bounds_of(dtype)), got


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("name", sorted(planted.KNOWN))
def test_each_planted_mistake_is_named_by_its_class(name, spec, dtype):
    """The reading names the planted class (and, for a factor, says it), never a bare count."""
    adapter, mistake = planted.KNOWN[name]
    diag, _ = reading(adapter(), spec, dtype)
    if adapter in (planted.SwappedMiddle, planted.MissingPrimeMiddle) and spec.depth < 3:
        assert not diag.fails, str(diag)  # it breaks middle layers only: a 2-layer net is right
        return
    assert diag.reads == WRONG and diag.mistake, str(diag)
    case = draw(spec)
    match = nearest(case, adapter().gradients(case, dtype, "cpu"), gradients(case),
                    bounds(case, dtype))
    assert mistake in match.names and str(diag) == match.label
    if mistake in ("mean-batch", "mean-outputs", "mean-both", "half", "twice", "sign"):
        assert str(diag).startswith("every entry is ")


def test_the_factor_reads_as_the_issue_asks():
    """A cost averaged over the outputs of 784-16-10 reads its factor and its cause."""
    diag, _ = reading(planted.MeanOutputs(), Spec((784, 16, 10), 32, 0, ("relu", "sigmoid")),
                      "float64")
    assert str(diag) == ("every entry is 0.1× the reference: the cost is averaged over the 10 "
                         "outputs (C/n_L)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_one_entry_bug_reads_one_wrong_entry(dtype):
    """One entry shifted is no catalogued mistake: `wrong gradient: 1 entry`, on every case."""
    for name in CASES:
        spec = Spec(*CASES[name], 0, PAIRS[name][0])
        case = draw(spec)
        got = example.gradients(case, dtype, "cpu")
        i = np.unravel_index(np.argmax(np.abs(got["W1"])), got["W1"].shape)
        got["W1"][i] *= 1 + (1e-9 if dtype == "float64" else 1e-3)
        ref = gradients(case)
        bounds_of = functools.cache(functools.partial(bounds, case))
        diag = named(diagnose(got, ref, dtype, bounds_of, functools.partial(simulate, case)),
                     case, got, ref, bounds_of(dtype))
        assert str(diag) == "wrong gradient: 1 entry", (name, str(diag))


def test_correct_gradients_and_indistinguishable_mistakes_are_never_named():
    """On every default case, the reference itself and the example adapter's gradients match no
    mistake; a mistake the case cannot tell apart (the first sample of a batch of 1, σ′ left out
    of an identity layer, ½·2) is not named, though its planted adapter returns it."""
    for name in CASES:
        for sigmas in PAIRS[name]:
            case = draw(Spec(*CASES[name], 0, sigmas))
            ref = gradients(case)
            for dtype in ("float32", "float64"):
                b = bounds(case, dtype)
                assert nearest(case, ref, ref, b) is None
                assert nearest(case, example.gradients(case, dtype, "cpu"), ref, b) is None
    chain = draw(Spec((1, 1, 1), 1, 0, ("sigmoid", "sigmoid")))
    got = planted.BiasFirstSample().gradients(chain, "float64", "cpu")
    assert nearest(chain, got, gradients(chain), bounds(chain, "float64")) is None


def test_the_catalogue_extends():
    """A mistake added to the tuple is tried like the built-in ones and named by its sentence."""
    case = draw(SPECS[0])
    ref = gradients(case)
    thirds = Mistake("thirds", lambda bp, seen: iter([Variant(
        {k: v / 3 for k, v in bp.ref.items()}, {}, 1 / 3)]), "the cost is divided by 3")
    got = {k: v / 3 for k, v in ref.items()}
    assert nearest(case, got, ref, bounds(case, "float64")) is None
    match = nearest(case, got, ref, bounds(case, "float64"), (*MISTAKES, thirds))
    assert match.names == ("thirds",) and match.label.endswith("the cost is divided by 3")


def test_a_framework_deviation_is_no_known_bug():
    """torch's softplus (z itself above 20) on the saturated case fails W1 … b2 by up to 160×
    the tier, yet matches no mistake: a tensor a mistake leaves right must pass the tier."""
    softplus = CATALOGUE["softplus"]
    torch_like = dataclasses.replace(
        softplus, f=lambda z: np.where(z > 20, z, softplus.f(z)),
        df=lambda z: np.where(z > 20, 1.0, softplus.df(z)))
    for seed in range(3):
        case = draw(Spec((16, 8, 4), 4, seed, ("sigmoid", "softplus"), saturate=25))
        ref = gradients(case)
        CATALOGUE["softplus"] = torch_like
        try:
            got = gradients(case)
        finally:
            CATALOGUE["softplus"] = softplus
        b = bounds(case, "float64")
        assert any(np.any(np.abs(got[k] - ref[k]) > b[k]) for k in ref)
        assert nearest(case, got, ref, b) is None


def test_of_two_factors_inside_the_tier_the_nearer_is_named():
    """Two factor mistakes both inside a float32 tier wider than their gap (10⁻⁸ and 1.2·10⁻⁸
    of the reference): the one nearer the fitted factor is named, alone."""
    case = draw(SPECS[0])
    ref = gradients(case)

    def scaled(c):
        return lambda bp, seen: iter([Variant({k: c * v for k, v in bp.ref.items()}, {}, c)])

    near, far = (Mistake("near", scaled(1e-8), "near"), Mistake("far", scaled(1.2e-8), "far"))
    got = {k: (1e-8 * v).astype(np.float32) for k, v in ref.items()}
    match = nearest(case, got, ref, bounds(case, "float32"), (far, near))
    assert match.names == ("near",)


def test_a_known_bug_outranks_an_arithmetic_fit_of_half_its_errors():
    """On the saturated relu-sigmoid case a flipped sign's errors lie in the few directions of
    Δz, and a tf32 fit in ∂W2 explained half of them: the catalogue, whose match holds every
    entry within the tier, names it (a reduced-arithmetic reading with failing entries is
    tried against the catalogue, `reference.mistakes.open_to`)."""
    spec = Spec((16, 8, 4), 4, 0, ("relu", "sigmoid"), 0, 25)
    diag, _ = reading(planted.SignFlipped(), spec, "float32")
    assert diag.reads == WRONG and str(diag).startswith("every entry is "), str(diag)


SATURATED = [Spec((16, 8, 4), 4, seed, ("relu", "sigmoid"), saturate=25) for seed in range(4)]


@pytest.mark.parametrize("spec", SATURATED, ids=lambda s: s.id)
def test_prime_left_out_of_a_saturated_float32_run_is_named(spec):
    """relu′ left out of layer 1 on the saturated case, float32: the dead units' rows are
    nonzero where the reference holds them exact, and computed as the live rows are, whose tier
    is 10⁵ of themselves there (σ′ of a sigmoid output may be taken as 0 in float32). The rows
    carry their live neighbours' share: named, not `wrong gradient: 68 entries`."""
    diag, _ = reading(planted.PrimeMissing(), spec, "float32")
    assert diag.mistake and "σ′ of layer 1 (relu) is left out" in diag.mistake, str(diag)


@pytest.mark.parametrize("spec", SATURATED, ids=lambda s: s.id)
@pytest.mark.parametrize("adapter", [planted.RoundedOperands, planted.TruncatedOperands,
                                     planted.TF32Forward, planted.BF16Operands],
                         ids=lambda a: a.name)
def test_reduced_products_on_the_saturated_case_are_no_known_bug(adapter, spec):
    """tf32 and bf16 products, float32, saturated: the float32 tier takes in any value of the
    rows whose σ′ rounds to 0, so a permutation fixing one failing row once matched through the
    floor of its fixed row. An entry a mistake leaves as it is keeps the reference's tier."""
    diag, _ = reading(adapter(), spec, "float32")
    assert diag.mistake is None, str(diag)


@pytest.mark.parametrize("seed", range(4))
def test_prime_left_out_near_zero_is_the_mistake_not_a_float32_operation(seed):
    """Parameters × 2⁻¹²: tanh′ = 1 − z² differs from 1 by less than a float32 ulp, so tanh′
    left out also reads as a float32-accurate σ′; the mistake, matched within the float64 tier
    of its own gradients, is the reading."""
    spec = Spec((16, 8, 4), 4, seed, ("tanh", "tanh"), scale=12)
    diag, _ = reading(planted.PrimeMissing(), spec, "float64")
    assert diag.mistake and "σ′ of layer 1 (tanh) is left out" in diag.mistake, str(diag)
