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
from reference.network import forward_deep

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
    """Return H·v, H the Hessian of (19) summed over the batch, by the R-pass (module docstring)."""
    return _hvp(case, v)


def _hvp(case: Case, v: Params, *, keep_d2: Callable[[int], bool] = lambda i: True,
         frozen: Callable[[int], bool] = lambda i: False) -> Params:
    """Return H·v, or what a known mistake computes instead: σ_i″ dropped where not
    keep_d2(i), δ_i's own R-derivative dropped where frozen(i) (detached first-order signal)."""
    check_direction(case, v)
    L = case.depth
    z, a = forward_deep(case)
    s = (None, *(activation(layer.sigma) for layer in case.layers))  # index i is layer i
    W = (None, *(layer.W for layer in case.layers))
    V = (None, *(np.asarray(v[f"W{i}"], dtype=np.float64) for i in range(1, L + 1)))
    c = (None, *(np.asarray(v[f"b{i}"], dtype=np.float64) for i in range(1, L + 1)))

    Rz, Ra = [None], [np.zeros_like(case.x)]  # Ra_0 = 0: the input does not move with θ
    for i in range(1, L + 1):
        Rz.append(Ra[i - 1] @ W[i].T + a[i - 1] @ V[i].T + c[i])  # R{(13)}
        Ra.append(s[i].df(z[i]) * Rz[i])  # R{σ(z)}

    out = {}
    g, Rg = 2.0 * (a[L] - case.y), 2.0 * Ra[L]  # (19) differentiated, and its R
    for i in range(L, 0, -1):
        delta = s[i].df(z[i]) * g  # (22)/(26)
        Rdelta = s[i].df(z[i]) * Rg
        if keep_d2(i):
            Rdelta = Rdelta + s[i].d2f(z[i]) * Rz[i] * g
        if frozen(i):
            Rdelta = np.zeros_like(Rdelta)
        out[f"W{i}"] = Rdelta.T @ a[i - 1] + delta.T @ Ra[i - 1]  # R{(21)–(22)/(26)}
        out[f"b{i}"] = Rdelta.sum(axis=0)  # R{(23)–(24)}
        if i > 1:
            Rg = Rdelta @ W[i] + delta @ V[i]  # R{(28)–(29)}
            g = delta @ W[i]
    return {k: out[k] for k in tensors(L)}


# The mistakes a second-order implementation makes, each as what it computes from (case, v).


def _sigma2_missing(layer: int):
    def fn(case: Case, v: Params) -> Params:
        return _hvp(case, v, keep_d2=lambda i: i != layer)
    return fn


def _sigma2_missing_everywhere(case: Case, v: Params) -> Params:
    return _hvp(case, v, keep_d2=lambda i: False)


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
    σ″ missing only in layers where σ″ is not zero at every z of the case (relu, identity)."""
    depth, z = case.depth, forward_deep(case).z
    curved = [i for i in range(1, depth + 1)
              if np.any(activation(case.sigmas[i - 1]).d2f(z[i]) != 0)]
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
        out.append((f"σ″ missing in layer {i}", _sigma2_missing(i),
                    f"layer {i} drops σ{i}″(z{i})·Rz{i}·∂C/∂a{i} from Rδ{i}: its activation's "
                    "backward is not differentiable (the other layers' are)"))
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

    def __init__(self, f: float, f1: float = 0.0, f2: float = 0.0, f12: float = 0.0):
        self.f, self.f1, self.f2, self.f12 = f, f1, f2, f12

    def __add__(self, o):
        o = o if isinstance(o, _Dual) else _Dual(o)
        return _Dual(self.f + o.f, self.f1 + o.f1, self.f2 + o.f2, self.f12 + o.f12)

    __radd__ = __add__

    def __sub__(self, o):
        return self + (o * -1.0)

    def __mul__(self, o):
        o = o if isinstance(o, _Dual) else _Dual(o)
        return _Dual(self.f * o.f, self.f1 * o.f + self.f * o.f1, self.f2 * o.f + self.f * o.f2,
                     self.f12 * o.f + self.f1 * o.f2 + self.f2 * o.f1 + self.f * o.f12)

    __rmul__ = __mul__

    def through(self, s) -> _Dual:
        """Return σ(self) by the chain rule to second order: σ′·f12 + σ″·f1·f2."""
        z = np.float64(self.f)
        d, d2 = float(s.df(z)), float(s.d2f(z))
        return _Dual(float(s.f(z)), d * self.f1, d * self.f2, d * self.f12 + d2 * self.f1 * self.f2)


def literal_hessian(case: Case) -> np.ndarray:
    """Return the Hessian of (19) entry by entry: for each pair (p, q) of parameters (flattened in
    the order W1, b1, …, WL, bL), the ε1ε2 part of C on hyper-dual numbers (tiny nets only)."""
    names = tensors(case.depth)
    flat = np.concatenate([case.params[k].ravel() for k in names])
    P = flat.size
    H = np.zeros((P, P))
    for p in range(P):
        for q in range(p, P):
            theta = [_Dual(t) for t in flat]
            theta[p] = theta[p] + _Dual(0.0, 1.0)
            theta[q] = theta[q] + _Dual(0.0, 0.0, 1.0)
            H[p, q] = H[q, p] = _literal_cost(case, theta).f12
    return H


def _literal_cost(case: Case, theta: list[_Dual]) -> _Dual:
    """Return (19) summed over the batch, the parameters read from the flat list theta."""
    n, k = case.sizes, 0
    W, b = [None], [None]  # index i is layer i
    for i in range(1, case.depth + 1):
        W.append([theta[k + j * n[i - 1]:k + (j + 1) * n[i - 1]] for j in range(n[i])])
        k += n[i] * n[i - 1]
        b.append(theta[k:k + n[i]])
        k += n[i]
    C = _Dual(0.0)
    for x, y in zip(case.x, case.y, strict=True):
        a = [_Dual(float(t)) for t in x]
        for i in range(1, case.depth + 1):
            s = activation(case.sigmas[i - 1])
            z = [sum((W[i][j][m] * a[m] for m in range(n[i - 1])), b[i][j]) for j in range(n[i])]
            a = [zj.through(s) for zj in z]  # (13)
        for j in range(n[-1]):
            e = a[j] - float(y[j])
            C = C + e * e  # (19)
    return C


def flatten(case: Case, t: Params) -> np.ndarray:
    """Return t's tensors concatenated in the order W1, b1, …, WL, bL (`literal_hessian`'s)."""
    return np.concatenate([np.asarray(t[k]).ravel() for k in tensors(case.depth)])
