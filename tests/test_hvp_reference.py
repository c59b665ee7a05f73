"""Check the reference H·v (reference/hvp.py) against the Hessian of tiny nets assembled entry by
entry without rounding, and against finite differences of the reference gradients; and its
bounds (reference/hvp_bounds.py) against the known second-order mistakes."""

from __future__ import annotations

import dataclasses

import mpmath as mp
import numpy as np
import pytest

from reference.bounds import bounds
from reference.case import Layer, make_case, tensors
from reference.hvp import (
    check_direction,
    direction,
    flatten,
    hvp,
    hvp_deep,
    literal_hessian,
    mistakes,
)
from reference.hvp_bounds import hvp_bounds, hvp_ceiling
from reference.hvp_simulate import simulate_hvp
from reference.network import gradients
from tests.engine import matrix
from tests.test_activations import EXACT

TINY = [  # every activation at 2 layers and at depth ≥ 3
    ((3, 3, 2), 2, ("sigmoid", "tanh")),
    ((3, 3, 2), 2, ("relu", "softplus")),
    ((3, 2, 3), 3, ("identity", "sigmoid")),
    ((2, 3, 2, 2), 2, ("relu", "softplus", "sigmoid")),
    ((2, 2, 2, 2, 2), 3, ("identity", "tanh", "relu", "sigmoid")),
]
TINY_IDS = ["-".join(s) + "-" + "x".join(map(str, n)) for n, _, s in TINY]


def _ratio(diff: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Return diff / bound, 0 where diff is 0 (an exact zero is right under a zero bound)."""
    return np.divide(diff, bound, out=np.zeros_like(diff), where=diff != 0)


def _exact(name: str):
    """Return σ, σ′, σ″ of `name` in mpmath, as the activation tests take them."""
    return EXACT[name]


@pytest.mark.parametrize("sizes,batch,sigmas", TINY, ids=TINY_IDS)
def test_hvp_is_the_exact_hessian_times_v(sizes, batch, sigmas):
    """The float64 R-pass agrees with H·v, H assembled entry by entry on hyper-dual numbers in
    40 digits with the exact σ, σ′, σ″, to within its own float64 bound; the Hessian is
    symmetric; and every known mistake is told apart from it."""
    case = make_case(sizes, batch, 0, *sigmas)
    v = direction(case)
    with mp.workdps(40):
        H = literal_hessian(case, mp.mpf, _exact)
        Hv = H.dot(np.array([mp.mpf(float(t)) for t in flatten(case, v)], dtype=object))
        exact = np.array([float(t) for t in Hv])
        assert all(H[p, q] == H[q, p] for p in range(len(H)) for q in range(p))
    ref, bound = flatten(case, hvp(case, v)), flatten(case, hvp_bounds(case, v, "float64"))
    ratio = _ratio(np.abs(ref - exact), bound)
    assert ratio.max() <= 1.0, f"ratio {ratio.max():.3g} at flat entry {ratio.argmax()}"
    for name, fn, _ in mistakes(case):
        wrong = _ratio(np.abs(flatten(case, fn(case, v)) - exact), bound)
        assert wrong.max() > 1e3, f"{name} is within {wrong.max():.3g} bounds of the truth"


@pytest.mark.parametrize("sigmas", [("sigmoid", "tanh"), ("relu", "softplus"), ("tanh", "relu")])
def test_two_layer_r_pass_is_the_deep_one_bit_for_bit(sigmas):
    """The R-pass written out for (15)–(29) and the layer-by-layer one compute the same bits."""
    for batch in (1, 5):
        case = make_case((784, 16, 10), batch, 3, *sigmas)
        v = direction(case)
        two, deep = hvp(case, v), hvp_deep(case, v)
        assert all(np.array_equal(two[k], deep[k]) for k in two), case.id


def _shifted(case, v, t: float):
    """Return the case with parameters θ + t·v (exact for t a small power of two)."""
    layers = tuple(Layer(la.W + t * v[f"W{i}"], la.b + t * v[f"b{i}"], la.sigma)
                   for i, la in enumerate(case.layers, start=1))
    return dataclasses.replace(case, layers=layers)


def _central(case, v, h: float) -> tuple[dict, dict]:
    """Return the central difference (g(θ + hv) − g(θ − hv))/2h and its rounding bound."""
    plus, minus = _shifted(case, v, h), _shifted(case, v, -h)
    gp, gm = gradients(plus), gradients(minus)
    ep, em = bounds(plus, "float64"), bounds(minus, "float64")
    return ({k: (gp[k] - gm[k]) / (2 * h) for k in gp},
            {k: (ep[k] + em[k]) / (2 * h) for k in gp})


@pytest.mark.parametrize("sizes,batch,sigmas", [
    ((784, 16, 10), 4, ("sigmoid", "softplus")),
    ((784, 16, 10), 4, ("tanh", "identity")),
    ((20, 16, 12, 10), 3, ("softplus", "tanh", "sigmoid")),
], ids=["sigmoid-softplus-784x16x10", "tanh-identity-784x16x10", "softplus-tanh-sigmoid-deep"])
def test_hvp_matches_finite_differences_of_the_gradient(sizes, batch, sigmas):
    """Richardson's extrapolation R(h) = (4D(h) − D(2h))/3 of central differences D of the
    reference gradient along v agrees with H·v: its truncation, −4h⁴B per entry, is bounded by
    |R(2h) − R(h)| = 60h⁴|B| (15 times over), its rounding by the gradients' float64 bounds
    divided by the step, and the R-pass's own error by its float64 bound."""
    case = make_case(sizes, batch, 0, *sigmas)
    v, h = direction(case), 2.0**-6
    (D1, e1), (D2, e2), (D4, e4) = (_central(case, v, k * h) for k in (1, 2, 4))
    ref, own = hvp(case, v), hvp_bounds(case, v, "float64")
    for k in tensors(case.depth):
        R1, R2 = (4 * D1[k] - D2[k]) / 3, (4 * D2[k] - D4[k]) / 3
        rounding = (4 * e1[k] + e2[k]) / 3 + (4 * e2[k] + e4[k]) / 3
        tol = np.abs(R2 - R1) + rounding + (4 * e1[k] + e2[k]) / 3 + own[k]
        ratio = _ratio(np.abs(R1 - ref[k]), tol)
        where = np.unravel_index(ratio.argmax(), ratio.shape)
        assert ratio.max() <= 1.0, f"{k}: ratio {ratio.max():.3g} at {where}"
        assert np.median(tol / np.abs(ref[k])) < 1e-4, f"{k}: the check is too loose to mean much"


def test_the_float32_tier_catches_each_mistake_and_one_entry_off():
    """On the seed's net with a curved σ in each layer, every known mistake and a single entry
    off by 10⁻⁴ of itself are outside the float32 bound; the bound never exceeds the ceiling."""
    case = make_case((784, 16, 10), 8, 0, "tanh", "sigmoid")
    v = direction(case)
    ref, bound, top = hvp(case, v), hvp_bounds(case, v, "float32"), hvp_ceiling(case, v, "float32")
    for k in ref:
        assert np.all(bound[k] <= top[k])
    for name, fn, _ in mistakes(case):
        got = fn(case, v)
        worst = max(np.max(_ratio(np.abs(got[k] - ref[k]), bound[k])) for k in ref)
        assert worst > 10, f"{name}: only {worst:.3g} bounds off"
    for k in ref:
        i = np.unravel_index(np.argmax(np.abs(ref[k])), ref[k].shape)
        assert 1e-4 * abs(ref[k][i]) > bound[k][i], f"{k}{list(i)}: 1e-4 of it is within bound"


def test_direction_is_drawn_from_the_seed_exactly_representable():
    """v has the parameters' names and shapes, is float32-exact, never zero, the same for the
    same case, another for another seed, and not the parameters' own draw."""
    case = make_case((5, 4, 3, 2), 3, 7, "tanh", "relu", "sigmoid")
    v = direction(case)
    check_direction(case, v)
    same = direction(make_case((5, 4, 3, 2), 3, 7, "relu", "relu", "relu"))  # σs draw nothing
    assert list(v) == list(tensors(3))
    for k, t in v.items():
        assert np.array_equal(t.astype(np.float32).astype(np.float64), t)
        assert np.any(t != 0) and not np.array_equal(t, case.params[k])
        assert np.array_equal(t, same[k])
    other = direction(make_case((5, 4, 3, 2), 3, 8, "tanh", "relu", "sigmoid"))
    assert not np.array_equal(other["W1"], v["W1"])


def test_a_wrong_direction_is_named_in_one_line():
    """A direction missing a tensor, or of the wrong shape, raises naming what was wrong."""
    case = make_case((5, 4, 3), 3, 0, "tanh", "relu")
    v = direction(case)
    with pytest.raises(ValueError, match=r"direction keys \['W1', 'W2', 'b2'\]"):
        hvp(case, {k: t for k, t in v.items() if k != "b1"})
    with pytest.raises(ValueError, match=r"W2 has shape \(4, 3\), the parameter \(3, 4\)"):
        hvp_bounds(case, {**v, "W2": v["W2"].T}, "float32")
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        hvp_bounds(case, v, "float16")


@pytest.mark.parametrize("name", list(matrix.CASES))
def test_float32_r_pass_stays_within_the_tier_and_tf32_does_not(name):
    """NumPy's own float32 R-pass on each default case (every σ tuple the matrix runs it with)
    is a correct float32 H·v: inside the tier; the same with every product in TF32 is not
    (the cases whose products are all shorter than TF32 can show aside)."""
    sizes, batch = matrix.CASES[name]
    for sigmas in matrix.PAIRS[name]:
        case = matrix.draw(matrix.Spec(sizes, batch, 0, sigmas, matrix.SCALES.get(name, 0)))
        v = direction(case)
        ref, bound = hvp(case, v), hvp_bounds(case, v, "float32")
        for arithmetic in ("float64", "float32", "tf32"):
            got = simulate_hvp(case, v, arithmetic)
            worst = max(np.max(_ratio(np.abs(got[k] - ref[k]), bound[k])) for k in ref)
            if arithmetic != "tf32":
                assert worst <= 1.0, f"{case.id} {arithmetic}: ratio {worst:.3g}"
            elif max(sizes) >= 784:
                assert worst > 1.0, f"{case.id}: TF32 within the float32 tier ({worst:.3g})"


def test_float32_r_pass_of_alike_samples_stays_within_the_tier():
    """Seven sigmoid layers make the samples alike and the batch sums add a few values over
    and over (reference.bounds._bias): NumPy's float32 H·v there is still correct."""
    case = make_case((784, *(64,) * 7, 10), 4096, 0, *("sigmoid",) * 8)
    v = direction(case)
    ref, bound = hvp(case, v), hvp_bounds(case, v, "float32")
    got = simulate_hvp(case, v, "float32")
    worst = {k: float(np.max(_ratio(np.abs(got[k] - ref[k]), bound[k]))) for k in ref}
    assert max(worst.values()) <= 1.0, worst
