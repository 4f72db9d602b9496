"""Ingestion throughput, and in the same run the two limits it is bound by.

    python -m bench.ingest --count 100000 --batch-sizes 500,50,1

1. broker limit: a consume-and-ack-only loop on the same (pre-loaded, durable) queue, with the
   worker's prefetch and one `multiple` ack per batch: what RabbitMQ can hand out;
2. database limit: a COPY of the same prepared rows (`writer.prepare_batch`, outside the clock)
   into `messages` of a freshly migrated database (the same table, the same indexes and
   triggers), one fsynced commit per batch; one connection, and two in parallel;
3. the worker exactly as users start it (`python -m webapp.processes worker`), one, then two
   such processes (distinct WORKER_NAME) on the same queue, pre-loaded with N reports of the
   realistic mix (~2.4 KB): reports/s between the first batch written and the last (the
   writer's `received_at`, one per batch), the peak RSS of
   the whole worker process tree (the process and its children, sampled), and the rate as a
   fraction of the lower of the two limits (one connection for one worker, two for two).

Targets (issue 17): one worker >= 6,000 reports/s at batch 500, two workers >= 9,000/s, each
worker's process tree <= 200 MB RSS. Exits non-zero when one is missed.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
import uuid
from pathlib import Path

import psycopg2
from kombu import Connection, Consumer, Exchange, Producer, Queue

from bench.common import (
    RESULTS,
    admin_dsn,
    create_database,
    drop_database,
    env,
    save,
    settings,
    start_worker,
    wait_until,
)

TARGETS = {"one_worker_per_second": 6000, "two_workers_per_second": 9000, "tree_rss_mb": 200}


def _names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return {
        "DASHBOARD_EXCHANGE": f"bench-dashboard-{suffix}",
        "DASHBOARD_QUEUE": f"bench-dashboard-logging-{suffix}",
        "CELERY_QUEUE": f"bench-tasks-{suffix}",
    }


def _queue(names: dict) -> tuple[Exchange, Queue]:
    exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
    queue = Queue(names["DASHBOARD_QUEUE"], exchange, routing_key="message.logging", durable=True)
    return exchange, queue


def preload(broker_url: str, names: dict, bodies: list[bytes]) -> None:
    exchange, queue = _queue(names)
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


def delete_queue(broker_url: str, names: dict) -> None:
    exchange, queue = _queue(names)
    with Connection(broker_url) as conn:
        queue(conn.channel()).delete()
        exchange(conn.channel()).delete()


def write_span(dsn: str) -> tuple[int, float]:
    """(reports written after the first batch, seconds from the first batch's write to the
    last's), from `received_at` (the writer's clock, one value per batch): the rate measured
    between the batches themselves, whatever the polling saw. A run whose reports all landed
    between two polls (300 of them at 3,000/s in the tiny test) has a rate this way too."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "WITH first AS (SELECT min(received_at) AS at FROM messages) "
            "SELECT count(*) FILTER (WHERE m.received_at > first.at), "
            "extract(epoch FROM max(m.received_at) - first.at) FROM messages m, first "
            "GROUP BY first.at"
        )
        after_first, seconds = cur.fetchone()
    conn.close()
    return int(after_first), float(seconds)


def stored(dsn: str) -> int:
    """Reports stored so far: the rollups' total (exact, committed with the rows), which is a
    few rows to read where count(*) over `messages` would compete with the workers."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(total), 0) FROM message_stats")
        n = int(cur.fetchone()[0])
    conn.close()
    return n


# ---- process tree memory -------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and all its descendants (MB)."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        stack += _children(p)
    return total / 1024


class TreeRssSampler(threading.Thread):
    """Samples the tree RSS of some processes every `interval` s; keeps each one's peak."""

    def __init__(self, pids: list[int], interval: float = 0.2):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peaks = dict.fromkeys(pids, 0.0)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for pid in self.pids:
                self.peaks[pid] = max(self.peaks[pid], tree_rss_mb(pid))
            self.stopping.wait(self.interval)

    def stop(self) -> dict[int, float]:
        self.stopping.set()
        self.join()
        return self.peaks


# ---- the two limits ------------------------------------------------------------------------------


def broker_limit(bodies: list[bytes], batch_size: int) -> dict:
    """Consume and ack only (one multiple ack per batch), with the worker's prefetch."""
    s = settings()
    names = _names()
    preload(s.broker_url, names, bodies)
    _, queue = _queue(names)
    received = 0
    state = {"first": None, "last": None, "unacked": []}

    def on_message(message) -> None:
        nonlocal received
        if state["first"] is None:
            state["first"] = time.perf_counter()
        received += 1
        state["unacked"].append(message)
        if len(state["unacked"]) >= batch_size or received == len(bodies):
            message.ack(multiple=True)
            state["unacked"] = []
        state["last"] = time.perf_counter()

    try:
        with Connection(s.broker_url) as conn:
            channel = conn.channel()
            with Consumer(
                channel,
                queues=[queue],
                on_message=on_message,
                accept=None,
                prefetch_count=s.ingest_prefetch,
            ):
                deadline = time.monotonic() + 600
                while received < len(bodies) and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=5)
                    except TimeoutError:
                        break
    finally:
        delete_queue(s.broker_url, names)
    seconds = (state["last"] or 0) - (state["first"] or 0)
    return {
        "count": received,
        "seconds": round(seconds, 2),
        "reports_per_second": round((received - 1) / seconds) if seconds > 0 else 0,
    }


def copy_limit(bodies: list[bytes], batch_size: int, connections: int = 1) -> dict:
    """COPY the prepared rows into `messages` of a fresh database, one commit per batch,
    `connections` sessions in parallel (each takes every `connections`-th batch)."""
    from webapp.ingest.writer import (
        MESSAGE_COLUMNS,
        ParseOptions,
        RawReport,
        prepare_batch,
    )

    s = settings()
    options = ParseOptions(s.REPORT_TASK_NAME, s.timezone, s.REPORT_MAX_BYTES)
    batches = []
    for i in range(0, len(bodies), batch_size):
        prepared = prepare_batch(
            [RawReport(b, "application/json") for b in bodies[i : i + batch_size]], options
        )
        batches.append(list(prepared.copy_rows.values()))
    db_name = f"bench_copy_{uuid.uuid4().hex[:6]}"
    create_database(db_name)
    dsn = admin_dsn(db_name)
    columns = f"COPY messages ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN"

    def work(mine: list[list[str]]) -> None:
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                for rows in mine:
                    moment = time.strftime("%Y-%m-%dT%H:%M:%S+00:00\t", time.gmtime())
                    data = "".join(moment + row + "\n" for row in rows)
                    cur.copy_expert(columns, io.StringIO(data), size=1 << 20)
                    conn.commit()
        finally:
            conn.close()

    threads = [
        threading.Thread(target=work, args=(batches[k::connections],)) for k in range(connections)
    ]
    try:
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
    finally:
        drop_database(db_name)
    return {
        "count": len(bodies),
        "connections": connections,
        "seconds": round(seconds, 2),
        "reports_per_second": round(len(bodies) / seconds) if seconds > 0 else 0,
    }


# ---- the workers ---------------------------------------------------------------------------------


def run_once(count: int, batch_size: int, bodies: list[bytes], workers: int = 1) -> dict:
    s = settings()
    db_name = f"bench_ingest_{uuid.uuid4().hex[:6]}"
    create_database(db_name)
    names = _names()
    preload(s.broker_url, names, bodies[:count])
    dsn = admin_dsn(db_name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    procs = [
        start_worker(
            f"bench-{names['DASHBOARD_QUEUE'][-6:]}-{k}@%h",
            env(db_name, INGEST_BATCH_SIZE=str(batch_size), **names),
            RESULTS / f"ingest-worker-{batch_size}-{workers}w-{k}.log",
        )
        for k in range(workers)
    ]
    sampler = TreeRssSampler([p.p.pid for p in procs])
    sampler.start()
    try:
        wait_until(lambda: stored(dsn) >= count, 3600, interval=0.2)
        after_first, elapsed = write_span(dsn)
    finally:
        peaks = sampler.stop()
        for p in procs:
            p.stop()
        delete_queue(s.broker_url, names)
        drop_database(db_name)
    rate = after_first / elapsed if elapsed > 0 else 0
    return {
        "batch_size": batch_size,
        "workers": workers,
        "count": count,
        "seconds": round(elapsed, 2),
        "reports_per_second": round(rate),
        # The largest worker's tree (each worker is one deployable unit).
        "tree_rss_mb": round(max(peaks.values()), 1),
    }


def rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(benchmark, measure, figure, target: met) rows for the results table (bench/__main__)."""

    def mark(met: bool) -> str:
        return "yes" if met else "NO"

    t = result["targets"]
    limits = result["limits"]
    out = [
        (
            "ingest",
            "limit: broker (consume + ack only)",
            f"{limits['broker']['reports_per_second']:,} reports/s",
            "",
        ),
        (
            "ingest",
            "limit: database (COPY only, 1 / 2 sessions)",
            f"{limits['copy']['reports_per_second']:,} / "
            f"{limits['copy_2']['reports_per_second']:,} reports/s",
            "",
        ),
    ]
    for r in result["runs"]:
        measure = f"batch {r['batch_size']}, {r['workers']} worker(s), {r['count']:,} reports"
        figure = (
            f"{r['reports_per_second']:,} reports/s ({r['of_limit']:.0%} of the lower limit), "
            f"tree RSS {r['tree_rss_mb']} MB"
        )
        if r["batch_size"] >= 500:
            rate = t["one_worker_per_second"] if r["workers"] == 1 else t["two_workers_per_second"]
            met = r["reports_per_second"] >= rate and r["tree_rss_mb"] <= t["tree_rss_mb"]
            target = f">= {rate:,}/s, tree RSS <= {t['tree_rss_mb']} MB: {mark(met)}"
        else:
            target = "(for comparison)"
        out.append(("ingest", measure, figure, target))
    return out


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
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    main_size = max(sizes)

    limits = {
        "broker": broker_limit(bodies, main_size),
        "copy": copy_limit(bodies, main_size, 1),
        "copy_2": copy_limit(bodies, main_size, 2),
    }
    print(
        f"limits at batch {main_size}: broker {limits['broker']['reports_per_second']} reports/s, "
        f"COPY {limits['copy']['reports_per_second']} (1 session) / "
        f"{limits['copy_2']['reports_per_second']} (2 sessions) reports/s",
        flush=True,
    )
    plan = [(main_size, 1), (main_size, 2)] + [(size, 1) for size in sizes if size != main_size]
    runs = []
    for size, workers in plan:
        # Small batches are slow (one fsynced commit per batch): fewer reports for them.
        count = args.count if size >= 500 else min(args.count, args.small_count)
        if size < 10:
            count = min(count, args.tiny_count)
        result = run_once(count, size, bodies, workers)
        database = limits["copy" if workers == 1 else "copy_2"]["reports_per_second"]
        lower = min(limits["broker"]["reports_per_second"], database)
        result["of_limit"] = result["reports_per_second"] / lower if lower else 0.0
        print(
            f"ingest batch={size:>4} workers={workers}: {result['reports_per_second']:>6} "
            f"reports/s = {result['of_limit']:.0%} of the lower limit ({lower}) "
            f"({count} reports, avg {avg:.0f} B, tree RSS {result['tree_rss_mb']} MB)",
            flush=True,
        )
        runs.append(result)
    out = {
        "average_body_bytes": round(avg),
        "limits": limits,
        "runs": runs,
        "targets": TARGETS,
    }
    save("ingest", out)
    for row in rows(out):
        print(" | ".join(row), flush=True)
    return out


def missed(result: dict) -> bool:
    return any(r[3].endswith(": NO") for r in rows(result))


if __name__ == "__main__":
    raise SystemExit(1 if missed(main()) else 0)
