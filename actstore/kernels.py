"""numba kernels for float16 activations: exact sums and strict-greater counts on the raw bits.

numba cannot take float16 arrays, and numpy on float16 is slow (0.24 GB/s measured here), so the
kernels read float16 data as uint16. Two facts make that exact:

- Order: ``key(b) = b ^ 0xFFFF`` for negative values and ``b ^ 0x8000`` otherwise (with -0 read as
  +0) maps float16 bit patterns to uint16 keys whose unsigned order is the float order.
- Sums: every finite float16 is an integer multiple of 2^-24 below 2^40 in magnitude, so summing
  ``round(a * 2^24)`` in int64 is exact for up to 2^23 examples: Eq. 2's baseline no longer
  depends on the order in which blocks are summed (stream vs. stored recomputation agree).

``a > b`` for a float16 ``a`` and a float64 ``b`` equals ``a > floor16(b)``, the largest float16 not
above ``b``, since no float16 lies strictly between the two; thresholds become keys once.
"""

from __future__ import annotations

import numba
import numpy as np

FIXED_POINT_SCALE = 2**24
_EXPONENT = 0x7C00
_MANTISSA = 0x03FF
_MAX_KEY = 0xFFFF


@numba.njit(inline="always")
def _key(b: int) -> int:
    if b == 0x8000:  # -0 compares equal to +0
        b = 0
    return b ^ 0xFFFF if b & 0x8000 else b ^ 0x8000


@numba.njit(inline="always")
def _fixed(b: int) -> int:
    """The float16 with bits ``b`` times 2^24, as an exact integer."""
    exponent = (b & _EXPONENT) >> 10
    mantissa = b & _MANTISSA
    value = mantissa if exponent == 0 else (mantissa | 0x0400) << (exponent - 1)
    return -value if b & 0x8000 else value


def _as_bits(data: np.ndarray) -> np.ndarray:
    """(E, ...) float16 (or its uint16 view) → C-contiguous (E, M) uint16."""
    if data.dtype == np.float16:
        data = data.view(np.uint16)
    if data.dtype != np.uint16:
        raise TypeError(f"expected float16 data, got {data.dtype}")
    data = np.ascontiguousarray(data)
    return data.reshape(data.shape[0], -1)


@numba.njit(parallel=True, nogil=True, cache=True)
def _keys(bits: np.ndarray) -> np.ndarray:
    out = np.empty_like(bits)
    for i in numba.prange(bits.size):
        out[i] = _key(bits[i])
    return out


def f16_keys(a: np.ndarray) -> np.ndarray:
    """float16 array (any shape) → uint16 order-preserving keys."""
    bits = np.ascontiguousarray(a).view(np.uint16)
    return _keys(bits.ravel()).reshape(a.shape)


def threshold_keys(baseline: np.ndarray) -> np.ndarray:
    """float64 baselines → keys t with ``key(a) > t  ⇔  float(a) > baseline`` for every finite float16 a."""
    baseline = np.asarray(baseline, dtype=np.float64)
    if np.isnan(baseline).any():
        raise ValueError("a baseline is NaN")
    finite_max = float(np.finfo(np.float16).max)
    clipped = np.clip(baseline, -finite_max, finite_max)
    floor = clipped.astype(np.float16)  # round to nearest, then step down where that rounded up
    up = floor.astype(np.float64) > clipped
    floor[up] = np.nextafter(floor[up], np.float16(-np.inf))
    keys = f16_keys(floor)
    keys[baseline >= finite_max] = _MAX_KEY  # nothing finite exceeds it
    below = baseline < -finite_max  # every finite value exceeds it: a key below that of -65504
    keys[below] = f16_keys(np.array([-finite_max], np.float16))[0] - 1
    return keys


@numba.njit(inline="always")
def _raw_key(b: np.uint16) -> np.uint16:
    """``_key`` without the -0 rule, branch-free so loops vectorise; exact against ``threshold_keys``,
    which never yields the one key (0x7FFF, that of -0) where -0 and +0 would differ."""
    return b ^ (np.uint16(0x8000) | ((b >> np.uint16(15)) * np.uint16(0x7FFF)))


@numba.njit(parallel=True, nogil=True, cache=True)
def _count_greater(bits: np.ndarray, thresholds: np.ndarray, labels: np.ndarray, block: int,
                   n_classes: int) -> np.ndarray:
    n, m = bits.shape
    counts = np.zeros((n_classes, m), np.int64)
    for start in numba.prange((m + block - 1) // block):
        lo = start * block
        hi = min(lo + block, m)
        t = thresholds[lo:hi]
        local = np.zeros((n_classes, hi - lo), np.uint16)  # per-thread, flushed before it could overflow
        for e in range(n):
            label = labels[e]
            if 0 <= label < n_classes:  # any other label: the example is left out
                row = bits[e, lo:hi]
                acc = local[label]
                for j in range(hi - lo):
                    acc[j] += np.uint16(_raw_key(row[j]) > t[j])
            if e % 32768 == 32767 or e == n - 1:
                for c in range(n_classes):
                    for j in range(hi - lo):
                        counts[c, lo + j] += local[c, j]
                        local[c, j] = 0
    return counts


def count_greater(data: np.ndarray, thresholds: np.ndarray, labels: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """(E, ...) float16, (M,) keys, (E,) integer labels → int64 (n_classes, M): per label, how many values exceed
    the baseline. An example whose label lies outside ``0..n_classes-1`` (e.g. -1) is skipped: a binary sub-task
    of a multi-class task is counted without copying the data."""
    bits = _as_bits(data)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    return _count_greater(bits, np.ascontiguousarray(thresholds, np.uint16).ravel(), labels.astype(np.int64), 8192,
                          n_classes)


@numba.njit(parallel=True, nogil=True, cache=True)
def _fixed_point_sum(bits: np.ndarray, block: int) -> tuple[np.ndarray, bool]:
    n, m = bits.shape
    total = np.zeros(m, np.int64)
    bad = np.zeros((m + block - 1) // block, np.bool_)
    for start in numba.prange((m + block - 1) // block):
        lo = start * block
        hi = min(lo + block, m)
        for e in range(n):
            for j in range(lo, hi):
                b = bits[e, j]
                if b & _EXPONENT == _EXPONENT:
                    bad[start] = True
                total[j] += _fixed(b)
    return total, bad.any()


def fixed_point_sum(data: np.ndarray) -> np.ndarray:
    """(E, ...) float16 → int64 (...) exact Σ a·2^24 over the first axis."""
    total, bad = _fixed_point_sum(_as_bits(data), 2048)
    if bad:
        raise ValueError("cannot sum inf or NaN activations")
    return total.reshape(data.shape[1:])


@numba.njit(parallel=True, nogil=True, cache=True)
def _nonfinite(bits: np.ndarray) -> bool:
    found = 0
    for i in numba.prange(bits.size):
        if bits[i] & _EXPONENT == _EXPONENT:
            found += 1
    return found > 0


def has_nonfinite(data: np.ndarray) -> bool:
    """Any inf or NaN in a float16 array."""
    return bool(_nonfinite(np.ascontiguousarray(data).view(np.uint16).ravel()))
