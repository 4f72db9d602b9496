"""Queries at scale: a multi-year `messages` history (default 5,000,000 rows over 24 months, see
bench/dataset.py), then every page and API a user hits, over HTTP against a real gunicorn
(`-k gthread --threads 16 -w 2`, DISABLED_AUTH=true): median and p95 of `--runs` requests after
`--warmup` ones, plus the EXPLAIN (ANALYZE, BUFFERS) of the SQL of the slowest list request.

    python -m bench.queries --rows 5000000 --reuse
    python -m bench.queries --rows 5000000 --compare-rows 1000000 --reuse   # + ratio per request

Loading is the slow part: the database (`--db-name`, default bench_queries) is kept after the
run and `--reuse` uses it again when it holds the same data set (rows, months, payload, seed).
`--compare-rows N` also serves a data set of N rows over the same months (database
`<db-name>_1m` for 1,000,000, kept and reused alike) from a second gunicorn, times both
interleaved (request by request) and prints median(large) / median(small) per request: the list,
filter, free text, detail, trace, API and 30-day stats requests must stay within SCALING_TARGET.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg2
import requests

from bench.common import (
    BIN,
    RESULTS,
    ROOT,
    Proc,
    admin_dsn,
    create_database,
    drop_database,
    env,
    save,
    settings,
    start_web,
    wait_until,
)

#: p95 targets in ms, by kind of request.
TARGETS_MS = {
    "first": 30,
    "list": 100,
    "text": 60,
    "api": 100,
    "detail": 100,
    "trace": 100,
    "stats": 150,
    "stats-all": 200,
    # /stalled reads only its window (3 days by default): its cost follows the reports per day,
    # not the history, hence not in SCALING_KINDS (the 1M set spreads 5x fewer rows per day).
    "stalled": 100,
    # The exact count a list page fetches after its rows when its quick count stopped at 1,000
    # (`/messages/count`): bounded by the 10,000 cap, printed for information.
    "count": None,
}
#: Cost as the data grows: median at `--rows` / median at `--compare-rows` (same months), at most
#: this for these kinds (list, filter, free text, detail, trace, API, 30-day stats); the
#: all-history pages and the CSV export are shown for information.
SCALING_TARGET = 1.5
SCALING_KINDS = frozenset({"first", "list", "text", "api", "detail", "trace", "stats"})
CSV_TARGET_ROWS_PER_SECOND = 20_000


@dataclass
class Case:
    name: str
    path: str
    kind: str  # first, list, text (free text), count, api, detail, trace, stats, stats-all, csv


# ---- the data set --------------------------------------------------------------------------------
def _marker(args) -> dict:
    return {
        "rows": args.rows,
        "months": args.months,
        "payload_bytes": args.payload_bytes,
        "seed": args.seed,
    }


def _read_marker(name: str) -> dict | None:
    conn = psycopg2.connect(admin_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (name,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    if not row or not row[0]:
        return None
    try:
        return json.loads(row[0])
    except ValueError:
        return None


def _write_marker(name: str, marker: dict) -> None:
    conn = psycopg2.connect(admin_dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'COMMENT ON DATABASE "{name}" IS %s', (json.dumps(marker),))
    conn.close()


def prepare(args) -> dict:
    """Load the data set, or reuse the database when it already holds it (migrating it)."""
    from bench.dataset import load

    marker = _read_marker(args.db_name)
    wanted = _marker(args)
    if args.reuse and marker and marker.get("complete") and _same(marker, wanted):
        print(f"queries: reusing {args.db_name} ({marker['rows']:,} rows)", flush=True)
        subprocess_flask(args.db_name, "db", "upgrade")
        return {**marker, "reused": True}
    print(f"queries: loading {args.rows:,} messages over {args.months} months", flush=True)
    create_database(args.db_name)
    info = load(args.db_name, args.rows, args.months, args.payload_bytes, args.seed, jobs=args.jobs)
    _write_marker(args.db_name, {**wanted, **info, "complete": True})
    print(
        f"queries: loaded in {info['total_seconds']:.0f} s (COPY {info['copy_seconds']:.0f} s, "
        f"indexes {info['index_seconds']:.0f} s, vacuum {info['vacuum_seconds']:.0f} s, "
        f"rollups {info['rollups_seconds']:.0f} s)",
        flush=True,
    )
    return {**wanted, **info, "reused": False}


def _same(marker: dict, wanted: dict) -> bool:
    return all(marker.get(k) == v for k, v in wanted.items())


def subprocess_flask(db_name: str, *args: str) -> None:
    import subprocess

    subprocess.run(  # noqa: S603
        [str(BIN / "flask"), "--app", "wsgi", *args],
        env=env(db_name),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def samples(db_name: str) -> dict:
    """Real values to filter by, picked from the data (mid-popularity, deterministic)."""
    conn = psycopg2.connect(admin_dsn(db_name))
    out: dict = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT instrument FROM message_stats WHERE instrument <> '' "
            "GROUP BY 1 ORDER BY sum(total) DESC, 1"
        )
        instruments = [r[0] for r in cur.fetchall()]
        out["instrument"] = instruments[min(3, len(instruments) - 1)]
        cur.execute("SELECT max(id) FROM messages")
        top = cur.fetchone()[0]
        # A whole pipeline: its stage 2 (dataset id, visit id), then stage 1 by the same hash.
        cur.execute(
            "SELECT hash, dataset_id, visit_id FROM messages "
            "WHERE id >= %s AND message_type = 'internal-dataset-ingestion' ORDER BY id LIMIT 1",
            (int(top * 0.6),),
        )
        out["hash"], out["dataset_id"], out["visit_id"] = cur.fetchone()
        cur.execute(
            "SELECT id, investigation, dataset, report_id FROM messages "
            "WHERE hash = %s AND message_type = 'dataset-ingestion' ORDER BY id LIMIT 1",
            (out["hash"],),
        )
        out["id"], out["investigation"], out["dataset"], out["report_id"] = cur.fetchone()
        cur.execute(
            "SELECT fingerprint FROM error_groups ORDER BY count DESC, fingerprint "
            "OFFSET (SELECT count(*) / 2 FROM error_groups) LIMIT 1"
        )
        out["fingerprint"] = cur.fetchone()[0]
        # A one-day window a year back, and one holding about 10,000 rows for the CSV export.
        cur.execute("SELECT min(received_at), max(received_at) FROM messages")
        first, last = cur.fetchone()
        day = max(first, last - timedelta(days=365)).replace(hour=0, minute=0, second=0)
        day = day.replace(microsecond=0)
        out["since"], out["until"] = day, day + timedelta(days=1)
        cur.execute(
            "SELECT received_at FROM messages WHERE received_at >= %s "
            "ORDER BY received_at OFFSET 9999 LIMIT 1",
            (day,),
        )
        row = cur.fetchone()
        out["csv_until"] = (row[0] if row else last) + timedelta(microseconds=1)
        cur.execute(
            "SELECT count(*) FROM messages WHERE received_at >= %s AND received_at < %s",
            (day, out["csv_until"]),
        )
        out["csv_rows"] = cur.fetchone()[0]
        cur.execute(
            "SELECT id FROM messages WHERE id >= %s AND message_type = 'internal-dataset-ingestion' "
            "AND errored ORDER BY id LIMIT 1",
            (int(top * 0.8),),
        )
        row = cur.fetchone()
        out["errored_id"] = row[0] if row else out["id"]
        cur.execute("SELECT count(*) FROM messages WHERE hash = %s", (out["hash"],))
        out["hash_rows"] = cur.fetchone()[0]
    conn.close()
    return out


def cases(s: dict) -> list[Case]:
    def q(**params) -> str:
        return "/?" + urlencode(params, doseq=True)

    def c(**params) -> str:
        return "/messages/count?" + urlencode(params, doseq=True)

    def iso(moment) -> str:
        return moment.isoformat()

    return [
        Case("list: first page, no filter", "/", "first"),
        Case("list: type=proposal-sync", q(type="proposal-sync"), "list"),
        Case("list: status=errored", q(status="errored"), "list"),
        Case("list: status=ok", q(status="ok"), "list"),
        Case("list: acknowledged=only", q(acknowledged="only"), "list"),
        Case("list: acknowledged=shown", q(acknowledged="shown"), "list"),
        Case(f"list: instrument={s['instrument']}", q(instrument=s["instrument"]), "list"),
        Case("list: investigation", q(investigation=s["investigation"]), "list"),
        Case("list: dataset", q(dataset=s["dataset"]), "list"),
        Case("list: dataset_id", q(dataset_id=s["dataset_id"]), "list"),
        Case("list: visit_id", q(visit_id=s["visit_id"]), "list"),
        Case("list: hash (full)", q(hash=s["hash"]), "list"),
        Case("list: hash prefix (8)", q(hash=s["hash"][:8]), "list"),
        Case("list: id (report id)", q(id=s["report_id"]), "list"),
        Case("list: id (message id)", q(id=str(s["id"])), "list"),
        Case("list: routing_key=dataset.index", q(routing_key="dataset.index"), "list"),
        Case("list: payload_format=xml", q(payload_format="xml"), "list"),
        Case("list: fingerprint", q(fingerprint=s["fingerprint"]), "list"),
        Case("list: one day a year ago", q(since=iso(s["since"]), until=iso(s["until"])), "list"),
        Case(
            "list: type + instrument",
            q(type="dataset-ingestion", instrument=s["instrument"]),
            "list",
        ),
        Case("list: free text (investigation)", q(q=s["investigation"]), "text"),
        Case("list: free text (common error)", q(q="master.h5"), "text"),
        Case("list: 100 pages deep (cursor)", "DEEP", "list"),
        Case("count after the rows: no filter", "/messages/count", "count"),
        Case("count after the rows: visit_id", c(visit_id=s["visit_id"]), "count"),
        Case("count after the rows: fingerprint", c(fingerprint=s["fingerprint"]), "count"),
        Case("count after the rows: free text (common error)", c(q="master.h5"), "count"),
        Case("detail", f"/messages/{s['id']}", "detail"),
        Case("detail (errored)", f"/messages/{s['errored_id']}", "detail"),
        Case("trace", f"/messages/{s['id']}/trace", "trace"),
        Case("api: list", "/api/v1/messages", "api"),
        Case(
            "api: list type + status=errored",
            "/api/v1/messages?" + urlencode({"type": "user-sync", "status": "errored"}),
            "api",
        ),
        Case("api: detail", f"/api/v1/messages/{s['id']}", "api"),
        Case("api: trace", f"/api/v1/messages/{s['id']}/trace", "api"),
        Case("stats (30 days)", "/stats", "stats"),
        Case("stats (all history)", "/stats?range=all", "stats-all"),
        Case("api: stats (30 days)", "/api/v1/stats", "stats"),
        Case("errors (30 days)", "/errors", "stats"),
        Case("errors (all history)", "/errors?range=all", "stats-all"),
        Case("api: error groups", "/api/v1/error-groups", "stats"),
        Case("stalled pipelines (3 days)", "/stalled", "stalled"),
        Case("api: stalled pipelines (3 days)", "/api/v1/stalled", "stalled"),
        Case(
            f"csv export ({s['csv_rows']:,} rows)",
            "/api/v1/messages?"
            + urlencode(
                {
                    "format": "csv",
                    "acknowledged": "shown",
                    "since": iso(s["since"]),
                    "until": iso(s["csv_until"]),
                }
            ),
            "csv",
        ),
    ]


# ---- measuring ------------------------------------------------------------------------------------
def deep_cursor_path(http: requests.Session, base: str, pages: int) -> str:
    """The list URL 100 pages (of 50) down, reached by following the `older` cursors."""
    cursor = None
    for _ in range(pages):
        params = {"cursor": cursor} if cursor else {}
        body = http.get(f"{base}/api/v1/messages", params=params, timeout=60).json()
        cursor = body["cursors"]["older"]
        if cursor is None:
            break
    return "/?" + urlencode({"cursor": cursor}) if cursor else "/"


def time_request(http: requests.Session, url: str) -> tuple[float, int, int]:
    """(seconds, status, CSV lines) of one GET, reading the whole body."""
    started = time.perf_counter()
    with http.get(url, stream=True, timeout=120) as response:
        lines = 0
        for chunk in response.iter_content(1 << 16):
            lines += chunk.count(b"\n")
        status = response.status_code
    return time.perf_counter() - started, status, lines


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(
    bases: list[str], case_lists: list[list[Case]], runs: int, warmup: int
) -> list[list[dict]]:
    """Each case on each server (one per data set), the servers' runs interleaved so that the
    load of the machine at that moment weighs on both alike; one result list per server."""
    http = requests.Session()
    results: list[list[dict]] = [[] for _ in bases]
    for cases_now in zip(*case_lists, strict=True):
        urls = []
        for base, case in zip(bases, cases_now, strict=True):
            if case.path == "DEEP":
                case.path = deep_cursor_path(http, base, 100)
            urls.append(base + case.path)
            for _ in range(max(1, warmup)):
                _, status, _ = time_request(http, urls[-1])
                if status != 200:
                    raise RuntimeError(f"{case.name}: HTTP {status} for {case.path}")
        times: list[list[float]] = [[] for _ in bases]
        lines = [0 for _ in bases]
        for _ in range(runs):
            for i, url in enumerate(urls):
                seconds, _, lines[i] = time_request(http, url)
                times[i].append(seconds * 1000)
        for i, case in enumerate(cases_now):
            results[i].append(_result(case, times[i], lines[i], quiet=i > 0))
    return results


def _result(case: Case, times: list[float], lines: int, quiet: bool = False) -> dict:
    result = {
        "name": case.name,
        "kind": case.kind,
        "path": case.path,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(p95(times), 1),
    }
    if case.kind == "csv":
        rows = max(0, lines - 1)
        result["rows"] = rows
        result["rows_per_second"] = round(rows / (statistics.median(times) / 1000))
        result["met"] = result["rows_per_second"] >= CSV_TARGET_ROWS_PER_SECOND
        result["target"] = f">= {CSV_TARGET_ROWS_PER_SECOND:,} rows/s"
    elif TARGETS_MS[case.kind] is None:
        result["met"] = True
        result["target"] = "informational (no target)"
    else:
        target = TARGETS_MS[case.kind]
        result["met"] = result["p95_ms"] <= target
        result["target"] = f"p95 <= {target} ms"
    if not quiet:
        print(
            f"  {case.name:<42} median {result['median_ms']:>7.1f} ms  "
            f"p95 {result['p95_ms']:>7.1f} ms"
            + (f"  {result['rows_per_second']:,} rows/s" if case.kind == "csv" else "")
            + ("" if result["met"] else "  MISSED"),
            flush=True,
        )
    return result


def scaling(small: list[dict], large: list[dict], small_rows: int, large_rows: int) -> list[dict]:
    """Per request, median at the larger data set / median at the smaller one."""
    out = []
    for s, g in zip(small, large, strict=True):
        ratio = g["median_ms"] / s["median_ms"] if s["median_ms"] else float("inf")
        judged = g["kind"] in SCALING_KINDS
        out.append(
            {
                "name": g["name"],
                "kind": g["kind"],
                "small_rows": small_rows,
                "large_rows": large_rows,
                "small_median_ms": s["median_ms"],
                "large_median_ms": g["median_ms"],
                "small_p95_ms": s["p95_ms"],
                "large_p95_ms": g["p95_ms"],
                "ratio": round(ratio, 2),
                "met": ratio <= SCALING_TARGET if judged else True,
                "target": f"<= {SCALING_TARGET}x" if judged else "informational (no target)",
            }
        )
    return out


def compare_db_name(db_name: str, rows: int) -> str:
    """The smaller data set's database, kept beside the main one (bench_queries_1m)."""
    suffix = f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else str(rows)
    return f"{db_name}_{suffix}"


def explain(db_name: str, path: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every SQL statement the app runs for `path` (in-process,
    the same view code), slowest first."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import event

    from webapp import create_app
    from webapp.extensions import db

    app = create_app(settings(POSTGRES_DB=db_name))
    statements: list[list] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append([statement, parameters, time.perf_counter()])

    def after(conn, cursor, statement, parameters, context, executemany):
        statements[-1][2] = time.perf_counter() - statements[-1][2]

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        client = app.test_client()
        client.get(path)  # warm the caches like the measured runs did
        statements.clear()
        response = client.get(path)
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
        if response.status_code != 200:
            return f"(HTTP {response.status_code})"
        relevant = [s for s in statements if "messages" in s[0]]
        relevant.sort(key=lambda s: -s[2])
        out = []
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            for statement, parameters, seconds in relevant:
                sql = cur.mogrify(statement, parameters).decode()
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = "\n".join(r[0] for r in cur.fetchall())
                out.append(f"-- {seconds * 1000:.1f} ms in the app\n{sql}\n\n{plan}")
            raw.rollback()
        finally:
            raw.close()
        db.engine.dispose()
    return "\n\n".join(out)


def run_server(db_name: str, port: int) -> Proc:
    web = start_web(port, env(db_name), RESULTS / "queries-gunicorn.log")

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2).ok
        except requests.RequestException:
            if web.p.poll() is not None:
                raise RuntimeError(
                    "gunicorn exited; see bench/results/queries-gunicorn.log"
                ) from None
            return False

    wait_until(up, 60, interval=0.2)
    return web


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--payload-bytes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2, help="loader processes")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--port", type=int, default=24780)
    parser.add_argument("--db-name", default="bench_queries")
    parser.add_argument("--reuse", action="store_true", help="reuse a loaded database")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument(
        "--compare-rows",
        type=int,
        default=0,
        help="also measure a data set of this many rows (same months; database "
        "<db-name>_1m for 1,000,000) and print the ratio per request",
    )
    args = parser.parse_args(argv)

    RESULTS.mkdir(parents=True, exist_ok=True)
    data = prepare(args)
    small_args = None
    if args.compare_rows:
        small_args = argparse.Namespace(
            **{
                **vars(args),
                "rows": args.compare_rows,
                "db_name": compare_db_name(args.db_name, args.compare_rows),
            }
        )
        small_data = prepare(small_args)
    picked = samples(args.db_name)
    servers = [run_server(args.db_name, args.port)]
    bases, case_lists = [f"http://127.0.0.1:{args.port}"], [cases(picked)]
    try:
        if small_args is not None:
            servers.append(run_server(small_args.db_name, args.port + 1))
            bases.append(f"http://127.0.0.1:{args.port + 1}")
            case_lists.append(cases(samples(small_args.db_name)))
        measured = measure(bases, case_lists, args.runs, args.warmup)
    finally:
        for web in servers:
            web.stop()
    results = measured[0]
    scaled = []
    if small_args is not None:
        scaled = scaling(measured[1], results, args.compare_rows, args.rows)
        print(f"\n  cost as the data grows ({args.compare_rows:,} -> {args.rows:,} rows), medians:")
        for r in scaled:
            print(
                f"  {r['name']:<42} {r['small_median_ms']:>7.1f} -> {r['large_median_ms']:>7.1f} ms"
                f"  {r['ratio']:>5.2f}x" + ("" if r["met"] else "  MISSED"),
                flush=True,
            )
    lists = [r for r in results if r["kind"] in ("first", "list", "text")]
    slowest = max(lists, key=lambda r: r["p95_ms"])
    plan = "" if args.no_explain else explain(args.db_name, slowest["path"])
    if plan:
        Path(RESULTS / "queries-explain.txt").write_text(
            f"slowest list request: {slowest['name']} ({slowest['path']}), "
            f"p95 {slowest['p95_ms']} ms\n\n{plan}\n"
        )
        print(f"\nEXPLAIN of the slowest list request ({slowest['name']}):\n{plan}\n", flush=True)
    if args.drop:
        drop_database(args.db_name)
        if small_args is not None:
            drop_database(small_args.db_name)
    out = {
        "data": data,
        "samples": {k: str(v) for k, v in picked.items()},
        "runs": args.runs,
        "results": results,
        "slowest_list": slowest["name"],
        "all_met": all(r["met"] for r in [*results, *scaled]),
    }
    if small_args is not None:
        out["compare"] = {"data": small_data, "results": measured[1], "scaling": scaled}
    save("queries", out)
    return out


if __name__ == "__main__":
    main()
