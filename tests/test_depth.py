"""Any depth: the case of L layers, the general reference against the 2-layer one bit for bit,
and deep nets against the oracle, finite differences and the loops."""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np
import pytest

from reference.bounds import U, bounds, magnitude_pass, magnitude_pass_deep
from reference.case import TENSORS, Case, Layer, TwoLayerField, make_case, tensors
from reference.compare import REDUCED, diagnose, fit
from reference.network import (
    cost,
    forward,
    forward_deep,
    gradients,
    gradients_deep,
    literal_gradients,
    literal_gradients_deep,
)
from reference.simulate import REDUCED_ARITHMETICS, product, products, simulate
from tests.engine.copies import changes, fresh
from tests.fixtures import oracle
from tests.test_reference import assert_within_own_bound

TWO_LAYER = [
    ((784, 16, 10), 8, "relu", "sigmoid"),
    ((784, 16, 10), 256, "tanh", "identity"),
    ((5, 4, 3), 3, "sigmoid", "tanh"),
    ((6, 3, 2), 2, "softplus", "relu"),
    ((1, 1, 1), 1, "tanh", "softplus"),
]
TWO_IDS = ["{}-{}-{}-b{}".format(s1, s2, "x".join(map(str, n)), b) for n, b, s1, s2 in TWO_LAYER]

DEEP = [
    ((3, 4, 3, 2), 3, ("tanh", "relu", "sigmoid")),
    ((2, 3, 3, 3, 2), 2, ("softplus", "tanh", "identity", "sigmoid")),
    ((4, 3), 3, ("sigmoid",)),
    ((3, 3, 2, 3, 2), 2, ("relu", "softplus", "tanh", "relu")),
]
DEEP_IDS = ["-".join(s) + "-" + "x".join(map(str, n)) + f"-b{b}" for n, b, s in DEEP]


def _deep(spec, seed: int = 0) -> Case:
    sizes, batch, sigmas = spec
    return make_case(sizes, batch, seed, *sigmas)


def _two(spec, seed: int = 0) -> Case:
    sizes, batch, s1, s2 = spec
    return make_case(sizes, batch, seed, s1, s2)


def assert_bitwise(got: dict, want: dict) -> None:
    """Same names in the same order, and every array equal bit for bit."""
    __tracebackhide__ = True
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        diff = np.flatnonzero(got[k].view(np.uint64) != want[k].view(np.uint64))
        assert not diff.size, f"{k}: {diff.size} entries differ, first at flat index {diff[0]}"


# --- the case --------------------------------------------------------------------------------

# sha256 of W1, b1, W2, b2, x, y as drawn by make_case before depth (commit 1d06897)
BEFORE_DEPTH = {
    ((784, 16, 10), 8, 0): "9671b571ae2b90bb683c9ec1458a29f1",
    ((5, 4, 3), 3, 2): "657c96bc05ea8b4fee9f433ed4647ad5",
    ((1, 1, 1), 1, 0): "b3da7ec364f0981df75520b3a91b751b",
    ((784, 64, 10), 32, 3): "22b9b10879accceb5826d6b6415c1c63",
}


@pytest.mark.parametrize("key", list(BEFORE_DEPTH), ids=lambda k: "{}x{}x{}-b{}-s{}".format(
    *k[0], *k[1:]))
def test_a_two_layer_case_draws_the_numbers_it_drew_before_depth(key):
    """make_case on three sizes draws exactly what it drew before cases had layers."""
    case = make_case(*key, "relu", "sigmoid")
    h = hashlib.sha256()
    for name in ("W1", "b1", "W2", "b2", "x", "y"):
        h.update(np.ascontiguousarray(getattr(case, name)).tobytes())
    assert h.hexdigest()[:32] == BEFORE_DEPTH[key]


def test_a_deep_case_draws_layer_after_layer_then_x_and_y():
    """W1, b1, …, WL, bL, x, y come from one generator keyed by seed and `n0x…xnL-b{batch}`,
    each layer in U(±1/√fan_in), every value a float32; the σs change no number."""
    import zlib

    sizes, batch = (6, 5, 4, 3), 7
    case = make_case(sizes, batch, 4, "relu", "tanh", "sigmoid")
    rng = np.random.default_rng([4, zlib.crc32(b"6x5x4x3-b7")])
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
        r = 1 / np.sqrt(n_in)
        W = rng.uniform(-r, r, (n_out, n_in)).astype(np.float32).astype(np.float64)
        b = rng.uniform(-r, r, (n_out,)).astype(np.float32).astype(np.float64)
        assert np.array_equal(case.params[f"W{i}"], W) and np.array_equal(case.params[f"b{i}"], b)
    assert np.array_equal(case.x, rng.uniform(0, 1, (batch, 6)).astype(np.float32))
    assert np.array_equal(case.y, np.eye(3)[rng.integers(0, 3, size=batch)])
    other = make_case(sizes, batch, 4, "identity", "softplus", "relu")
    assert all(np.array_equal(case.params[k], other.params[k]) for k in case.params)


def test_the_case_names_its_layers():
    """Depth, sizes, σs, layers, parameters and ids of a 3-layer case."""
    case = make_case((784, 64, 32, 10), 8, 0, "relu", "relu", "sigmoid")
    assert case.depth == 3 and case.sizes == (784, 64, 32, 10)
    assert case.sigmas == ("relu", "relu", "sigmoid")
    assert [la.W.shape for la in case.layers] == [(64, 784), (32, 64), (10, 32)]
    assert [la.b.shape for la in case.layers] == [(64,), (32,), (10,)]
    assert [la.sigma for la in case.layers] == ["relu", "relu", "sigmoid"]
    assert list(case.params) == list(tensors(3)) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert case.params["W2"] is case.layers[1].W
    assert case.shape_id == "784x64x32x10-b8-s0"
    assert case.id == "relu-relu-sigmoid-784x64x32x10-b8-s0"
    assert isinstance(case.layers[0], Layer) and tensors(2) == TENSORS


def test_a_two_layer_case_keeps_its_contract_v1_fields():
    """W1, b1, W2, b2, sigma1, sigma2 read the layers of a 2-layer case."""
    case = make_case((5, 4, 3), 3, 0, "relu", "tanh")
    one, two = case.layers
    assert (case.W1, case.b1, case.W2, case.b2) == (one.W, one.b, two.W, two.b)
    assert (case.sigma1, case.sigma2) == ("relu", "tanh")
    assert case.id == "relu-tanh-5x4x3-b3-s0" and list(case.params) == list(TENSORS)


@pytest.mark.parametrize("name", ["W1", "b1", "W2", "b2", "sigma1", "sigma2"])
def test_a_two_layer_field_on_a_deeper_case_fails_in_one_line(name):
    """An adapter that reads only contract v1 fails on a deep case with one line saying so."""
    case = make_case((4, 3, 3, 2), 1, 0, "relu", "relu", "sigmoid")
    with pytest.raises(TwoLayerField) as info:
        getattr(case, name)
    assert str(info.value) == (f"this case has 3 layers: {name} is a 2-layer field; read "
                               "case.layers (adapter contract v2, adapters/README.md)")
    assert isinstance(info.value, AttributeError) and not hasattr(case, name)
    one = make_case((4, 3), 1, 0, "relu")
    with pytest.raises(TwoLayerField, match=r"^this case has 1 layer: W1 is a 2-layer field"):
        _ = one.W1


@pytest.mark.parametrize("sizes,sigmas,says", [
    ((4, 3, 2), ("relu",), "sizes 4x3x2 need 2 activation"),
    ((4, 3), ("relu", "tanh"), "sizes 4x3 need 1 activation"),
    ((4,), (), "sizes 4 need 0 activation"),
    ((4, 3, 2), ("relu", "gelu"), "unknown activation 'gelu'"),
])
def test_sizes_and_activations_must_agree(sizes, sigmas, says):
    """One σ per layer, each known; at least one layer."""
    with pytest.raises(ValueError, match=says):
        make_case(sizes, 1, 0, *sigmas)


def test_a_case_whose_layers_disagree_with_its_sigmas_is_refused():
    """sigmas and the layers' σs are one thing said twice; they must agree."""
    case = make_case((4, 3, 2), 1, 0, "relu", "tanh")
    with pytest.raises(ValueError, match="are not sigmas"):
        dataclasses.replace(case, sigmas=("relu", "relu"))


def test_a_fresh_copy_of_a_deep_case_is_read_only_and_a_write_is_named_by_its_tensor():
    """The integrity checks copy every layer's arrays read-only, and name a written one."""
    import ctypes

    pristine = make_case((4, 3, 3, 2), 2, 0, "relu", "tanh", "sigmoid")
    case = fresh(pristine)
    assert case.id == pristine.id and changes(case, pristine) == ""
    for k, v in case.params.items():
        assert not v.flags.writeable and not np.shares_memory(v, pristine.params[k]), k
    w3 = case.layers[2].W
    (ctypes.c_double * w3.size).from_address(w3.ctypes.data)[4] += 1.0
    assert changes(case, pristine) == "W3 changed (1 of 6 entries)"
    stepped = fresh(pristine)
    object.__setattr__(stepped.layers[1], "sigma", "relu")
    assert changes(stepped, pristine) == "sigma2 changed ('tanh' → 'relu')"
    object.__setattr__(stepped, "layers", stepped.layers[:2])
    assert changes(stepped, pristine) == "layers changed (now 2, was 3)"


# --- the general reference on 2-layer cases is the 2-layer reference, bit for bit ------------


@pytest.mark.parametrize("spec", TWO_LAYER, ids=TWO_IDS)
def test_general_depth_forward_and_gradients_are_the_two_layer_ones_bitwise(spec):
    """(13) and the δ recursion at L = 2 compute (15)–(29) exactly as written out."""
    case = _two(spec)
    z, a = forward_deep(case)
    assert_bitwise(dict(zip(("z1", "a1", "z2", "a2"), (z[1], a[1], z[2], a[2]), strict=True)),
                   forward(case)._asdict())
    assert a[0] is case.x and z[0] is None
    assert_bitwise(gradients_deep(case), gradients(case))
    if case.batch * np.prod(case.sizes) < 1000:
        assert_bitwise(literal_gradients_deep(case), literal_gradients(case))


@pytest.mark.parametrize("spec", TWO_LAYER, ids=TWO_IDS)
def test_general_depth_bound_is_the_two_layer_bound_bitwise(spec):
    """The layer-by-layer magnitude pass at L = 2 is the written-out pass, for every u."""
    case = _two(spec)
    for arithmetic in U:
        u = U[arithmetic] + U["float64"]
        assert_bitwise(magnitude_pass_deep(case, u, forward_deep(case)),
                       magnitude_pass(case, u, forward(case)))


@pytest.mark.parametrize("spec", TWO_LAYER + DEEP, ids=TWO_IDS + DEEP_IDS)
def test_one_product_simulated_alone_is_the_whole_run_with_it_reduced(spec):
    """A product's reduced run, started from the float32 run's intermediates, is bit for bit
    the whole network run with that product reduced, in every reduced arithmetic; and the
    products reduced together are every product reduced."""
    from reference.simulate import _run

    case = _two(spec) if len(spec) == 4 else make_case(spec[0], spec[1], 0, *spec[2])
    for arithmetic in REDUCED_ARITHMETICS:
        for name in products(case.depth):
            assert_bitwise(simulate(case, arithmetic, [name]),
                           _run(case, np.float32, {name: product(arithmetic)}))
        assert_bitwise(simulate(case, arithmetic, products(case.depth)),
                       simulate(case, arithmetic))


# --- deep nets against the oracle, finite differences and the loops -------------------------


@pytest.mark.parametrize("spec", DEEP, ids=DEEP_IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_deep_reference_error_within_its_own_bound(spec, seed):
    """The float64 reference of a deep net is within its own bound of the 50-digit oracle."""
    case = _deep(spec, seed)
    assert_within_own_bound(oracle.gradients(case), case)


@pytest.mark.parametrize("spec", DEEP, ids=DEEP_IDS)
def test_deep_reference_agrees_with_central_differences(spec):
    """The deep reference is within its own bound of 60-digit central differences of (19),
    and its cost is the oracle's."""
    case = _deep(spec)
    assert_within_own_bound(oracle.central_differences(case), case)
    assert cost(case) == pytest.approx(float(oracle.cost(case)), rel=1e-14)


@pytest.mark.parametrize("spec", DEEP, ids=DEEP_IDS)
def test_deep_literal_loops_agree_with_vectorised(spec):
    """The per-entry loops of any depth agree with the vectorised form within the bound."""
    case = _deep(spec)
    assert_within_own_bound(literal_gradients(case), case)


def test_the_oracle_at_two_layers_is_the_two_layer_oracle():
    """The oracle, now of any depth, still holds the 2-layer reference within its bound."""
    case = make_case((5, 4, 3), 3, 0, "relu", "tanh")
    assert_within_own_bound(oracle.gradients(case), case)


DEEP_F32 = [((784, 64, 32, 16, 10), 8, ("relu", "tanh", "softplus", "sigmoid")),
            ((32,) * 8 + (10,), 16, ("tanh", "relu") * 4),
            ((20, 12, 8, 6), 512, ("sigmoid", "identity", "relu"))]


@pytest.mark.parametrize("spec", DEEP_F32, ids=["784x64x32x16x10-b8", "8x32-b16", "20x12x8x6-b512"])
def test_a_float32_computation_of_a_deep_net_is_inside_its_float32_bound(spec):
    """Two float32 computations in different orders (the simulation; the reference's own code
    on float32 arrays) stay inside the float32 bound of a deep net."""
    case = _deep(spec)
    ref, b32 = gradients(case), bounds(case, "float32")
    f32 = _in_float32(case)
    for got in (simulate(case, "float32"), gradients_deep(f32)):
        for k in ref:
            ratio = np.abs(got[k] - ref[k]) / np.where(b32[k] > 0, b32[k], 1)
            assert ratio.max() <= 1 and np.all((b32[k] > 0) | (got[k] == ref[k])), k


def _in_float32(case: Case) -> Case:
    """Return the case with float32 arrays: the reference's own code then runs in float32."""
    layers = tuple(dataclasses.replace(la, W=la.W.astype(np.float32), b=la.b.astype(np.float32))
                   for la in case.layers)
    return dataclasses.replace(case, layers=layers, x=case.x.astype(np.float32),
                               y=case.y.astype(np.float32))


# --- the diagnosis on deep cases ------------------------------------------------------------


def _diagnose(got: dict, case: Case, dtype: str):
    return diagnose(got, gradients(case), dtype, functools.cache(functools.partial(bounds, case)),
                    functools.cache(functools.partial(simulate, case)))


def test_the_diagnosis_reads_a_deep_net_by_layer_rows():
    """On a deep case, tf32 products read tf32, float32 reads float32, and one wrong entry in a
    middle layer reads as one wrong entry."""
    case = make_case((64, 48, 32, 16, 10), 128, 0, "tanh", "relu", "softplus", "sigmoid")
    assert _diagnose(simulate(case, "tf32"), case, "float32").reads == "tf32"
    f32 = {k: v.astype(np.float32) for k, v in gradients_deep(_in_float32(case)).items()}
    assert str(_diagnose(f32, case, "float32")) == "float32"
    got = {k: v.copy() for k, v in f32.items()}
    i = np.argmax(np.abs(got["W3"]))
    got["W3"].reshape(-1)[i] += 4 * bounds(case, "float32")["W3"].reshape(-1)[i]
    assert str(_diagnose(got, case, "float32")) == "wrong gradient: 1 entry"


def test_the_diagnosis_clusters_rows_per_layer_past_layer_nine():
    """W10 and b10 are rows of layer 10, not of layer 1: the regression has one row per
    neuron of every layer."""
    sizes = (5, 4, 3, 4, 3, 4, 3, 4, 3, 4, 2, 3)
    case = make_case(sizes, 4, 0, *(["tanh"] * 11))
    ref = gradients(case)
    assert list(ref) == list(tensors(11))
    norm = bounds(case, "float32")
    f = fit("tf32", simulate(case, "tf32"), ref, {"every product": simulate(case, "tf32")},
            simulate(case, "float32"), norm)
    assert f.rows == sum(sizes[1:])
    assert set(REDUCED) >= {"tf32"}
