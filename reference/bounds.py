"""Per-entry error bounds: the tier that decides pass or fail, and the worst-case ceiling.

The tier (`typical_pass`, what `bounds` returns) hugs the real error of a correct run: every
rounding's first-order effect on an entry is split into a random part, mean-independent
roundings carried as a variance proxy (in quadrature through W, whose signs are drawn
independently of everything the errors depend on, and over the batch, whose samples are
independent computations), and a systematic part carried as magnitudes (each activation's ulp
budget, elementwise roundings, and the stagnation of long left-to-right sums, `_stagnation`).
An entry passes when |g − ref| ≤ λ·√(proxy) + systematic, never above the ceiling.

Why it cannot cry wolf: by Azuma–Hoeffding a sum of mean-independent roundings within ±u
exceeds λ = 6 roots of its proxy with probability below 3·10⁻⁸, and the proxy already takes
each rounding at its extremes (a rounding spread over ±u has a third of that variance: λ is
then 10.4 standard deviations); a sum's partial sums are charged above their expectation over
value-independent orders; what is not mean-independent (activation budgets, long same-signed
left-to-right sums) is charged as a worst-case magnitude.

Two measured departures from independence are charged where they occur: a long left-to-right
sum whose running value dwarfs its addends rounds with a bias (`_stagnation`), and a batch sum
whose addends cluster within an ulp of the running sum (samples that saturating layers have
made alike: seven sigmoid layers leave δ⁽⁸⁾ two values per unit) rounds the same way at each
addition of a cluster (`_bias`, read from the addends' residues); without it, correct float32
gradients of 784-64×7-10 at batch 4,096 failed (all sigmoid: b8 at 2.9, W8 at 3.3 of the tier;
softplus-tanh-sigmoid-tanh-softplus-tanh-sigmoid-identity: b8 at 1.24). The samples' forward
errors are added in quadrature over the batch: they are not wholly independent (per unit
|mean|/rms over 4,096 samples measured 0.02–0.03 in layer 1 and 0.05–0.28 in layers 2–8 of the
all-sigmoid net, against 0.016 for independent ones), and λ's margin holds them (that net's
entries other than the clustered sums reach 0.27 of the tier in NumPy's float32 order); adding
them as magnitudes (Minkowski, provable) would loosen correct groups 1.2–2.5 times.

Measured (tests/bench, closing notes):
correct float32 groups of every built-in framework reach 0.021–0.25 of it over 784-16-10 …
784-64×7-10 at batches 1 … 4,096 (0.0033–0.058 at 65,536), the order adapters up to 0.27
(tests/bench/products_ladder.py, orders.py); NumPy's left-to-right order adapter 0.16 at 2¹⁸
and 0.06 at 2²⁰ (it failed at 2¹⁸ before `_stagnation` was measured and added); the median W1
tier is 9·10⁻⁶·|ref| at L = 2, 2·10⁻⁵ at L = 4 and 4–5·10⁻⁵ at L = 8.

The ceiling (`ceiling`, the magnitude pass below) is the rigorous worst case, kept as the
documented upper limit of the tier; its own derivation follows.

Model (first order in u, Higham's standard model fl(a∘b) = (a∘b)(1+δ), |δ| ≤ u):
each intermediate v of (15)–(29) gets an absolute bound E_v ≥ |fl(v) − v| made of
  - the error it inherits: |∂v/∂p| E_p summed over its inputs p (σ′ and σ″ carry E_z
    through the activations, |W|, |a| carry errors through the products), and
  - the rounding of its own operation: u × the magnitude of what was summed, (|p|ᵀ|q| for a
    dot product, |v| for a product, the activation's ulp budget for σ and σ′).

A sum's own rounding, in any order. A length-n dot product computed in any order (left to
right, K-blocks summed in sequence, a pairwise tree, split sums combined by atomics; with or
without FMA) is a binary tree of n − 1 additions over n products; its error is
Σᵢ tᵢδᵢ + Σ_nodes P_node δ_node, and every partial sum obeys |P_node| ≤ S = |p|ᵀ|q|, so
|error| ≤ n·u·S (Higham's γₙ; CHARGE(n) = n). This is the worst order's bound, and it is
met in practice: the probabilistic λ√n·u·S of Higham & Mary assumes rounding errors that are
mean-independent, and long same-signed sums break that. Measured, NumPy's left-to-right float32
column sum of the 5-4-3 net's δ₂ over 2²⁰ samples erred by 3,070·u·S, nine standard deviations
of the random-walk model (√n/3 = 341), because each addend is then only tens of ulps of the
running sum and its rounding is biased; a charge of 8√n failed it. A tree would need only
⌈log₂ n⌉ + 1, the charge before this one, and CPU reductions, BLAS K-blocks and GPU split sums
are no trees (left-to-right float32 sums over 60,000 samples exceeded it 18-fold). The errors
a long sum inherits (its terms' own errors) are added as magnitudes too, the worst case.

GROWTH then multiplies the whole pass by 2 for what the first-order pass leaves out: O(u²)
terms and the activations' budgets met at their edges. Nothing here is scaled by the size of
an array. The price of a bound that holds in every order: past some length it exceeds the
error of TF32- or bf16-rounded operands, so reduced precision is judged on the field of
errors against its simulation (reference.compare.diagnose), not entry by entry.

Precision of the pass itself: magnitudes need few digits, so the pass runs in float32 in units
of u (no underflow), and its result is multiplied by SAFETY(n, L) = 1 + 2L·n·2⁻²⁴ for the
longest sum n: a float32 sum of non-negative terms errs by at most γₙ relatively, and an entry
of an L-layer network chains at most 2L long sums (L forward, L − 1 back, one over the batch;
at L = 2 the factor is 4, as it always was). The pass at the framework's u and at float64's u
(the reference's own rounding) is one pass at their sum, since it is linear in u.

Depth. The 2-layer pass is written out as (15)–(29); `magnitude_pass_deep` is the same model
stated once for layer i of any depth (z_i inherits a_(i−1)'s error through |W_i|; ∂C/∂a_(i−1)
inherits δ_i's through |W_i|; ∂C/∂W_i inherits both δ_i's and a_(i−1)'s), and on a 2-layer case
it computes the 2-layer pass bit for bit (tests/test_depth.py), so a change to the model is a
change to both. The price of worst-case magnitudes at depth: each layer multiplies an inherited
error by Σ|w|·|σ′| where the signal gets |Σ w·…|·|σ′|, about √n_i times less, forward and back.
Measured (784-64-…-64-10, batch 8, tanh, float32): the median W1 bound is 0.009·|ref| at L = 2,
0.21 at L = 3, 5.2 at L = 4 and 5.6·10⁶ at L = 8, while float32 errors reach 10⁻⁴ … 10⁻⁸ of
it; with sigmoid layers (|σ′| ≤ 1/4) it passes |ref| at L = 6. It holds at every depth; past
three or four layers of such widths it no longer tells W1 of a wrong gradient from a right one.
"""

from __future__ import annotations

import functools

import numpy as np

from reference.activations import Activation, activation
from reference.case import Case, tensors
from reference.network import Forward, Layers, forward, forward_deep

U = {"float64": 2.0**-53, "float32": 2.0**-24, "tf32": 2.0**-11, "bfloat16": 2.0**-8}
"""Unit roundoff of each arithmetic the fingerprint can tell apart."""

GROWTH = 2.0
"""Multiplies the magnitude pass; the module docstring says why 2."""

F32 = np.float32


def charge(n: int) -> float:
    """Return how many unit roundoffs of |p|ᵀ|q| a length-n sum may err by, in any order."""
    return float(max(int(n), 1))


def safety(n: int, depth: int = 2) -> float:
    """Return the factor that covers the float32 evaluation of a pass whose longest sum is n,
    over a network of `depth` layers."""
    return 1.0 + 2.0 * depth * max(int(n), 1) * 2.0**-24


@functools.lru_cache(maxsize=4)
def inputs32(case: Case) -> np.ndarray:
    """Return the case's inputs x in float32, once per case: the largest array of a large batch,
    read by the bound and by every simulation (cases are immutable: adapters get copies)."""
    x = case.x.astype(F32)
    x.setflags(write=False)
    return x


def tmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return aᵀb for tall a and b (batch in rows) as (bᵀa)ᵀ, which OpenBLAS runs several
    times faster for a long inner dimension (measured 15× at 65,536 × 784 in float32)."""
    return (b.T @ a).T


def _activation_errors(s: Activation, z: np.ndarray, ez: np.ndarray, u: float):
    """Return the bounds on fl(σ(z)) and fl(σ′(z)) in units of u, given z's own bound ez."""
    z32 = z.astype(F32)
    ea = np.abs(s.df(z32)) * ez + s.f_err(z32)
    eds = np.abs(s.d2f(z32)) * ez + s.df_err(z32)
    if s.kink:
        # Where z's error can cross 0 the framework may sit on either side of the jump.
        eds = np.where(np.abs(z) <= u * ez, np.maximum(eds, F32(s.kink / u)), eds)
    return ea.astype(F32), eds.astype(F32)


def magnitude_pass(case: Case, u: float, fwd: Forward | Layers | None = None
                   ) -> dict[str, np.ndarray]:
    """Return the first-order bound on |fl(g) − g| for each gradient at unit roundoff u."""
    if case.depth != 2:
        return magnitude_pass_deep(case, u, fwd)
    s1, s2 = activation(case.sigma1), activation(case.sigma2)
    n0, n1, n2 = case.sizes
    B = case.batch
    z1, a1, z2, a2 = fwd if fwd is not None else forward(case)
    ax = _abs_inputs(case)
    aW1, aW2 = np.abs(case.W1).astype(F32), np.abs(case.W2).astype(F32)
    ab1, ab2 = np.abs(case.b1).astype(F32), np.abs(case.b2).astype(F32)
    aa1 = np.abs(a1).astype(F32)

    ez1 = F32(charge(n0 + 1)) * (ax @ aW1.T + ab1)  # (15)
    ea1, eds1 = _activation_errors(s1, z1, ez1, u)  # (16)
    ez2 = F32(charge(n1 + 1)) * (aa1 @ aW2.T + ab2) + ea1 @ aW2.T  # (17)
    ea2, eds2 = _activation_errors(s2, z2, ez2, u)  # (18)

    e = (2.0 * (a2 - case.y)).astype(F32)  # (19) differentiated
    ee = 2.0 * ea2 + np.abs(e)
    ds2 = s2.df(z2.astype(F32))
    delta2 = ds2 * e  # (22)/(24)
    ed2 = np.abs(ds2) * ee + eds2 * np.abs(e) + np.abs(delta2)
    ad2, cB = np.abs(delta2), F32(charge(B))
    eW2 = cB * tmm(ad2, aa1) + tmm(ed2, aa1) + tmm(ad2, ea1)  # (21)–(22)
    eb2 = cB * ad2.sum(axis=0) + ed2.sum(axis=0)  # (23)–(24)

    g1 = delta2 @ case.W2.astype(F32)  # (28)–(29)
    eg1 = F32(charge(n2)) * (ad2 @ aW2) + ed2 @ aW2
    ds1 = s1.df(z1.astype(F32))
    delta1 = ds1 * g1  # (25)–(26)
    ed1 = np.abs(ds1) * eg1 + eds1 * np.abs(g1) + np.abs(delta1)
    ad1 = np.abs(delta1)
    eW1 = tmm(cB * ad1 + ed1, ax)  # (26)
    eb1 = cB * ad1.sum(axis=0) + ed1.sum(axis=0)
    scale = u * safety(max(B, n0 + 1, n1 + 1, n2))
    return {k: scale * v.astype(np.float64)
            for k, v in {"W1": eW1, "b1": eb1, "W2": eW2, "b2": eb2}.items()}


def magnitude_pass_deep(case: Case, u: float, fwd: Layers | None = None
                        ) -> dict[str, np.ndarray]:
    """Return the bound of `magnitude_pass` for a network of any depth, layer by layer."""
    L, B, n = case.depth, case.batch, case.sizes
    z, a = fwd if fwd is not None else forward_deep(case)
    s = [None, *(activation(layer.sigma) for layer in case.layers)]  # index i is layer i
    aW = [None, *(np.abs(layer.W).astype(F32) for layer in case.layers)]
    ax = _abs_inputs(case)
    aa, ea, eds = [ax], [None], [None]  # |a_i|, its bound, σ_i′'s bound; a_0 = x is exact

    for i in range(1, L + 1):
        ab = np.abs(case.layers[i - 1].b).astype(F32)
        ez = F32(charge(n[i - 1] + 1)) * (aa[i - 1] @ aW[i].T + ab)  # (13)
        if i > 1:
            ez = ez + ea[i - 1] @ aW[i].T  # the error a_(i−1) brings
        e_a, e_ds = _activation_errors(s[i], z[i], ez, u)  # as (16)/(18)
        ea.append(e_a)
        eds.append(e_ds)
        aa.append(np.abs(a[i]).astype(F32))

    e = (2.0 * (a[L] - case.y)).astype(F32)  # (19) differentiated
    g, eg = e, 2.0 * ea[L] + np.abs(e)  # ∂C/∂a_i and its bound, from i = L down
    cB, out = F32(charge(B)), {}
    for i in range(L, 0, -1):
        ds = s[i].df(z[i].astype(F32))
        delta = ds * g  # (22)/(24), (25)–(26)
        ed = np.abs(ds) * eg + eds[i] * np.abs(g) + np.abs(delta)
        ad = np.abs(delta)
        if i > 1:
            out[f"W{i}"] = cB * tmm(ad, aa[i - 1]) + tmm(ed, aa[i - 1]) + tmm(ad, ea[i - 1])
        else:  # (26): x is exact
            out["W1"] = tmm(cB * ad + ed, ax)
        out[f"b{i}"] = cB * ad.sum(axis=0) + ed.sum(axis=0)
        if i > 1:
            g = delta @ case.layers[i - 1].W.astype(F32)  # (28)–(29)
            eg = F32(charge(n[i])) * (ad @ aW[i]) + ed @ aW[i]
    longest = max(B, *(m + 1 for m in n[:-1]), *n[2:])
    scale = u * safety(longest, L)
    return {k: scale * out[k].astype(np.float64) for k in tensors(L)}


def ceiling(case: Case, arithmetic: str, fwd: Forward | Layers | None = None
            ) -> dict[str, np.ndarray]:
    """Return the worst-case bound of every entry (any order, every rounding at its extreme):
    GROWTH × the magnitude pass at the tested dtype's u plus float64's. Never the verdict."""
    both = magnitude_pass(case, U[arithmetic] + U["float64"], fwd)
    return {k: GROWTH * v for k, v in both.items()}


def bounds(case: Case, arithmetic: str, fwd: Forward | Layers | None = None
           ) -> dict[str, np.ndarray]:
    """Return each entry's allowed |g − ref|, the tier that decides: `typical_pass` at the
    tested dtype's u plus float64's (the reference's own rounding), never above `ceiling`."""
    u = U[arithmetic] + U["float64"]
    top = ceiling(case, arithmetic, fwd)
    tier = typical_pass(case, u, fwd)
    return {k: np.minimum(tier[k], top[k]) for k in top}


LAMBDA = 6.0
"""Proxies of the tier (`typical_pass`): by Azuma–Hoeffding a sum of mean-independent
roundings, each δ within ±u, exceeds λ times the root of its variance proxy with probability at
most 2·exp(−λ²/2) = 3·10⁻⁸; the proxy takes each δ at its extremes, and a rounding spread
evenly over ±u has a third of that variance, where λ proxies are 10.4 standard deviations."""


def _sum_own(n: int, s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Return the variance proxy, in u², of a length-n sum's own roundings: value s, Σt² = q.

    In any order the additions' roundings are Σ P δ over its partial sums P (the products' own
    add Σ t δ, q). A value-independent order's partial sums have E ΣP² = n·s²/3 + (n·q − s²)/6
    (a random subset of i terms: mean i·s/n, variance i(n − i)/(n − 1) of the terms'); the
    proxy takes n·s²/3 + n·q/2: the q part, a random walk's, three times over for the spread
    of one order's ΣP² (same-signed terms' ΣP² hardly spreads).
    """
    return F32(n) * (s * s * F32(1 / 3) + q * F32(0.5)) + q


def _stagnation(n: int, u: float, S: np.ndarray) -> np.ndarray:
    """Return the biased part, in u, of a length-n sum of magnitude S = Σ|t|: n·min(1, 8nu)·S.

    Left to right, once the running sum is about 1/(n·u) times an addend (tens of ulps), its
    roundings stop being mean-independent: nearly equal addends round the same way again and
    again. Measured on NumPy's left-to-right float32 batch sums of the 5-4-3 net's δ₂ and δ₁
    (σ pairs sigmoid-sigmoid, tanh-softplus, relu-sigmoid; seeds 0–5): the error reached
    0.0126·n·u·S at 2¹⁴ and 0.0019 at 2¹⁶ (inside the random part), 0.0056 at 2¹⁷, 0.021 at
    2¹⁸, 0.019 at 2¹⁹ and 0.048 at 2²⁰, 149 times the random part's proxy there. This term is
    0.0625, 0.125, 0.25 and 0.5·n·u·S at 2¹⁷ … 2²⁰ (6–13× the measured), 2⁻⁹·n·u·S at 4,096,
    and the worst case n·u·S from n·u = 1/8 on.
    """
    return F32(n * min(1.0, 8.0 * n * u)) * S


def _biased(n: int, u: float, magnitude) -> np.ndarray | float:
    """Return `_stagnation` of a length-n sum, in u, where it can matter; else 0.

    The random part of a sum is at least λ·S/√2 (its proxy holds n·q/2 and q ≥ S²/n), so the
    stagnation term is left out while it stays below an eighth of that floor: n·min(1, 8nu)
    < λ/(8√2), every n up to 1,054 in float32 (`magnitude()` is then not computed).
    """
    return _stagnation(n, u, magnitude()) if _stagnates(n, u) else 0.0


SCALES = 4
"""Binades of a batch sum's running value, from its largest down, at which `_bias` reads the
addends' residues."""

Z_BIAS = 6.0
"""The residues' mean sawtooth counts where it stands Z_BIAS standard deviations of uniform
residues (1/√(12n)) from 0 (`_bias`)."""

SAMPLE = 4096
"""`_bias` reads at most this many rows of a batch, evenly spaced."""


def _bias(X: np.ndarray, u: float) -> tuple[np.ndarray | float, np.ndarray | None]:
    """Return, per column of X (batch in rows), the coherent rounding of a sum of its entries
    in any order, in units of u, and where its entries cluster within an ulp of the sum.

    The rounding: n·max_j U_j·|mean saw(v/U_j)| over the ulps U_j of SCALES binades of the
    running sum from its largest (|Σ| plus three random-walk deviations, at most Σ|v|) down,
    where that mean stands Z_BIAS deviations of uniform residues from 0; else 0 (the float 0
    where no column has one). saw(x) = round(x) − x. The clustering: where the non-zero
    entries' residues have a resultant |Σ exp(2πi·v/U_j)| Z_BIAS deviations of uniform ones
    (√count) from 0 at some U_j (None where no column clusters; exact zeros add exactly): a
    column whose residues all sit at 0 (its values on the grid) rounds nothing alone, and its
    products with another column do.

    Why. A running sum P lies on the grid of its ulp U, so adding v rounds by U·saw(v/U), a
    function of v's residue modulo U. Where addends spread over many U their residues are
    uniform and the roundings mean-independent (`_sum_own`'s random walk); where they cluster
    within less than U (samples that saturating layers have made alike) every addition of a
    cluster rounds the same way, and the errors add up. Measured on NumPy's left-to-right
    float32 batch sums of 784-64×7-10 at batch 4,096: all sigmoid, δ⁽⁸⁾ takes two values per
    unit and its sums erred by 322·u·Σ|δ| (b8 at 2.9 of the tier without this term);
    softplus-tanh-sigmoid-tanh-softplus-tanh-sigmoid-identity, δ⁽⁸⁾ = 2(a⁽⁸⁾ − y) spreads by a
    standard deviation of 8·10⁻⁵ per class, a third of U = 2.4·10⁻⁴, and its sum erred by
    290·u·Σ|δ| (b8 at 1.24). The mean sawtooth over the addends is what such a sum errs by per
    addition at that U; additions made below the largest binade have smaller U, and n·max_j
    counts every addition at the worst of them. Uniform residues' mean lies within Z_BIAS
    deviations of 0 but with probability 2·10⁻⁹, and is the random walk's: not counted twice.
    The rows read are evenly spaced, at most SAMPLE of them.
    """
    n = X.shape[0]
    rows = X if n <= SAMPLE else X[:: n // SAMPLE][:SAMPLE]
    m, scale = rows.shape[0], n / rows.shape[0]
    V = rows.astype(np.float64)
    top = np.minimum(scale * np.abs(V.sum(axis=0)) + 3 * np.sqrt(scale * (V * V).sum(axis=0)),
                     scale * np.abs(V).sum(axis=0))
    e = np.floor(np.log2(np.where(top > 0, top, 1.0)))
    out, clustered = np.zeros(X.shape[1]), np.zeros(X.shape[1], dtype=bool)
    nonzero = V != 0
    count = nonzero.sum(axis=0)
    for j in range(SCALES):
        U = np.exp2(e - j) * (2 * u)  # the ulp of a running sum in binade e − j
        x = V / U
        saw = np.rint(x) - x
        mean = np.abs(saw.mean(axis=0))
        counts = (mean * np.sqrt(12 * m) > Z_BIAS) & (top > 0)
        out = np.maximum(out, np.where(counts, n * U * mean, 0.0))
        turn = np.where(nonzero, 2 * np.pi * saw, np.nan)  # exact zeros add exactly
        R = np.hypot(np.nansum(np.cos(turn), axis=0), np.nansum(np.sin(turn), axis=0))
        clustered |= (R > Z_BIAS * np.sqrt(np.maximum(count, 1))) & (count > 0)
    return ((out / u).astype(F32) if out.any() else 0.0), (clustered if clustered.any() else None)


@functools.lru_cache(maxsize=2)
def _bias_inputs(case: Case, u: float) -> tuple[np.ndarray | float, np.ndarray | None]:
    """Return `_bias` of the case's inputs, once per case and u (cases are immutable)."""
    return _bias(inputs32(case), u)


def _both(left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray | None:
    """Return where the batch sums of δ_j·a_k may round coherently: where both δ_j and a_k
    cluster within an ulp of their sums (`_bias`); None where no pair does. A product one of
    whose factors spreads over many ulps spreads too."""
    if left is None or right is None:
        return None
    pairs = left[:, None] & right[None, :]
    return pairs if pairs.any() else None


def _stagnates(n: int, u: float) -> bool:
    """Say whether `_biased` counts a length-n sum's stagnation (see there)."""
    return n * min(1.0, 8.0 * n * u) >= LAMBDA / (8 * np.sqrt(2))


class _Squared:
    """x² in float32 as an operand, squared a block of rows at a time when it is used: x is the
    largest array of a large batch, and a new array of its size costs more than the squares."""

    def __init__(self, x: np.ndarray):
        self.x, self.rows = x, max(1, (1 << 20) // max(x.shape[1], 1))

    def __matmul__(self, right: np.ndarray) -> np.ndarray:
        out = np.empty((self.x.shape[0], right.shape[1]), dtype=F32)
        for k in range(0, self.x.shape[0], self.rows):
            block = self.x[k:k + self.rows]
            out[k:k + self.rows] = (block * block) @ right
        return out

    def tmm(self, left: np.ndarray) -> np.ndarray:
        """Return leftᵀ·x² for left shaped like x's rows (batch in rows)."""
        total = np.zeros((left.shape[1], self.x.shape[1]), dtype=F32)
        for k in range(0, self.x.shape[0], self.rows):
            block = self.x[k:k + self.rows]
            total += tmm(left[k:k + self.rows], block * block)
        return total


def _abs_inputs(case: Case) -> np.ndarray:
    """Return |x| in float32: x itself for pixel intensities, which are never negative."""
    x = inputs32(case)
    return x if x.min(initial=0.0) >= 0 else np.abs(x)


def typical_pass(case: Case, u: float, fwd: Forward | Layers | None = None
                 ) -> dict[str, np.ndarray]:
    """Return the tier's bound on |fl(g) − g| at unit roundoff u: λ·(random part) + systematic.

    Every rounding is split into a random part (a sum's additions and products, a
    mean-independent δ per operation, carried as a variance proxy r²) and a systematic part
    (each activation's ulp budget and elementwise rounding, carried as a magnitude m, coherent
    across the batch). Through a product with W both travel in quadrature (W's signs are drawn
    independently of everything the errors depend on); over the batch r adds in quadrature
    (samples are separate computations; the module docstring gives the measured coherence) and
    m adds as magnitudes; a batch sum's own roundings are the random walk's, and a coherent
    magnitude where its addends cluster within an ulp of the sum (`_bias`).

    The pass is carried in units of u and multiplied by u at the end; u enters it otherwise
    only where a sum stagnates (`_stagnates`) or an activation has a kink (`_bias` reads
    residues at float32's u, or the pass's where coarser: a float64 group's tier takes values
    clustered to float32's precision as clustered, and a pass free of u stays free).
    Where neither does (`_free_of_u`), the pass in units is the same at every u, and the last
    case's is kept (`_UNITS`): a float64 group's own tier and its float32 tier (the diagnosis's
    scale) then cost one pass, and each is the same u times the same numbers as when computed
    alone.
    """
    if not _free_of_u(case, u):
        return {k: u * v for k, v in _typical_units(case, u, fwd).items()}
    kept = _UNITS[0]
    if kept[0] is not case or kept[1] is not fwd:
        kept = _UNITS[0] = (case, fwd, _typical_units(case, u, fwd))
    return {k: u * v for k, v in kept[2].items()}


_UNITS: list[tuple] = [(None, None, {})]
"""The last (case, forward pass, `_typical_units`) that was free of u, compared by identity
(cases are immutable: adapters get copies; one tuple, read once)."""


def _free_of_u(case: Case, u: float) -> bool:
    """Say whether `_typical_units` reads u nowhere: no activation with a kink and no sum that
    stagnates (`_stagnates`) at u: the batch sums and each layer's forward and backward ones."""
    if any(activation(layer.sigma).kink for layer in case.layers):
        return False
    n, L = case.sizes, case.depth
    lengths = {case.batch, *(n[i - 1] + 1 for i in range(1, L + 1)), *n[2:L + 1]}
    return not any(_stagnates(m, u) for m in lengths)


def _typical_units(case: Case, u: float, fwd: Forward | Layers | None
                   ) -> dict[str, np.ndarray]:
    """Return `typical_pass` in units of u (float64), computed (u read as it says)."""
    L, B, n = case.depth, case.batch, case.sizes
    if fwd is None:
        fwd = forward_deep(case)
    z, a = fwd if isinstance(fwd, Layers) else ((None, fwd.z1, fwd.z2), (case.x, fwd.a1, fwd.a2))
    s = [None, *(activation(layer.sigma) for layer in case.layers)]
    aW = [None, *(np.abs(layer.W).astype(F32) for layer in case.layers)]
    W2 = [None, *(w * w for w in aW[1:])]
    A = [inputs32(case), *(a[i].astype(F32) for i in range(1, L))]  # a_i as float32
    absA = [_abs_inputs(case), *(np.abs(v) for v in A[1:])]
    A2 = [_Squared(inputs32(case)), *(v * v for v in A[1:])]  # a_i², a_0 = x exact
    r2, m = [None], [None]  # a_i's error parts (x has none)
    rz2, mz, ds = [None], [None], [None]
    for i in range(1, L + 1):
        b2 = case.layers[i - 1].b.astype(F32) ** 2
        zi = z[i].astype(F32)
        q = A2[i - 1] @ W2[i].T + b2
        own = _sum_own(n[i - 1] + 1, zi, q)
        mzi = _biased(n[i - 1] + 1, u, lambda A=absA[i - 1], w=aW[i], b=b2: A @ w.T + np.sqrt(b))
        if i > 1:
            rz = own + r2[i - 1] @ W2[i].T
            mzi = mzi + np.sqrt(m[i - 1] ** 2 @ W2[i].T)
        else:
            rz = own
        dsi = s[i].df(zi)
        rz2.append(rz)
        mz.append(mzi)
        ds.append(dsi)
        r2.append(dsi * dsi * rz)
        m.append(np.abs(dsi) * mzi + s[i].f_err(zi))
    g = (2.0 * (a[L] - case.y)).astype(F32)  # (19) differentiated
    rg2, mg = 4 * r2[L], 2 * m[L] + np.abs(g)
    out, uF = {}, max(u, U["float32"] + U["float64"])  # `_bias` at float32's u or above
    for i in range(L, 0, -1):
        zi, dsi, w = z[i].astype(F32), ds[i], n[i]
        d2 = np.abs(s[i].d2f(zi))
        r_ds = d2 * np.sqrt(rz2[i])
        m_ds = d2 * mz[i] + s[i].df_err(zi)
        if s[i].kink:
            near = np.abs(zi) <= u * (LAMBDA * np.sqrt(rz2[i]) + mz[i])
            m_ds = np.where(near, np.maximum(m_ds, F32(s[i].kink / u)), m_ds)
        delta = dsi * g
        ad = np.abs(delta)
        r_d = np.abs(dsi) * np.sqrt(rg2) + np.abs(g) * r_ds
        m_d = np.abs(dsi) * mg + np.abs(g) * m_ds + ad
        dd2, rd2 = delta * delta, r_d * r_d
        # one pass over a_(i−1) per kind: the large products of a large batch share it
        stack = np.hstack([dd2, rd2])
        squares = A2[0].tmm(stack) if i == 1 else tmm(stack, A2[i - 1])
        long_sum = _stagnates(B, u)
        if absA[i - 1] is A[i - 1]:
            parts = [delta, m_d, ad] if long_sum else [delta, m_d]
            both = tmm(np.hstack(parts), A[i - 1])
            dW, mW = both[:w], both[w:2 * w]
            S = both[2 * w:] if long_sum else None
        else:
            dW = tmm(delta, A[i - 1])
            both = tmm(np.hstack([m_d, ad]), absA[i - 1])
            mW, S = both[:w], both[w:]
        rW = _sum_own(B, dW, squares[:w]) + 2 * squares[w:]
        bd, cd = _bias(delta, uF)  # addends clustered within an ulp of the sum round alike
        if cd is not None:
            both = _both(cd, (_bias(A[i - 1], uF) if i > 1 else _bias_inputs(case, uF))[1])
            if both is not None:  # where both factors cluster: the worst case
                Sw = S if S is not None else tmm(ad, absA[i - 1])
                mW = mW + np.where(both, F32(B) * Sw, F32(0))
        mW = mW + _biased(B, u, lambda S=S: S)
        if i > 1:
            rW = rW + 2 * tmm(dd2, r2[i - 1])
            mW = mW + tmm(ad, m[i - 1])
        db = delta.sum(axis=0)
        rb = _sum_own(B, db, dd2.sum(axis=0)) + 2 * rd2.sum(axis=0)
        out[f"W{i}"] = LAMBDA * np.sqrt(rW) + mW
        mb = m_d.sum(axis=0) + _biased(B, u, lambda ad=ad: ad.sum(axis=0)) + bd
        out[f"b{i}"] = LAMBDA * np.sqrt(rb) + mb
        if i > 1:
            Wi = case.layers[i - 1].W.astype(F32)
            g = delta @ Wi
            q = dd2 @ W2[i]
            rg2 = _sum_own(n[i], g, q) + rd2 @ W2[i]
            mg = np.sqrt(m_d ** 2 @ W2[i]) + _biased(n[i], u, lambda ad=ad, w=aW[i]: ad @ w)
    return {k: out[k].astype(np.float64) for k in tensors(L)}
