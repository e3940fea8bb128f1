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
from numpy.typing import DTypeLike

from .specs import MOMENT_SLOTS, packed_size

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


def floor_to(baseline: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """float64 baselines → the largest value of ``dtype`` not above each (-inf below the finite range, +inf at or
    above its top), so that ``a > floor  ⇔  a > baseline`` for every finite ``a`` of that dtype, compared in the
    dtype itself (on a GPU as well as here)."""
    baseline = np.asarray(baseline, dtype=np.float64)
    if np.isnan(baseline).any():
        raise ValueError("a baseline is NaN")
    finite_max = float(np.finfo(dtype).max)
    clipped = np.clip(baseline, -finite_max, finite_max)
    floor = np.asarray(clipped.astype(dtype))  # round to nearest, then step down where that rounded up
    up = floor.astype(np.float64) > clipped
    floor[up] = np.nextafter(floor[up], np.asarray(-np.inf, dtype))
    floor[baseline >= finite_max] = np.inf  # nothing finite exceeds it
    floor[baseline < -finite_max] = -np.inf  # every finite value exceeds it
    return floor


def threshold_keys(baseline: np.ndarray) -> np.ndarray:
    """float64 baselines → keys t with ``key(a) > t  ⇔  float(a) > baseline`` for every finite float16 a."""
    floor = floor_to(baseline, np.float16)
    keys = f16_keys(np.clip(floor, -np.finfo(np.float16).max, np.finfo(np.float16).max))
    keys[floor == np.inf] = _MAX_KEY  # nothing finite exceeds it
    keys[floor == -np.inf] = f16_keys(np.array([-np.finfo(np.float16).max], np.float16))[0] - 1  # below -65504's key
    return keys


@numba.njit(inline="always")
def _raw_key(b: np.uint16) -> np.uint16:
    """``_key`` without the -0 rule, branch-free so loops vectorise; exact against ``threshold_keys``,
    which never yields the one key (0x7FFF, that of -0) where -0 and +0 would differ."""
    return b ^ (np.uint16(0x8000) | ((b >> np.uint16(15)) * np.uint16(0x7FFF)))


@numba.njit(parallel=True, nogil=True, cache=True)
def _count_greater(
    bits: np.ndarray, thresholds: np.ndarray, labels: np.ndarray, block: int, counts: np.ndarray
) -> None:
    n, m = bits.shape
    n_classes = counts.shape[0]
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


def count_greater(
    data: np.ndarray, thresholds: np.ndarray, labels: np.ndarray, n_classes: int = 2, out: np.ndarray | None = None
) -> np.ndarray:
    """(E, ...) float16, (M,) keys, (E,) integer labels → int64 (n_classes, M): per label, how many values exceed
    the baseline. An example whose label lies outside ``0..n_classes-1`` (e.g. -1) is skipped: a binary sub-task
    of a multi-class task is counted without copying the data. ``out``: add the counts into it (a task's running
    total) instead of a new array."""
    bits = _as_bits(data)
    labels = _integer_labels(labels)
    out = np.zeros((n_classes, bits.shape[1]), np.int64) if out is None else _accumulator(out, n_classes, bits.shape[1])
    _count_greater(bits, np.ascontiguousarray(thresholds, np.uint16).ravel(), labels, 8192, out)
    return out


def _integer_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    return labels.astype(np.int64)


def _accumulator(out: np.ndarray, n_classes: int, width: int) -> np.ndarray:
    """``out`` as a kernel adds into it: C-contiguous int64 (n_classes, width), checked, never copied."""
    if out.dtype != np.int64 or out.shape != (n_classes, width) or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous int64 of shape {(n_classes, width)}, not {out.dtype} {out.shape}")
    return out


@numba.njit(parallel=True, nogil=True, cache=True)
def _fixed_point_sum(bits: np.ndarray, block: int) -> tuple[np.ndarray, np.bool_]:
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
    """Any inf or NaN in a float16 array (read in memory order: a transposed view is not copied)."""
    return bool(_nonfinite(np.ravel(data, order="K").view(np.uint16)))


# ---- one pass over a captured block: its above-baseline bits (packed 8 neurons to a byte) and its moments

#: moments of a float16 block (MOMENT_SLOTS), exact integers: Σm, Σhi², Σhi·lo, Σlo² for m = a·2^24 = hi·2^20 + lo
#: (|m| < 2^40)
_LOW = (1 << 20) - 1


@numba.njit(inline="always")
def _pack(above: np.ndarray, out: np.ndarray) -> None:
    """0/1 per neuron → bytes, neuron 8j+k in bit k of byte j."""
    for byte in range(out.size):
        v = 0
        for k in range(8):
            v |= above[byte * 8 + k] << k
        out[byte] = v


@numba.njit(parallel=True, nogil=True, cache=True)
def _bits_moments_f16(
    values: np.ndarray, keys: np.ndarray, with_bits: bool, bits: np.ndarray, moments: np.ndarray
) -> None:
    n_layers, n, n_tokens, n_neurons = values.shape
    for layer in numba.prange(n_layers):
        above = np.zeros((n_neurons + 7) // 8 * 8, np.uint8)
        for e in range(n):
            for t in range(n_tokens):
                row = values[layer, e, t]
                key = keys[layer, t]
                for j in range(n_neurons):
                    m = _fixed(row[j])
                    a = -m if m < 0 else m
                    hi = a >> 20
                    lo = a & _LOW
                    moments[0, layer, j] += m
                    moments[1, layer, j] += hi * hi
                    moments[2, layer, j] += hi * lo
                    moments[3, layer, j] += lo * lo
                    above[j] = _raw_key(row[j]) > key[j]
                if with_bits:
                    _pack(above, bits[layer, e, t])


@numba.njit(parallel=True, nogil=True, cache=True)
def _bits_moments_f32(
    values: np.ndarray, baseline: np.ndarray, with_bits: bool, bits: np.ndarray, moments: np.ndarray
) -> None:
    n_layers, n, n_tokens, n_neurons = values.shape
    for layer in numba.prange(n_layers):
        above = np.zeros((n_neurons + 7) // 8 * 8, np.uint8)
        for e in range(n):
            for t in range(n_tokens):
                row = values[layer, e, t]
                base = baseline[layer, t]
                for j in range(n_neurons):
                    a = np.float64(row[j])
                    moments[0, layer, j] += a
                    moments[1, layer, j] += a * a
                    above[j] = a > base[j]
                if with_bits:
                    _pack(above, bits[layer, e, t])


def thresholds_for(baseline: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """What the kernels compare a dtype's values with: keys for float16 (``threshold_keys``), the float64 baseline
    itself for float32 (a float32 value compares exactly in float64)."""
    return threshold_keys(baseline) if np.dtype(dtype) == np.float16 else np.asarray(baseline, np.float64)


def bits_and_moments(values: np.ndarray, thresholds: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
    """A block (example, layer, token, neuron) of float16 or float32 values and its ``thresholds_for`` the
    baseline (layer, token, neuron) → (its bits ``1[a > baseline]``
    (example, layer, token, byte), neuron ``8·byte + i`` in bit ``i``, padding bits 0; None without a baseline),
    and its moments (MOMENT_SLOTS, layer, neuron), summed over examples and tokens: exact integers for float16
    (see ``moment_stats``), Σa and Σa² in float64 (then zeros) for float32, summed in a fixed order."""
    n, n_layers, n_tokens, n_neurons = values.shape
    layer_major = np.ascontiguousarray(values.transpose(1, 0, 2, 3))  # no copy for extraction's layer-major blocks
    with_bits = thresholds is not None
    bits = np.empty((n_layers, n, n_tokens, packed_size(n_neurons)) if with_bits else (0, 0, 0, 1), np.uint8)
    if values.dtype == np.float16:
        moments = np.zeros((MOMENT_SLOTS, n_layers, n_neurons), np.int64)
        keys = thresholds if thresholds is not None else np.zeros((n_layers, n_tokens, n_neurons), np.uint16)
        _bits_moments_f16(layer_major.view(np.uint16), keys, with_bits, bits, moments)
    else:
        moments = np.zeros((MOMENT_SLOTS, n_layers, n_neurons), np.float64)
        base = thresholds if thresholds is not None else np.zeros((n_layers, n_tokens, n_neurons))
        _bits_moments_f32(layer_major.astype(np.float32, copy=False), base, with_bits, bits, moments)
    return (bits.transpose(1, 0, 2, 3) if with_bits else None), moments


def moment_stats(moments: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block moments (..., block, MOMENT_SLOTS, layer, neuron) of ``count`` values per neuron → (mean, std)
    (..., layer, neuron) in float64 (the population std). Blocks are combined in a fixed order, so every run
    and every sharding gives the same bits."""
    if moments.dtype == np.int64:  # exact per block (each slot < 2^53), so float64 holds each exactly
        m = moments.astype(np.float64).sum(axis=-4)
        total = m[..., 0, :, :] / FIXED_POINT_SCALE
        squares = (m[..., 1, :, :] * 2.0**40 + m[..., 2, :, :] * 2.0**21 + m[..., 3, :, :]) / float(
            FIXED_POINT_SCALE
        ) ** 2
    else:
        m = moments.sum(axis=-4)
        total, squares = m[..., 0, :, :], m[..., 1, :, :]
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean * mean, 0.0))


#: one in every byte lane of a 64-bit word: ``(word >> k) & LANES`` is bit k of each of its 8 bytes
LANES = 0x0101010101010101
#: rows a byte-wide counter can add up before it is flushed
LANE_ROWS = 255


@numba.njit(parallel=True, nogil=True, cache=True)
def _count_bits(words: np.ndarray, labels: np.ndarray, block: int, counts: np.ndarray) -> None:
    """SWAR count: a row's 64-bit word adds bit k of its 8 bytes into 8 byte-wide counters at once (one shift,
    and, add per word and bit instead of 64), which are flushed into the int64 ``counts`` every ``LANE_ROWS``
    rows and at the end."""
    n, m = words.shape
    n_classes = counts.shape[0]
    for start in numba.prange((m + block - 1) // block):
        lo = start * block
        width = min(lo + block, m) - lo
        lanes = np.zeros((n_classes, 8, width), np.uint64)  # [class, bit, word]: 8 byte counters per word
        rows = np.zeros(n_classes, np.int64)
        for e in range(n + 1):
            flush = e == n
            if not flush:
                label = labels[e]
                if label < 0 or label >= n_classes:
                    continue
                row = words[e, lo : lo + width]
                for k in range(8):
                    acc = lanes[label, k]
                    for j in range(width):
                        acc[j] += (row[j] >> np.uint64(k)) & np.uint64(LANES)
                rows[label] += 1
            for c in range(n_classes):
                if rows[c] == 0 or not (flush or rows[c] == LANE_ROWS):
                    continue
                for k in range(8):
                    for j in range(width):
                        word = lanes[c, k, j]
                        for i in range(8):  # byte i of word j holds neurons 8 * (8 * (lo + j) + i) + k
                            counts[c, 64 * (lo + j) + 8 * i + k] += (word >> np.uint64(8 * i)) & np.uint64(255)
                        lanes[c, k, j] = 0
                rows[c] = 0


def count_bits(bits: np.ndarray, labels: np.ndarray, n_neurons: int, n_classes: int = 2) -> np.ndarray:
    """(E, ..., byte) packed above-baseline bits, (E,) labels → int64 (n_classes, ..., neuron): per label, how many
    bits are set; labels outside ``0..n_classes-1`` are left out, as in ``count_greater``."""
    row = int(np.prod(bits.shape[1:]))
    counts = add_bit_counts(
        np.ascontiguousarray(bits, np.uint8).reshape(bits.shape[0], row), labels, bit_counts(n_classes, row)
    )
    return unpacked(counts, row, bits.shape[1:-1], n_neurons)


def bit_counts(n_classes: int, row: int) -> np.ndarray:
    """Zeroed counts for rows of ``row`` packed bytes (``add_bit_counts``): one per bit, whole 64-bit words."""
    return np.zeros((n_classes, (row + -row % 8) * 8), np.int64)


def add_bit_counts(bits: np.ndarray, labels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(E, row) packed bits, (E,) labels: add into ``out`` (``bit_counts``) per label how many of each bit are set;
    a row of whole 64-bit words is counted where it lies, a shorter one is padded with zero bytes (which count
    nothing)."""
    if bits.shape[1] % 8 or not bits.flags.c_contiguous:
        bits = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 8)))
    words = bits.view(np.uint64)
    _count_bits(words, _integer_labels(labels), 512, _accumulator(out, out.shape[0], words.shape[1] * 64))
    return out


def unpacked(counts: np.ndarray, row: int, shape: tuple[int, ...], n_neurons: int) -> np.ndarray:
    """``bit_counts`` of rows shaped ``(*shape, byte)`` → (n_classes, *shape, neuron)."""
    return counts[:, : row * 8].reshape(counts.shape[0], *shape, -1)[..., :n_neurons]
