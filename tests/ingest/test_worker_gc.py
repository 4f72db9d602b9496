"""The ingesting worker's garbage-collector settings (tasks/ingest.py `tune_gc`)."""

from __future__ import annotations

import gc

from tasks import ingest


def test_tune_gc_freezes_the_application_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        ingest.tune_gc()
        assert gc.get_threshold() == ingest.GC_THRESHOLD
        assert gc.get_threshold()[0] > 10 * before[0]
        # What was there after start-up is out of every collection...
        assert gc.get_freeze_count() > 1000
        # ...and garbage made afterwards is still collected.
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
