"""A high-precision oracle: (13)–(29) and central differences of (19) in mpmath, any depth,
small nets only."""

from __future__ import annotations

import mpmath as mp
import numpy as np

from reference.case import Case

SIGMA = {  # exact σ and σ′ on mpmath numbers
    "sigmoid": (lambda z: 1 / (1 + mp.exp(-z)), lambda z: mp.exp(-z) / (1 + mp.exp(-z)) ** 2),
    "tanh": (mp.tanh, lambda z: 1 - mp.tanh(z) ** 2),
    "relu": (lambda z: z if z > 0 else mp.mpf(0), lambda z: mp.mpf(1 if z > 0 else 0)),
    "softplus": (lambda z: mp.log1p(mp.exp(z)), lambda z: 1 / (1 + mp.exp(-z))),
    "identity": (lambda z: z, lambda z: mp.mpf(1)),
}


def _mp(a: np.ndarray) -> list:
    """Return the array as nested lists of exact mpmath numbers."""
    return [_mp(r) for r in a] if a.ndim else mp.mpf(float(a))


def _dot(w: list, v: list):
    return mp.fsum(a * b for a, b in zip(w, v, strict=True))


def _forward(p: dict, x: list, sigmas: tuple) -> tuple[list, list]:
    """Return z and a of every layer for one sample; index i is layer i, a[0] = x, z[0] None."""
    z, a = [None], [x]
    for i, sigma in enumerate(sigmas, start=1):
        W, b = p[f"W{i}"], p[f"b{i}"]
        z.append([_dot(W[j], a[i - 1]) + b[j] for j in range(len(b))])  # (13)
        a.append([SIGMA[sigma][0](zj) for zj in z[i]])
    return z, a


def cost(case: Case, p: dict | None = None, dps: int = 50) -> mp.mpf:
    """Return (19) summed over the batch at `dps` digits, for parameters p (default: theirs)."""
    with mp.workdps(dps):
        p = p or {k: _mp(v) for k, v in case.params.items()}
        total = mp.mpf(0)
        for x, y in zip(case.x, case.y, strict=True):
            aL = _forward(p, _mp(x), case.sigmas)[1][-1]
            total += mp.fsum((a - mp.mpf(float(t))) ** 2 for a, t in zip(aL, y, strict=True))
        return +total


def gradients(case: Case, dps: int = 50) -> dict[str, np.ndarray]:
    """Return the gradients of any depth by the δ recursion of (21)–(29) at `dps` digits,
    rounded once to float64."""
    with mp.workdps(dps):
        p = {k: _mp(v) for k, v in case.params.items()}
        L, n = case.depth, case.sizes
        g = {k: np.zeros(v.shape, dtype=object) for k, v in case.params.items()}
        for x, y in zip(case.x, case.y, strict=True):
            z, a = _forward(p, _mp(x), case.sigmas)
            dC_da = [2 * (a[L][m] - mp.mpf(float(y[m]))) for m in range(n[L])]  # (19)
            for i in range(L, 0, -1):
                d = SIGMA[case.sigmas[i - 1]][1]
                delta = [d(z[i][j]) * dC_da[j] for j in range(n[i])]
                for j in range(n[i]):
                    g[f"b{i}"][j] += delta[j]
                    for k in range(n[i - 1]):
                        g[f"W{i}"][j, k] += delta[j] * a[i - 1][k]
                W = p[f"W{i}"]
                dC_da = [mp.fsum(W[m][j] * delta[m] for m in range(n[i]))
                         for j in range(n[i - 1])]  # (28)–(29)
        return {k: v.astype(float) for k, v in g.items()}


def central_differences(case: Case, dps: int = 60, h: str = "1e-25") -> dict[str, np.ndarray]:
    """Return (C(p + h) − C(p − h)) / 2h for every parameter, at `dps` digits."""
    with mp.workdps(dps):
        step = mp.mpf(h)
        base = {k: _mp(v) for k, v in case.params.items()}
        out = {}
        for name, value in case.params.items():
            g = np.zeros(value.shape)
            for idx in np.ndindex(value.shape):
                up, down = _nudged(base, name, idx, step), _nudged(base, name, idx, -step)
                g[idx] = float((cost(case, up, dps) - cost(case, down, dps)) / (2 * step))
            out[name] = g
        return out


def _nudged(base: dict, name: str, idx: tuple, step) -> dict:
    """Return a copy of the parameters with one entry moved by `step`."""
    p = {k: (v if k != name else _deep_copy(v)) for k, v in base.items()}
    row = p[name]
    for i in idx[:-1]:
        row = row[i]
    row[idx[-1]] += step
    return p


def _deep_copy(v):
    return [_deep_copy(r) for r in v] if isinstance(v, list) else v
