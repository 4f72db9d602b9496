"""Live latency: reports published to the report exchange at a steady rate, ingested by a real
worker, pushed by a real gunicorn to open `/ws/messages` sockets. Measures the time from publish
to the arrival of the frame carrying the message (p50/p95/max over every matching socket) and
the CPU time gunicorn (master + workers, from /proc) used over the run.

    python -m bench.live --rate 200 --sockets 50 --seconds 30

The latency of a message is taken from its report id: the publisher notes when it published each
report, the frames carry message ids, and the database maps one to the other after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import requests
from kombu import Connection, Exchange, Producer, Queue
from simple_websocket import Client

from bench.common import (
    RESULTS,
    admin_dsn,
    create_database,
    drop_database,
    env,
    save,
    settings,
    start_web,
    start_worker,
    wait_until,
)

TARGET_P95_SECONDS = 1.0
TARGET_CPU_CORES = 1.0
#: Socket filters, cycled over the sockets: every published report matches the first one.
FILTERS = [
    "",
    "?type=dataset-ingestion",
    "?type=internal-dataset-ingestion&type=internal-statistics",
    "?status=errored",
    "?instrument=BL13",
    "?status=ok&type=internal-dataset-links",
]


def process_cpu_seconds(root_pid: int) -> float:
    """utime + stime of `root_pid` and its living descendants (gunicorn master + workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


class Listener(threading.Thread):
    """One socket: records (message id, arrival time) of every message frame."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.ws = Client.connect(url)
        hello = json.loads(self.ws.receive(timeout=30) or '{"type": "timeout"}')
        if hello.get("type") != "hello":
            raise RuntimeError(f"no hello from {url}: {hello}")
        self.arrivals: list[tuple[int, float]] = []
        self.frames = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                raw = self.ws.receive(timeout=0.5)
            except Exception:  # noqa: BLE001 - socket closed at the end
                return
            if raw is None:
                continue
            at = time.time()
            frame = json.loads(raw)
            if frame.get("type") == "messages":
                self.frames += 1
                self.arrivals.extend((i, at) for i in frame["ids"])

    def close(self) -> None:
        self.stop.set()
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001, S110 - already closed
            pass


def publish(
    broker_url: str, names: dict, rate: int, seconds: float, payload_bytes: int, seed: int
) -> dict:
    """Publish `rate` reports/s for `seconds`; report id -> publish time (epoch seconds)."""
    from webapp.demo import generate_reports

    count = int(rate * seconds)
    bodies = [
        (r["id"], json.dumps(r).encode())
        for r in generate_reports(count, seed=seed, payload_bytes=payload_bytes)
    ]
    exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
    published: dict[str, float] = {}
    with Connection(broker_url) as conn:
        producer = Producer(conn.channel(), exchange=exchange)
        start = time.monotonic()
        for n, (report_id, body) in enumerate(bodies):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            published[report_id] = time.time()
            producer.publish(
                body,
                routing_key="message.logging",
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )
    return published


def run(args) -> dict:
    s = settings()
    db_name = f"bench_live_{uuid.uuid4().hex[:6]}"
    create_database(db_name)
    suffix = uuid.uuid4().hex[:6]
    names = {
        "DASHBOARD_EXCHANGE": f"bench-live-{suffix}",
        "DASHBOARD_QUEUE": f"bench-live-logging-{suffix}",
        "CELERY_QUEUE": f"bench-live-tasks-{suffix}",
    }
    # Declare the queue before the first publish so nothing is unroutable.
    with Connection(s.broker_url) as conn:
        exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
        Queue(names["DASHBOARD_QUEUE"], exchange, routing_key="message.logging", durable=True)(
            conn.channel()
        ).declare()
    RESULTS.mkdir(parents=True, exist_ok=True)
    environ = env(db_name, **names)
    worker = start_worker(f"bench-live-{suffix}@%h", environ, RESULTS / "live-worker.log")
    web = start_web(
        args.port,
        environ,
        RESULTS / "live-gunicorn.log",
        WEB_THREADS=str(args.threads),
        # Every simulated viewer connects from 127.0.0.1: lift the per-client cap, not the
        # per-process one.
        WS_MAX_PER_CLIENT=str(args.sockets),
    )
    base = f"http://127.0.0.1:{args.port}"
    listeners: list[Listener] = []
    try:

        def up() -> bool:
            try:
                return requests.get(base + "/api/v1/openapi.json", timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(up, 60, interval=0.2)
        for n in range(args.sockets):
            url = base.replace("http://", "ws://") + "/ws/messages" + FILTERS[n % len(FILTERS)]
            listeners.append(Listener(url))
        for listener in listeners:
            listener.start()
        # Warm-up: the worker connects, both web processes LISTEN.
        warm = publish(s.broker_url, names, 20, 1, args.payload_bytes, seed=1)
        dsn = admin_dsn(db_name)
        wait_until(lambda: _stored(dsn) >= len(warm), 60, interval=0.2)
        time.sleep(1)
        for listener in listeners:
            listener.arrivals.clear()
            listener.frames = 0
        cpu0, wall0 = process_cpu_seconds(web.p.pid), time.monotonic()
        published = publish(
            s.broker_url, names, args.rate, args.seconds, args.payload_bytes, seed=2
        )
        wait_until(lambda: _stored(dsn) >= len(warm) + len(published), 120, interval=0.2)
        time.sleep(1.5)  # the last throttled pushes
        cpu1, wall1 = process_cpu_seconds(web.p.pid), time.monotonic()
        ids = _report_ids(dsn)
    finally:
        for listener in listeners:
            listener.close()
        web.stop()
        worker.stop()
        with Connection(s.broker_url) as conn:
            Queue(names["DASHBOARD_QUEUE"], channel=conn.channel()).delete()
            Exchange(names["DASHBOARD_EXCHANGE"], channel=conn.channel()).delete()
        drop_database(db_name)

    latencies, missing = [], 0
    for listener in listeners:
        for message_id, at in listener.arrivals:
            sent = published.get(ids.get(message_id, ""))
            if sent is not None:
                latencies.append(at - sent)
    # Every published report must reach the unfiltered sockets.
    unfiltered = [listener for n, listener in enumerate(listeners) if n % len(FILTERS) == 0]
    for listener in unfiltered:
        got = {ids.get(i) for i, _ in listener.arrivals}
        missing += sum(1 for rid in published if rid not in got)
    latencies.sort()
    cores = (cpu1 - cpu0) / (wall1 - wall0)
    p95 = latencies[max(0, int(0.95 * len(latencies)) - 1)] if latencies else float("nan")
    return {
        "rate": args.rate,
        "sockets": args.sockets,
        "seconds": args.seconds,
        "published": len(published),
        "deliveries": len(latencies),
        "frames": sum(listener.frames for listener in listeners),
        "missing_on_unfiltered_sockets": missing,
        "latency_p50_ms": round(statistics.median(latencies) * 1000) if latencies else None,
        "latency_p95_ms": round(p95 * 1000) if latencies else None,
        "latency_max_ms": round(latencies[-1] * 1000) if latencies else None,
        "web_cpu_cores": round(cores, 2),
        "met": bool(latencies) and p95 <= TARGET_P95_SECONDS and cores < TARGET_CPU_CORES,
        "targets": {"latency_p95_ms": 1000, "web_cpu_cores": TARGET_CPU_CORES},
    }


def _stored(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM messages")
        n = cur.fetchone()[0]
    conn.close()
    return n


def _report_ids(dsn: str) -> dict[int, str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, report_id FROM messages")
        rows = dict(cur.fetchall())
    conn.close()
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=200, help="reports per second")
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--payload-bytes", type=int, default=2000)
    # Each open WebSocket holds one gthread thread: 2 x 16 threads would cap the sockets at 32.
    parser.add_argument("--threads", type=int, default=32, help="gunicorn threads per worker")
    parser.add_argument("--port", type=int, default=24781)
    args = parser.parse_args(argv)
    result = run(args)
    print(
        f"live {args.rate}/s, {args.sockets} sockets: publish -> socket p50 "
        f"{result['latency_p50_ms']} ms, p95 {result['latency_p95_ms']} ms, max "
        f"{result['latency_max_ms']} ms; gunicorn CPU {result['web_cpu_cores']} cores; "
        f"{result['missing_on_unfiltered_sockets']} missing",
        flush=True,
    )
    save("live", result)
    return result


if __name__ == "__main__":
    main()
