"""Correct adapters that sum in the orders real frameworks use; the bound must hold for each.

Every sum of the backward and forward pass goes through one order: the inner dimension of each
matrix product (n0 in z1, n1 in z2, n2 in δ2·W2, the batch in ∂C/∂W1 and ∂C/∂W2) and the batch
sums of ∂C/∂b1 and ∂C/∂b2. The orders:

- SequentialSums: left to right, each product rounded, then added (no FMA).
- FMASums: left to right, each product exact and added with one rounding (float32 only; in
  float64 an exact product needs double-double arithmetic, so float64 sums as SequentialSums).
- BlockedSums: K in blocks of 256, each block summed left to right from 0, the block sums added
  left to right (a BLAS kernel's register accumulator added into C after each K-block).
- PairwiseSums: a balanced tree, K padded with zeros to a power of two and halved level by level.
- SplitSums: K cut into 32 contiguous parts ("thread blocks"), each summed left to right, the
  part sums added in a random order drawn per output entry (atomics on a GPU).

All vectorised: a sum runs over row blocks of the output and chunks of K, whose terms form a
(k, rows, cols) array. numpy's `cumsum` along axis 0 adds strictly in sequence, so a sequential
sum is a cumsum whose running total enters the next chunk by being added to its first term —
the same rounding as the next step of the loop (tests/test_orders.py checks it bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from adapters.example import NumpyAdapter

LIMIT = 1 << 22
"""Elements in one chunk of terms (32 MiB in float64): bounds the memory of every sum."""

Terms = Callable[[slice, slice], np.ndarray]
"""terms(rows, ks) → the terms of the output rows for the K-range ks, shaped (k, rows, cols)."""


class OrderedSums(NumpyAdapter):
    """Hand-written backprop whose every sum runs in the order `total` implements."""

    name = "ordered_sums"
    exact_products = False  # FMA: the terms reach the sum unrounded

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Multiply two matrices, summing the inner dimension in this adapter's order."""
        wide = self.exact_products and a.dtype == np.float32
        a_, b_ = (a.astype(np.float64), b.astype(np.float64)) if wide else (a, b)

        def terms(rows: slice, ks: slice) -> np.ndarray:
            return a_[rows, ks].T[:, :, None] * b_[ks, None, :]

        return self._sum(terms, a.shape[1], a.shape[0], b.shape[1], a.dtype)

    def colsum(self, a: np.ndarray) -> np.ndarray:
        """Sum a matrix's rows (the batch) in this adapter's order."""
        return self._sum(lambda rows, ks: a[ks, None, :], a.shape[0], 1, a.shape[1], a.dtype)[0]

    def _sum(self, terms: Terms, K: int, m: int, n: int, dtype) -> np.ndarray:
        out = np.empty((m, n), dtype=dtype)
        step = max(1, LIMIT // (64 * max(n, 1)))  # rows per block: at least 64 terms per chunk
        for r0 in range(0, m, step):
            rows = slice(r0, min(m, r0 + step))
            out[rows] = self.total(lambda ks, rows=rows: terms(rows, ks), K, dtype)
        return out

    def total(self, terms: Callable[[slice], np.ndarray], K: int, dtype) -> np.ndarray:
        """Return the sum of terms(0:K) over axis 0, in this adapter's order."""
        raise NotImplementedError


def chunks(K: int, width: int, start: int = 0) -> Iterator[slice]:
    """Yield the K-range start…K in slices of at most `width` terms."""
    for k0 in range(start, K, width):
        yield slice(k0, min(K, k0 + width))


def chunk_width(terms: Callable[[slice], np.ndarray], K: int) -> int:
    """Return how many terms of K fit in one chunk of LIMIT elements."""
    per_term = terms(slice(0, 1))[0].size if K else 1
    return max(1, LIMIT // max(per_term, 1))


def fresh(t: np.ndarray, dtype) -> np.ndarray:
    """Return t in `dtype`, copied unless it is already a new array of its own to sum in place."""
    return t if t.dtype == dtype and t.flags.owndata else t.astype(dtype)


def sequential(terms: Callable[[slice], np.ndarray], K: int, dtype, k0: int = 0,
               k1: int | None = None) -> np.ndarray:
    """Return Σ terms(k0:k1) added left to right in `dtype`, each term rounded first."""
    k1 = K if k1 is None else k1
    acc = None
    for ks in chunks(k1, chunk_width(terms, K), k0):
        t = fresh(terms(ks), dtype)
        if acc is not None:
            t[0] += acc  # the next step of the loop: fl(acc + t₀)
        np.cumsum(t, axis=0, out=t)
        acc = t[-1].copy()
    if acc is None:
        return np.zeros(terms(slice(0, 0)).shape[1:], dtype=dtype)
    return acc


def part_sums(terms: Callable[[slice], np.ndarray], K: int, width: int, dtype) -> np.ndarray:
    """Return the left-to-right sums of K's consecutive parts of `width` terms, (parts, …)."""
    per_chunk = chunk_width(terms, K)
    if width > per_chunk:
        return np.stack([sequential(terms, K, dtype, k0, min(K, k0 + width))
                         for k0 in range(0, K, width)])
    sums = []
    for ks in chunks(K, (per_chunk // width) * width):
        t = fresh(terms(ks), dtype)
        pad = -len(t) % width  # zeros added to a sum change nothing
        t = np.concatenate([t, np.zeros((pad, *t.shape[1:]), dtype)]) if pad else t
        t = t.reshape(-1, width, *t.shape[1:])
        sums.append(np.cumsum(t, axis=1, out=t)[:, -1])
    return np.concatenate(sums)


class SequentialSums(OrderedSums):
    """Correct, in the least accurate common order: every sum taken one term at a time, each
    product rounded before it is added (no FMA, no blocking, no pairwise tree).
    Not a bug: a device free to order its sums any way must still pass."""

    name = "sequential_sums"

    def total(self, terms, K, dtype):
        return sequential(terms, K, dtype)


class FMASums(OrderedSums):
    """Correct: every sum left to right by fused multiply-adds, fl(acc + a·b) rounded once.

    float32 only: the product of two float32 is exact in float64, and fl₆₄(acc + p) rounded to
    float32 equals the one rounding of acc + p except where it lands on a float32 midpoint
    while inexact; there it is nudged one float64 ulp toward the exact sum. float64 sums as
    SequentialSums (an exact float64 product needs double-double arithmetic)."""

    name = "fma_sums"
    exact_products = True

    def total(self, terms, K, dtype):
        if dtype != np.float32:
            return sequential(terms, K, dtype)
        acc = np.zeros(terms(slice(0, 0)).shape[1:], dtype=np.float32)
        for ks in chunks(K, chunk_width(terms, K)):
            acc = fma_chain(np.asarray(terms(ks), np.float64), acc)
        return acc


MIDPOINT_BITS = np.uint32((1 << 29) - 1)  # the 52 − 23 float64 fraction bits float32 drops
MIDPOINT = np.uint32(1 << 28)


def fma_chain(p: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Return acc + p₀ + p₁ + … (float32 acc, exact float64 products) by fused multiply-adds."""
    out = np.empty(p.shape, dtype=np.float32)
    s = np.empty(p.shape, dtype=np.float64)  # each step's float64 sum, kept to find ties
    k = 0
    while k < len(p):
        prev = acc if k == 0 else out[k - 1]
        for pk, sk, ok in zip(p[k:], s[k:], out[k:], strict=True):  # fl₃₂(fl₆₄(prev + pk))
            np.add(prev, pk, out=sk)
            np.copyto(ok, sk, casting="unsafe")
            prev = ok
        k = _first_tie(p, s, out, acc, k)
    return out[-1] if len(p) else acc


def _first_tie(p: np.ndarray, s: np.ndarray, out: np.ndarray, acc: np.ndarray, k: int) -> int:
    """Correct the first step from k on whose float64 sum s fell on a float32 tie while inexact
    (there fl₃₂(fl₆₄(·)) rounds twice); return the step to resume from, len(p) if none."""
    low = s[k:].view(np.uint32)[..., ::2]  # little-endian: the low word holds the bits dropped
    ties = np.flatnonzero(((low & MIDPOINT_BITS) == MIDPOINT).reshape(len(low), -1).any(axis=1))
    for i in k + ties:
        prev = acc if i == 0 else out[i - 1]
        fixed = fma_step(prev, p[i])
        if not np.array_equal(fixed, out[i]):
            out[i] = fixed
            return i + 1
    return len(p)


def fma_step(acc: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Return acc + p (float32 + exact float64 product) rounded once to float32."""
    s = acc + p  # float64, rounded once
    mid = (s.view(np.uint32)[..., ::2] & MIDPOINT_BITS) == MIDPOINT
    if mid.any():  # a float32 tie in float64: break it by the error of the float64 sum
        a64 = acc.astype(np.float64)
        bb = s - a64
        err = (a64 - (s - bb)) + (p - bb)  # TwoSum: s + err = acc + p exactly
        fix = mid & (err != 0)
        s[fix] = np.nextafter(s[fix], np.where(err[fix] > 0, np.inf, -np.inf))
    return s.astype(np.float32)


class BlockedSums(OrderedSums):
    """Correct: K in blocks of 256 each summed left to right from 0, the block sums added left
    to right — BLAS's order for a long K."""

    name = "blocked_sums"
    block = 256

    def total(self, terms, K, dtype):
        sums = part_sums(terms, K, self.block, dtype)
        return sequential(lambda ks: sums[ks], len(sums), dtype)


class PairwiseSums(OrderedSums):
    """Correct: a balanced binary tree, K padded with zeros to a power of two."""

    name = "pairwise_sums"

    def total(self, terms, K, dtype):
        stack: list[tuple[int, np.ndarray]] = []  # (level, subtree sum), levels decreasing
        width = 1 << int(np.log2(chunk_width(terms, K)))
        width = min(width, 1 << int(np.ceil(np.log2(max(K, 1)))))
        level0 = int(np.log2(width))
        for ks in chunks(K, width):
            t = np.asarray(terms(ks), dtype)
            if len(t) < width:
                t = np.concatenate([t, np.zeros((width - len(t), *t.shape[1:]), dtype)])
            while len(t) > 1:
                t = t[0::2] + t[1::2]
            s, level = t[0], level0
            while stack and stack[-1][0] == level:
                s, level = stack.pop()[1] + s, level + 1
            stack.append((level, s))
        if not stack:
            return np.zeros(terms(slice(0, 0)).shape[1:], dtype=dtype)
        s = stack.pop()[1]
        while stack:  # the zero padding joins the unfinished subtrees exactly
            s = stack.pop()[1] + s
        return s


class SplitSums(OrderedSums):
    """Correct: K cut into 32 parts each summed left to right, the part sums added in a seeded
    random order, a different one for each output entry — GPU thread blocks and atomics."""

    name = "split_sums"
    parts = 32
    seed = 0

    def total(self, terms, K, dtype):
        sums = part_sums(terms, K, max(1, -(-K // self.parts)), dtype)
        rng = np.random.default_rng([self.seed, K, *sums.shape])
        order = np.argsort(rng.random(sums.shape), axis=0)
        sums = np.take_along_axis(sums, order, axis=0)
        return sequential(lambda ks: sums[ks], len(sums), dtype)


ORDERS = {a.name: a for a in (SequentialSums, FMASums, BlockedSums, PairwiseSums, SplitSums)}
"""The correct adapters by name, one per summation order."""
