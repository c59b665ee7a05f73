"""Second order: the exact product H·v of the Hessian of the summed cost (19) with a direction v.

Pearlmutter's R-operator, R{f} = d/dε f(θ + εv) at ε = 0, applied to the forward pass (13) and
to the backward recursion that (21)–(29) instantiate, in float64 as `reference.network`
computes gradients. With g_i = ∂C/∂a_i and δ_i = σ_i′(z_i) ⊙ g_i (index i is layer i, batch in
rows, V_i and c_i the direction's parts for W_i and b_i):

    Rz_i = Ra_(i−1) W_iᵀ + a_(i−1) V_iᵀ + c_i        Ra_i = σ_i′(z_i) ⊙ Rz_i,  Ra_0 = 0
    Rg_L = 2 Ra_L                                     (19) differentiated twice
    Rδ_i = σ_i″(z_i) ⊙ Rz_i ⊙ g_i + σ_i′(z_i) ⊙ Rg_i
    (Hv)_(W_i) = Rδ_iᵀ a_(i−1) + δ_iᵀ Ra_(i−1)        (Hv)_(b_i) = Σ_batch Rδ_i
    Rg_(i−1) = Rδ_i W_i + δ_i V_i

Reverse-over-reverse (double backward) computes the same intermediates under other names: the
adjoint of δ_i is Rz_i and the adjoint of z_i is Rδ_i, by the symmetry of H.

relu″ = 0 everywhere (its σ′ is a step; the Dirac mass at 0 is no function value and no
framework returns one), so on a relu layer Rδ_i = σ′ ⊙ Rg_i: the convention every framework
follows, stated in reference/activations.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from reference.activations import activation
from reference.case import Case, _draw, tensors
from reference.network import forward, forward_deep

Params = dict[str, np.ndarray]


def direction(case: Case) -> Params:
    """Return the case's direction v: keyed and shaped like its parameters, drawn from its seed.

    Drawn as the parameters are (U(±1/√fan_in) in float32, widened, exact in every dtype the
    suite tests), from a generator keyed by the seed and `n0x…xnL-b{batch}-direction`, so the
    same case always gets the same v and v never repeats the parameters' own draw.
    """
    key = zlib.crc32(f"{'x'.join(map(str, case.sizes))}-b{case.batch}-direction".encode())
    rng = np.random.default_rng([case.seed, key])
    while True:  # a float32 uniform draw is all zero with probability ~0; v = 0 tests nothing
        v = {}
        for i, n_in in enumerate(case.sizes[:-1], start=1):
            r = 1.0 / np.sqrt(n_in)
            n_out = case.sizes[i]
            v[f"W{i}"] = _draw(rng, (n_out, n_in), -r, r)
            v[f"b{i}"] = _draw(rng, (n_out,), -r, r)
        if any(np.any(t != 0) for t in v.values()):
            return v


def check_direction(case: Case, v: Params) -> None:
    """Raise a one-line error unless v has exactly the case's parameter names and shapes."""
    names = tensors(case.depth)
    if set(v) != set(names):
        raise ValueError(f"direction keys {sorted(v)} are not the case's parameters {list(names)}")
    for k, p in case.params.items():
        if np.shape(v[k]) != p.shape:
            raise ValueError(f"direction {k} has shape {np.shape(v[k])}, the parameter {p.shape}")


def hvp(case: Case, v: Params) -> Params:
    """Return H·v, H the Hessian of (19) summed over the batch, by the R-pass written out for
    (15)–(29) (any other depth: `hvp_deep`, the same numbers bit for bit on 2 layers)."""
    if case.depth != 2:
        return hvp_deep(case, v)
    check_direction(case, v)
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    W2 = case.W2
    V1, c1, V2, c2 = (np.asarray(v[k], dtype=np.float64) for k in ("W1", "b1", "W2", "b2"))
    z1, a1, z2, a2 = forward(case)  # (15)–(18)
    Rz1 = case.x @ V1.T + c1  # R{(15)}: x does not move with θ
    Ra1 = s1.df(z1) * Rz1  # R{(16)}
    Rz2 = Ra1 @ W2.T + a1 @ V2.T + c2  # R{(17)}
    Ra2 = s2.df(z2) * Rz2  # R{(18)}
    dC_da2, R_dC_da2 = 2.0 * (a2 - case.y), 2.0 * Ra2  # (19) differentiated, and its R
    delta2 = s2.df(z2) * dC_da2  # (22)/(24)
    Rdelta2 = s2.df(z2) * R_dC_da2 + s2.d2f(z2) * Rz2 * dC_da2
    HW2 = Rdelta2.T @ a1 + delta2.T @ Ra1  # R{(21)–(22)}
    Hb2 = Rdelta2.sum(axis=0)  # R{(23)–(24)}
    R_dC_da1 = Rdelta2 @ W2 + delta2 @ V2  # R{(28)–(29)}, summed over m
    dC_da1 = delta2 @ W2  # (28)–(29); δ1 = σ1′(z1)·dC_da1 (25)–(26) is not needed: Ra0 = 0
    Rdelta1 = s1.df(z1) * R_dC_da1 + s1.d2f(z1) * Rz1 * dC_da1
    HW1 = Rdelta1.T @ case.x  # R{(26)}: x does not move
    Hb1 = Rdelta1.sum(axis=0)
    return {"W1": HW1, "b1": Hb1, "W2": HW2, "b2": Hb2}


def hvp_deep(case: Case, v: Params) -> Params:
    """Return H·v for a network of any depth, layer by layer (module docstring)."""
    return _hvp(case, v)


def _hvp(case: Case, v: Params, *, d2: Callable[[int], float] = lambda i: 1.0,
         frozen: Callable[[int], bool] = lambda i: False) -> Params:
    """Return H·v, or what a known mistake computes instead: σ_i″ taken d2(i) times (0: dropped,
    −1: its sign flipped, 2 or ½: a factor wrong in its formula), δ_i's own R-derivative dropped
    where frozen(i) (detached first-order signal)."""
    check_direction(case, v)
    L = case.depth
    z, a = forward_deep(case)
    s = (None, *(activation(layer.sigma) for layer in case.layers))  # index i is layer i
    W = (None, *(layer.W for layer in case.layers))
    V = (None, *(np.asarray(v[f"W{i}"], dtype=np.float64) for i in range(1, L + 1)))
    c = (None, *(np.asarray(v[f"b{i}"], dtype=np.float64) for i in range(1, L + 1)))

    Rz, Ra = [None], [None]  # Ra_0 = 0: the input does not move with θ
    for i in range(1, L + 1):
        Rz.append(a[i - 1] @ V[i].T + c[i] if i == 1
                  else Ra[i - 1] @ W[i].T + a[i - 1] @ V[i].T + c[i])  # R{(13)}
        Ra.append(s[i].df(z[i]) * Rz[i])  # R{σ(z)}

    out = {}
    g, Rg = 2.0 * (a[L] - case.y), 2.0 * Ra[L]  # (19) differentiated, and its R
    for i in range(L, 0, -1):
        delta = s[i].df(z[i]) * g  # (22)/(26)
        Rdelta = s[i].df(z[i]) * Rg
        if d2(i):
            Rdelta = Rdelta + d2(i) * s[i].d2f(z[i]) * Rz[i] * g
        if frozen(i):
            Rdelta = np.zeros_like(Rdelta)
        out[f"W{i}"] = Rdelta.T @ a[i - 1]  # R{(21)–(22)/(26)}
        if i > 1:
            out[f"W{i}"] = out[f"W{i}"] + delta.T @ Ra[i - 1]
        out[f"b{i}"] = Rdelta.sum(axis=0)  # R{(23)–(24)}
        if i > 1:
            Rg = Rdelta @ W[i] + delta @ V[i]  # R{(28)–(29)}
            g = delta @ W[i]
    return {k: out[k] for k in tensors(L)}


# The mistakes a second-order implementation makes, each as what it computes from (case, v).


def _curved(case: Case) -> list[int]:
    """Return the layers i whose σ″(z_i)·∂C/∂a_i is not zero at every sample and unit."""
    z, a = forward_deep(case)
    g, out = 2.0 * (a[-1] - case.y), []  # (19) differentiated
    for i in range(case.depth, 0, -1):
        s = activation(case.sigmas[i - 1])
        if np.any(s.d2f(z[i]) * g != 0):
            out.append(i)
        g = (s.df(z[i]) * g) @ case.layers[i - 1].W  # (28)–(29)
    return sorted(out)


def _sigma2_times(layer: int, factor: float):
    def fn(case: Case, v: Params) -> Params:
        return _hvp(case, v, d2=lambda i: factor if i == layer else 1.0)
    return fn


def _sigma2_missing_everywhere(case: Case, v: Params) -> Params:
    return _hvp(case, v, d2=lambda i: 0.0)


SIGMA2_FACTORS = ((0.0, "missing", "drops σ{i}″(z{i})·Rz{i}·∂C/∂a{i} from Rδ{i}: its activation's "
                   "backward is not differentiable (the other layers' are)"),
                  (-1.0, "with its sign flipped", "adds −σ{i}″(z{i})·Rz{i}·∂C/∂a{i} to Rδ{i}: "
                   "σ″'s formula has its sign wrong (a custom second derivative)"),
                  (2.0, "doubled", "adds 2σ{i}″(z{i})·Rz{i}·∂C/∂a{i} to Rδ{i}: a factor 2 too "
                   "many in σ″'s formula (or its term counted twice)"),
                  (0.5, "halved", "adds ½σ{i}″(z{i})·Rz{i}·∂C/∂a{i} to Rδ{i}: a factor 2 lost in "
                   "σ″'s formula"))
"""How a layer's σ″ term goes wrong: the factor it is taken with, its name, what it computes."""


def _zero(case: Case, v: Params) -> Params:
    check_direction(case, v)
    return {k: np.zeros_like(p) for k, p in case.params.items()}


def _gradient_detached(layer: int):
    def fn(case: Case, v: Params) -> Params:
        w = {k: (np.zeros_like(t) if k in (f"W{layer}", f"b{layer}") else t) for k, t in v.items()}
        return hvp(case, w)
    return fn


def _delta_detached(layer: int):
    def fn(case: Case, v: Params) -> Params:
        return _hvp(case, v, frozen=lambda i: i == layer)
    return fn


def mistakes(case: Case) -> tuple[tuple[str, Callable[[Case, Params], Params], str], ...]:
    """Return the known second-order mistakes as (name, fn(case, v), why), for the case's depth;
    σ″ missing only in layers where σ″(z)·∂C/∂a is not zero throughout (not relu, identity, or
    a layer under a dead one), so that no mistake computes the right H·v."""
    depth = case.depth
    curved = _curved(case)
    out_zero = ("hvp zero", _zero,
                "every entry of H·v is zero: the gradient was taken without create_graph (or "
                "outside the outer transformation), so the second differentiation saw constants")
    out = [
        out_zero,
        ("σ″ missing", _sigma2_missing_everywhere,
         "every layer drops σ″(z)·Rz·∂C/∂a from Rδ: activations differentiated once only "
         "(a custom backward that is not itself differentiable)"),
    ] if curved else [out_zero]
    for i in curved:
        out.extend((f"σ″ {name} in layer {i}", _sigma2_times(i, factor),
                    f"layer {i} " + why.format(i=i)) for factor, name, why in SIGMA2_FACTORS)
    for i in range(1, depth + 1):
        out.append((f"gradient of layer {i} detached", _gradient_detached(i),
                    f"the first-order ∂C/∂W{i}, ∂C/∂b{i} were detached before the product with "
                    f"v: H·v is computed with v's W{i}, b{i} parts taken as zero"))
        out.append((f"δ{i} detached", _delta_detached(i),
                    f"layer {i}'s backward signal δ{i} is a constant to the second pass: "
                    f"Rδ{i} = 0, so H·v keeps only δ{i}ᵀ·Ra{i - 1} in W{i} and δ{i}·V{i} below"))
    return tuple(out)


class _Dual:
    """A hyper-dual number f + f1·ε1 + f2·ε2 + f12·ε1ε2 (ε1² = ε2² = 0): f12 of C(θ + ε1e_p +
    ε2e_q) is ∂²C/∂θ_p∂θ_q exactly, with no step and no truncation."""

    __slots__ = ("f", "f1", "f2", "f12")

    def __init__(self, f, f1, f2, f12):
        self.f, self.f1, self.f2, self.f12 = f, f1, f2, f12

    def __add__(self, o):
        return _Dual(self.f + o.f, self.f1 + o.f1, self.f2 + o.f2, self.f12 + o.f12)

    def __sub__(self, o):
        if not isinstance(o, _Dual):
            return _Dual(self.f - o, self.f1, self.f2, self.f12)
        return _Dual(self.f - o.f, self.f1 - o.f1, self.f2 - o.f2, self.f12 - o.f12)

    def __mul__(self, o):
        return _Dual(self.f * o.f, self.f1 * o.f + self.f * o.f1, self.f2 * o.f + self.f * o.f2,
                     self.f12 * o.f + self.f1 * o.f2 + self.f2 * o.f1 + self.f * o.f12)

    def through(self, f, df, d2f) -> _Dual:
        """Return σ(self) by the chain rule to second order: σ′·f12 + σ″·f1·f2."""
        d, d2 = df(self.f), d2f(self.f)
        return _Dual(f(self.f), d * self.f1, d * self.f2, d * self.f12 + d2 * self.f1 * self.f2)


Scalars = tuple[Callable, Callable, Callable]


def _catalogue(name: str) -> Scalars:
    """Return σ, σ′, σ″ of the catalogue entry `name` as float64 functions of one number."""
    s = activation(name)
    return tuple(lambda z, fn=fn: float(fn(np.float64(z))) for fn in (s.f, s.df, s.d2f))


def literal_hessian(case: Case, number: Callable = float,
                    derivatives: Callable[[str], Scalars] = _catalogue) -> np.ndarray:
    """Return the Hessian of (19) entry by entry: for each pair (p, q) of parameters (flattened in
    the order W1, b1, …, WL, bL), the ε1ε2 part of C on hyper-dual numbers (tiny nets only).

    The numbers are `number(value)` and σ, σ′, σ″ come from `derivatives(name)`: float64 and
    the catalogue by default; a multiple-precision type and exact σs give a Hessian free of
    rounding, to check the float64 R-pass against its bound.
    """
    names = tensors(case.depth)
    flat = [number(float(t)) for k in names for t in case.params[k].ravel()]
    sig = [derivatives(name) for name in case.sigmas]
    P = len(flat)
    H = [[None] * P for _ in range(P)]
    zero, one = number(0.0), number(1.0)
    for p in range(P):
        for q in range(p, P):
            theta = [_Dual(t, zero, zero, zero) for t in flat]
            theta[p] = theta[p] + _Dual(zero, one, zero, zero)
            theta[q] = theta[q] + _Dual(zero, zero, one, zero)
            H[p][q] = H[q][p] = _literal_cost(case, theta, sig, number).f12
    return np.array(H, dtype=object if number is not float else np.float64)


def _literal_cost(case: Case, theta: list[_Dual], sig: list[Scalars], number: Callable) -> _Dual:
    """Return (19) summed over the batch, the parameters read from the flat list theta."""
    n, k = case.sizes, 0
    W, b = [None], [None]  # index i is layer i
    for i in range(1, case.depth + 1):
        W.append([theta[k + j * n[i - 1]:k + (j + 1) * n[i - 1]] for j in range(n[i])])
        k += n[i] * n[i - 1]
        b.append(theta[k:k + n[i]])
        k += n[i]
    zero = number(0.0)
    C = _Dual(zero, zero, zero, zero)
    for x, y in zip(case.x, case.y, strict=True):
        a = [_Dual(number(float(t)), zero, zero, zero) for t in x]
        for i in range(1, case.depth + 1):
            z = [sum((W[i][j][m] * a[m] for m in range(n[i - 1])), b[i][j]) for j in range(n[i])]
            a = [zj.through(*sig[i - 1]) for zj in z]  # (13)
        for j in range(n[-1]):
            e = a[j] - number(float(y[j]))
            C = C + e * e  # (19)
    return C


def flatten(case: Case, t: Params) -> np.ndarray:
    """Return t's tensors concatenated in the order W1, b1, …, WL, bL (`literal_hessian`'s)."""
    return np.concatenate([np.asarray(t[k]).ravel() for k in tensors(case.depth)])
