"""Log-spaced processing-time histograms: percentiles from the rollups, not from `messages`.

Bin `i` of `message_stats.processing_histogram` counts the messages with
`width_bucket(processing_ms, EDGES_MS) == i` (PostgreSQL) == `bisect_right(EDGES_MS, ms)` (Python):
bin 0 holds times below 1 ms, bin i holds [EDGES_MS[i-1], EDGES_MS[i]), the last bin everything
from the last edge on. Edges grow by 2^(1/4) (≈19 %), integers from 1 ms to ~3 days, so an
interpolated percentile is within one bin width (≤ 19 %) of the exact value and clamped to the
observed maximum. Integer edges keep Python and SQL bins identical (no floating point).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

#: Lower bounds (ms) of bins 1..N-1; bin 0 is "< 1 ms".
EDGES_MS: tuple[int, ...] = tuple(
    sorted({math.ceil(2 ** (k / 4)) for k in range(0, 4 * 28)})  # up to 2^28 ms ≈ 3.1 days
)
BINS = len(EDGES_MS) + 1


def bin_of(ms: int) -> int:
    """Histogram bin (0-based array index) of a processing time."""
    return bisect_right(EDGES_MS, ms)


def histogram(values: Iterable[int]) -> list[int]:
    """Bin counts of `values` (a full-length list)."""
    out = [0] * BINS
    for ms in values:
        out[bin_of(ms)] += 1
    return out


def add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Element-wise sum of two histograms of possibly different lengths."""
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n)]


def trim(counts: Sequence[int]) -> list[int]:
    """Without trailing zero bins (smaller rows; missing bins read as zeros)."""
    out = list(counts)
    while out and out[-1] == 0:
        out.pop()
    return out


def percentile(counts: Sequence[int], q: float, max_ms: int | None = None) -> float | None:
    """The q-quantile (0..1) interpolated linearly inside its bin; None without data."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n <= 0:
            continue
        if seen + n >= rank:
            lo = 0 if i == 0 else EDGES_MS[i - 1]
            hi = EDGES_MS[i] if i < len(EDGES_MS) else max(lo, max_ms or lo)
            if i == 0:
                lo, hi = 0, 1
            value = lo + (hi - lo) * max(0.0, rank - seen) / n
            if max_ms is not None:
                value = min(value, float(max_ms))
            return value
        seen += n
    return float(max_ms) if max_ms is not None else None
