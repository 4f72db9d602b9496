"""Ingest batch durations as a small cumulative histogram, kept by the worker process and
written into its heartbeat row, so /metrics (served by the web process, possibly on another
host) exposes them as `pacer_dashboard_ingest_batch_duration_seconds`.

Why the heartbeat row and not a worker-side metrics endpoint or a shared multiprocess directory:
the web process already reads the heartbeat rows at every scrape, a worker may run on another host
(no shared directory) and needs no port of its own to open, secure and scrape; the row is written
at least every 10 s and within a second of each batch. The counts are cumulative for the worker
process's life: a restarted worker starts again at zero, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import math
import threading

#: Upper bounds (seconds) of the buckets; a batch of 500 reports commits in 10-100 ms.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The heartbeat detail key.
KEY = "batch_duration_histogram"


class BatchDurations:
    """Thread-safe cumulative histogram (observed by the consumer thread, read by the heartbeat
    thread)."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS):
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)  # per bucket, the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    self._counts[i] += 1
                    break
            else:
                self._counts[-1] += 1
            self._sum += seconds

    def snapshot(self) -> dict:
        """JSON for the heartbeat: bounds, cumulative counts (the last is the total), sum."""
        with self._lock:
            cumulative, running = [], 0
            for n in self._counts:
                running += n
                cumulative.append(running)
            return {"le": list(self.buckets), "cumulative": cumulative, "sum": round(self._sum, 6)}


#: This process's batch durations (one report consumer per worker process).
DURATIONS = BatchDurations()


def observe(seconds: float) -> None:
    DURATIONS.observe(seconds)


def snapshot() -> dict:
    return DURATIONS.snapshot()


def from_detail(detail) -> tuple[list[tuple[str, float]], float] | None:
    """(buckets as (le, cumulative count) ending with "+Inf", sum) from a heartbeat detail, or
    None when the row has none or it is malformed (an older worker, a hand-edited row)."""
    data = (detail or {}).get(KEY) if isinstance(detail, dict) else None
    if not isinstance(data, dict):
        return None
    try:
        bounds = [float(b) for b in data["le"]]
        counts = [float(c) for c in data["cumulative"]]
        total = float(data["sum"])
    except (KeyError, TypeError, ValueError):
        return None
    if (
        len(counts) != len(bounds) + 1
        or bounds != sorted(bounds)
        or counts != sorted(counts)
        or not all(math.isfinite(b) for b in bounds)
        or not math.isfinite(total)
    ):
        return None
    buckets = [(_le(b), c) for b, c in zip(bounds, counts, strict=False)]
    buckets.append(("+Inf", counts[-1]))
    return buckets, total


def _le(bound: float) -> str:
    return repr(float(bound))
