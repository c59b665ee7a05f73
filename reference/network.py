"""The reference network: forward (15)–(18), cost (19) and gradients (21)–(29), in float64.

The 2-layer network is written out as the seed writes it; a network of any other depth runs
the general layer (13) and the recursion that (21)–(29) instantiate (`forward_deep`,
`gradients_deep`), which on a 2-layer case computes the same numbers bit for bit
(tests/test_depth.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference.activations import activation
from reference.case import Case, tensors


class Forward(NamedTuple):
    """Every intermediate of the forward pass, batch in rows."""

    z1: np.ndarray
    a1: np.ndarray
    z2: np.ndarray
    a2: np.ndarray


class Layers(NamedTuple):
    """Every intermediate of the forward pass at any depth, batch in rows: index i is layer i
    throughout, z[i] and a[i] for i = 1 … L, with a[0] the input x and z[0] None."""

    z: tuple[np.ndarray | None, ...]
    a: tuple[np.ndarray, ...]


def forward(case: Case) -> Forward | Layers:
    """Run (15)–(18) on a 2-layer case's batch; (13) layer by layer on any other depth."""
    if case.depth != 2:
        return forward_deep(case)
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    z1 = case.x @ case.W1.T + case.b1  # (15)  (batch, n1)
    a1 = s1.f(z1)  # (16)
    z2 = a1 @ case.W2.T + case.b2  # (17)  (batch, n2)
    a2 = s2.f(z2)  # (18)
    return Forward(z1, a1, z2, a2)


def cost(case: Case) -> float:
    """Return (19) summed over the batch: no ½, no mean."""
    aL = forward_deep(case).a[-1]
    return float(np.sum((aL - case.y) ** 2))  # (19)


def gradients(case: Case) -> dict[str, np.ndarray]:
    """Return ∂C/∂W1, ∂C/∂b1, ∂C/∂W2, ∂C/∂b2 by (21)–(29), errata corrected (any depth:
    `gradients_deep`)."""
    if case.depth != 2:
        return gradients_deep(case)
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    z1, a1, z2, a2 = forward(case)
    dC_da2 = 2.0 * (a2 - case.y)  # (19) differentiated, (4)
    delta2 = s2.df(z2) * dC_da2  # (22)/(24), with the prime (22) lost
    dW2 = delta2.T @ a1  # (21)–(22): a1_k σ2′(z2_j) 2(a2_j − y_j), summed over the batch
    db2 = delta2.sum(axis=0)  # (23)–(24)
    dC_da1 = delta2 @ case.W2  # (28)–(29), summed over m = 0…n2−1
    delta1 = s1.df(z1) * dC_da1  # (25)–(26), ∂C/∂a1_j (not _i)
    dW1 = delta1.T @ case.x  # (26): a0_k σ1′(z1_j) ∂C/∂a1_j
    db1 = delta1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def literal_gradients(case: Case) -> dict[str, np.ndarray]:
    """Return the gradients by (21)–(29) entry by entry, one sample at a time (small nets only;
    any depth: `literal_gradients_deep`)."""
    if case.depth != 2:
        return literal_gradients_deep(case)
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    n0, n1, n2 = case.sizes
    W1, b1, W2, b2 = case.W1, case.b1, case.W2, case.b2
    g = {k: np.zeros_like(v) for k, v in case.params.items()}
    for x, y in zip(case.x, case.y, strict=True):
        z1 = [sum(W1[j, k] * x[k] for k in range(n0)) + b1[j] for j in range(n1)]  # (13), (15)
        a1 = [float(s1.f(np.float64(z))) for z in z1]  # (16)
        z2 = [sum(W2[j, k] * a1[k] for k in range(n1)) + b2[j] for j in range(n2)]  # (17), (20)
        a2 = [float(s2.f(np.float64(z))) for z in z2]  # (18)
        dC_da2 = [2 * (a2[j] - y[j]) for j in range(n2)]  # (19) differentiated
        ds2 = [float(s2.df(np.float64(z))) for z in z2]
        for j in range(n2):
            for k in range(n1):
                g["W2"][j, k] += a1[k] * ds2[j] * dC_da2[j]  # (22), with the prime
            g["b2"][j] += ds2[j] * dC_da2[j]  # (24)
        for j in range(n1):
            dC_da1j = sum(W2[m, j] * ds2[m] * dC_da2[m] for m in range(n2))  # (28)–(29)
            ds1j = float(s1.df(np.float64(z1[j])))
            for k in range(n0):
                g["W1"][j, k] += x[k] * ds1j * dC_da1j  # (26), ∂C/∂a1_j
            g["b1"][j] += ds1j * dC_da1j
    return g


def forward_deep(case: Case) -> Layers:
    """Run (13) on the case's batch, layer after layer, i = 1 … L."""
    z, a = [None], [case.x]  # index i is layer i; a[0] is the input
    for layer in case.layers:
        z.append(a[-1] @ layer.W.T + layer.b)  # (13), as (15)/(17): (batch, n_i)
        a.append(activation(layer.sigma).f(z[-1]))  # as (16)/(18)
    return Layers(tuple(z), tuple(a))


def gradients_deep(case: Case) -> dict[str, np.ndarray]:
    """Return ∂C/∂W_i, ∂C/∂b_i for i = 1 … L by the recursion that (21)–(29) instantiate."""
    L = case.depth
    z, a = forward_deep(case)
    g = {}
    dC_da = 2.0 * (a[L] - case.y)  # (19) differentiated: ∂C/∂a_L
    for i in range(L, 0, -1):  # layer i, its weights case.layers[i − 1]
        layer = case.layers[i - 1]
        delta = activation(layer.sigma).df(z[i]) * dC_da  # δ_i = σ_i′(z_i) ⊙ ∂C/∂a_i, (22)/(26)
        g[f"W{i}"] = delta.T @ a[i - 1]  # δ_iᵀ a_(i−1), summed over the batch, (21)–(22)/(26)
        g[f"b{i}"] = delta.sum(axis=0)  # (23)–(24)
        if i > 1:
            dC_da = delta @ layer.W  # ∂C/∂a_(i−1) = δ_i W_i, (28)–(29) summed over m
    return {k: g[k] for k in tensors(L)}


def literal_gradients_deep(case: Case) -> dict[str, np.ndarray]:
    """Return the gradients of any depth entry by entry, one sample at a time (small nets only)."""
    L, n = case.depth, case.sizes
    W, b = (None, *(la.W for la in case.layers)), (None, *(la.b for la in case.layers))
    s = (None, *(activation(la.sigma) for la in case.layers))  # index i is layer i
    g = {k: np.zeros_like(v) for k, v in case.params.items()}
    for x, y in zip(case.x, case.y, strict=True):
        z, a = [None], [list(x)]
        for i in range(1, L + 1):
            z.append([sum(W[i][j, k] * a[i - 1][k] for k in range(n[i - 1])) + b[i][j]
                      for j in range(n[i])])  # (13)
            a.append([float(s[i].f(np.float64(zj))) for zj in z[i]])
        dC_da = [2 * (a[L][j] - y[j]) for j in range(n[L])]  # (19) differentiated
        for i in range(L, 0, -1):
            ds = [float(s[i].df(np.float64(zj))) for zj in z[i]]
            for j in range(n[i]):
                for k in range(n[i - 1]):
                    g[f"W{i}"][j, k] += a[i - 1][k] * ds[j] * dC_da[j]  # (22)/(26)
                g[f"b{i}"][j] += ds[j] * dC_da[j]  # (24)
            dC_da = [sum(W[i][m, j] * ds[m] * dC_da[m] for m in range(n[i]))
                     for j in range(n[i - 1])]  # (28)–(29), summed over m
    return g


def chain(case: Case) -> dict[str, float]:
    """Return (1)–(11) for the one-neuron-per-layer chain (sizes (1, 1, 1), batch 1)."""
    if case.sizes != (1, 1, 1) or case.batch != 1:
        raise ValueError(f"the chain (1)–(12) needs sizes (1, 1, 1) and batch 1, got {case.id}")
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    x, y = case.x[0, 0], case.y[0, 0]
    w1, b1, w2, b2 = case.W1[0, 0], case.b1[0], case.W2[0, 0], case.b2[0]
    z1 = w1 * x + b1  # (3) for layer L−1
    a1 = float(s1.f(z1))  # (2) for layer L−1
    zL = w2 * a1 + b2  # (3)
    aL = float(s2.f(zL))  # (2)
    C = (aL - y) ** 2  # (1)
    dC_daL = 2 * (aL - y)  # (4)
    daL_dzL = float(s2.df(zL))  # (5)
    dzL_dwL = a1  # (6)
    dC_dwL = dzL_dwL * daL_dzL * dC_daL  # (7)–(8)
    dC_dbL = 1 * daL_dzL * dC_daL  # (9)
    # (11): ∂z1/∂w1 · ∂a1/∂z1 · ∂zL/∂a1 · ∂aL/∂zL · ∂C/∂aL, with ∂zL/∂a1 = w2
    dC_dw1 = x * float(s1.df(z1)) * w2 * daL_dzL * dC_daL
    dC_db1 = float(s1.df(z1)) * w2 * daL_dzL * dC_daL
    return {"C": C, "W1": dC_dw1, "b1": dC_db1, "W2": dC_dwL, "b2": dC_dbL}
