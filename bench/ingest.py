"""Ingestion throughput: pre-load N reports into the report queue, start one worker, time until
every report is committed; report reports/s and the worker's peak RSS.

    python -m bench.ingest --count 100000 --batch-sizes 500,50,1
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import psycopg2
from kombu import Connection, Exchange, Producer, Queue

from bench.common import (
    RESULTS,
    admin_dsn,
    create_database,
    drop_database,
    env,
    peak_rss_mb,
    save,
    settings,
    start_worker,
    wait_until,
)


def preload(broker_url: str, names: dict, bodies: list[bytes]) -> None:
    exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
    queue = Queue(names["DASHBOARD_QUEUE"], exchange, routing_key="message.logging", durable=True)
    with Connection(broker_url) as conn:
        channel = conn.channel()
        queue(channel).declare()
        producer = Producer(channel, exchange=exchange)
        for body in bodies:
            producer.publish(
                body,
                routing_key="message.logging",
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )


def stored(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM messages")
        n = cur.fetchone()[0]
    conn.close()
    return n


def run_once(count: int, batch_size: int, bodies: list[bytes]) -> dict:
    s = settings()
    db_name = f"bench_ingest_{uuid.uuid4().hex[:6]}"
    create_database(db_name)
    suffix = uuid.uuid4().hex[:6]
    names = {
        "DASHBOARD_EXCHANGE": f"bench-dashboard-{suffix}",
        "DASHBOARD_QUEUE": f"bench-dashboard-logging-{suffix}",
        "CELERY_QUEUE": f"bench-tasks-{suffix}",
    }
    preload(s.broker_url, names, bodies[:count])
    dsn = admin_dsn(db_name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    worker = start_worker(
        f"bench-{suffix}@%h",
        env(db_name, INGEST_BATCH_SIZE=str(batch_size), **names),
        RESULTS / f"ingest-worker-{batch_size}.log",
    )
    try:
        wait_until(lambda: stored(dsn) > 0, 120)
        start = time.perf_counter()
        first = stored(dsn)
        wait_until(lambda: stored(dsn) >= count, 3600, interval=0.2)
        elapsed = time.perf_counter() - start
        rss = peak_rss_mb(worker.p.pid)
    finally:
        worker.stop()
        with Connection(s.broker_url) as conn:
            Queue(names["DASHBOARD_QUEUE"], channel=conn.channel()).delete()
            Exchange(names["DASHBOARD_EXCHANGE"], channel=conn.channel()).delete()
        drop_database(db_name)
    rate = (count - first) / elapsed if elapsed > 0 else 0
    return {
        "batch_size": batch_size,
        "count": count,
        "seconds": round(elapsed, 2),
        "reports_per_second": round(rate),
        "peak_rss_mb": round(rss, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--small-count",
        type=int,
        default=20_000,
        help="reports for the batch sizes 1 and 50 (they are slow)",
    )
    parser.add_argument(
        "--tiny-count", type=int, default=5_000, help="reports for batch sizes below 10"
    )
    parser.add_argument("--batch-sizes", default="500,50,1")
    parser.add_argument("--payload-bytes", type=int, default=2000)
    args = parser.parse_args(argv)

    from webapp.demo import generate_reports

    bodies = [
        json.dumps(r).encode()
        for r in generate_reports(args.count, seed=42, payload_bytes=args.payload_bytes)
    ]
    avg = sum(map(len, bodies)) / len(bodies)
    runs = []
    for size in [int(x) for x in args.batch_sizes.split(",")]:
        # Small batches are slow (one fsynced commit per batch): fewer reports for them.
        count = args.count if size >= 500 else min(args.count, args.small_count)
        if size < 10:
            count = min(count, args.tiny_count)
        result = run_once(count, size, bodies)
        print(
            f"ingest batch={size:>4}: {result['reports_per_second']:>6} reports/s "
            f"({count} reports, avg {avg:.0f} B, peak RSS {result['peak_rss_mb']} MB)",
            flush=True,
        )
        runs.append(result)
    out = {
        "average_body_bytes": round(avg),
        "runs": runs,
        "targets": {"reports_per_second": 5000, "peak_rss_mb": 300},
    }
    save("ingest", out)
    return out


if __name__ == "__main__":
    main()
