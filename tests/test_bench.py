"""Each benchmark of bench/ once at a tiny size, so they keep working (`make bench` runs them at
full size against dedicated services; here they use the test suite's PostgreSQL and RabbitMQ).

Only that they run end to end and report their figures is checked, not the figures: timings on
a shared two-core machine under test load mean nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from types import SimpleNamespace

import psycopg2
import pytest

from bench import __main__ as bench_main
from bench import common, ingest, live, queries
from tests.conftest import _require_services, admin_dsn
from tests.processes import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def results(tmp_path, monkeypatch):
    """Results, logs and EXPLAIN output go to a temporary directory, not bench/results/."""
    _require_services()
    for module in (common, ingest, queries, live):
        monkeypatch.setattr(module, "RESULTS", tmp_path)
    return tmp_path


def test_ingest_benchmark_stores_every_preloaded_report(results):
    out = ingest.main(["--count", "300", "--batch-sizes", "50", "--payload-bytes", "500"])
    one, two = out["runs"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in (one, two):
        assert run["count"] == 300 and run["reports_per_second"] > 0
        assert 0 < run["tree_rss_mb"] < 1000 and run["of_limit"] > 0
    for limit in ("broker", "copy", "copy_2"):
        assert out["limits"][limit]["reports_per_second"] > 0
    assert out["limits"]["broker"]["count"] == 300
    assert json.loads((results / "ingest.json").read_text())["runs"][0]["batch_size"] == 50
    table = bench_main.rows_for("ingest", out)
    assert [r[0] for r in table] == ["ingest"] * 4
    assert all("reports/s" in r[2] for r in table)


def test_queries_benchmark_loads_measures_and_explains(results):
    db_name = f"bench_queries_test_{free_port()}"
    args = ["--rows", "3000", "--months", "3", "--runs", "2", "--warmup", "1"]
    args += ["--db-name", db_name, "--port", str(free_port()), "--jobs", "1"]
    try:
        out = queries.main(args)
        assert out["data"]["rows"] == 3000 and not out["data"]["reused"]
        with psycopg2.connect(admin_dsn(db_name)) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), (SELECT count(*) FROM messages_default) FROM messages")
            assert cur.fetchone() == (3000, 0), "every row in a ranged partition"
        conn.close()
        # The same data set again: reused, not loaded a second time.
        again = queries.main([*args, "--reuse", "--no-explain", "--drop"])
    finally:
        common.drop_database(db_name)
    assert again["data"]["reused"]
    names = {r["name"] for r in out["results"]}
    assert {"list: first page, no filter", "trace", "stats (30 days)"} <= names
    counts = [r for r in out["results"] if r["kind"] == "count"]
    assert len(counts) == 4 and all(r["target"].startswith("informational") for r in counts)
    csv = next(r for r in out["results"] if r["kind"] == "csv")
    assert csv["rows"] > 0
    explained = (results / "queries-explain.txt").read_text()
    assert "Buffers:" in explained and "FROM messages" in explained
    table = bench_main.table(bench_main.rows_for("queries", out))
    assert "list: first page, no filter" in table


def test_live_benchmark_times_publish_to_socket(results):
    out = live.main(
        [
            *("--rate", "20", "--sockets", "12", "--seconds", "2", "--warm-up", "1"),
            *("--measure-every", "2"),
            *("--port", str(free_port()), "--live-port", str(free_port())),
        ]
    )
    assert out["published"] == 40 and out["sockets_open"] == 12
    # Started on a settled server (a CHECKPOINT, no autovacuum worker left running).
    assert out["settled"]["checkpoint_seconds"] >= 0
    assert out["settled"]["autovacuum_workers_left"] == 0
    # One block of every filter (six sockets) decoded in two: the other block only reads.
    assert out["sockets_measured"] == 6
    assert out["missing_on_unfiltered_sockets"] == 0
    assert out["latency_p95_ms"] is not None and out["latency_p95_ms"] > 0
    assert out["page_p95_ms_no_sockets"] > 0 and out["page_p95_ms_with_sockets"] > 0
    # No sockets before and after the sockets' window (A-B-A), pooled for the ratio.
    before, after = out["page_p95_ms_before_after"]
    assert before > 0 and after > 0
    assert out["web_cpu_cores"] > 0 and out["live_cpu_cores"] > 0
    # The simulated browsers run in processes of their own, at a lower priority than the
    # server's (which keep this process's): they stand in for machines elsewhere.
    assert out["client_processes"] == 2 and os.getpid() not in out["client_pids"]
    assert out["client_niceness"] == [min(19, os.nice(0) + 19)] * 2
    # In sessions of their own (with autogroups, a niceness counts only within its session).
    assert all(p.startswith("nice ") for p in out["client_priority"]), out["client_priority"]
    # The live process as users start it: LIVE_NICE (10) below the page tier.
    assert out["live_priority"].startswith(f"nice {min(19, os.nice(0) + 10)}")
    assert isinstance(out["client_gaps"], int)
    # Like browsers, the clients offer permessage-deflate; what they read is counted.
    assert out["client_deflate"] is True and out["client_wire_mb"] >= 0
    assert out["live_cpu_us_per_frame"] > 0
    table = bench_main.table(bench_main.rows_for("live", out))
    for figure in ("publish→socket", "list page p95", "web tier CPU (web + live processes)"):
        assert figure in table


def test_the_page_probe_requests_at_random_times(monkeypatch):
    """Not on a fixed beat that could keep one phase against the pushes' (every 0.5 s) for a
    whole window: the gaps between requests are exponential (a Poisson process), mean as asked."""
    starts: list[float] = []

    class Session:
        def get(self, url, timeout):
            starts.append(time.monotonic())
            return SimpleNamespace(status_code=200)

    monkeypatch.setattr(live.requests, "Session", Session)
    probe = live.PageProbe("http://127.0.0.1:1/", interval=0.005)
    probe.recording.set()
    probe.start()
    time.sleep(1.5)
    probe.stop.set()
    probe.join(5)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) > 100 and len(probe.take()[0]) == len(starts)
    mean = statistics.fmean(gaps)
    # Exponential: standard deviation about the mean (a fixed beat: about 0).
    assert 0.5 < statistics.pstdev(gaps) / mean < 1.5, (mean, statistics.pstdev(gaps))
    assert max(gaps) > 3 * mean and min(gaps) < mean / 3


def test_queries_scaling_ratio_judges_the_keyset_requests_only():
    def r(name, kind, median):
        return {"name": name, "kind": kind, "median_ms": median, "p95_ms": median}

    small = [r("list", "list", 10.0), r("trace", "trace", 10.0), r("all", "stats-all", 10.0)]
    large = [r("list", "list", 14.0), r("trace", "trace", 16.0), r("all", "stats-all", 50.0)]
    out = queries.scaling(small, large, 1_000_000, 5_000_000)
    assert [(s["ratio"], s["met"]) for s in out] == [(1.4, True), (1.6, False), (5.0, True)]
    rows = bench_main.rows_for(
        "queries",
        {
            "data": {"rows": 5, "months": 1, "reused": True},
            "results": [],
            "compare": {"scaling": out},
        },
    )
    assert rows[2][1] == "trace: 1,000k -> 5,000k rows" and rows[2][3].endswith(": NO")
    assert queries.compare_db_name("bench_queries", 1_000_000) == "bench_queries_1m"
