"""A high-precision oracle: (15)–(29) and central differences of (19) in mpmath, small nets only."""

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


def _forward(p: dict, x: list, s1, s2) -> tuple[list, list, list, list]:
    n1, n2 = len(p["b1"]), len(p["b2"])
    z1 = [_dot(p["W1"][j], x) + p["b1"][j] for j in range(n1)]
    a1 = [s1(z) for z in z1]
    z2 = [_dot(p["W2"][j], a1) + p["b2"][j] for j in range(n2)]
    return z1, a1, z2, [s2(z) for z in z2]


def cost(case: Case, p: dict | None = None, dps: int = 50) -> mp.mpf:
    """Return (19) summed over the batch at `dps` digits, for parameters p (default: theirs)."""
    with mp.workdps(dps):
        p = p or {k: _mp(v) for k, v in case.params.items()}
        (f1, _), (f2, _) = SIGMA[case.sigma1], SIGMA[case.sigma2]
        total = mp.mpf(0)
        for x, y in zip(case.x, case.y, strict=True):
            a2 = _forward(p, _mp(x), f1, f2)[3]
            total += mp.fsum((a - mp.mpf(float(t))) ** 2 for a, t in zip(a2, y, strict=True))
        return +total


def gradients(case: Case, dps: int = 50) -> dict[str, np.ndarray]:
    """Return the gradients by (21)–(29) at `dps` digits, rounded once to float64."""
    with mp.workdps(dps):
        p = {k: _mp(v) for k, v in case.params.items()}
        (f1, d1), (f2, d2) = SIGMA[case.sigma1], SIGMA[case.sigma2]
        n0, n1, n2 = case.sizes
        g = {k: np.zeros(v.shape, dtype=object) for k, v in case.params.items()}
        for x, y in zip(case.x, case.y, strict=True):
            x = _mp(x)
            z1, a1, z2, a2 = _forward(p, x, f1, f2)
            delta2 = [d2(z2[m]) * 2 * (a2[m] - mp.mpf(float(y[m]))) for m in range(n2)]
            dC_da1 = [mp.fsum(p["W2"][m][j] * delta2[m] for m in range(n2)) for j in range(n1)]
            delta1 = [d1(z1[j]) * dC_da1[j] for j in range(n1)]
            for j in range(n2):
                g["b2"][j] += delta2[j]
                for k in range(n1):
                    g["W2"][j, k] += delta2[j] * a1[k]
            for j in range(n1):
                g["b1"][j] += delta1[j]
                for k in range(n0):
                    g["W1"][j, k] += delta1[j] * x[k]
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
