"""Run the benchmarks and print one results table (`make bench` = scripts/bench.sh → here).

    python -m bench                                   # all three, full size
    python -m bench --only queries --reuse            # one, reusing the loaded database
    python -m bench --ingest-count 20000 --query-rows 500000 --live-seconds 10   # smaller

Needs the service variables of a PostgreSQL + RabbitMQ pair in the environment (scripts/bench.sh
starts dedicated ones under .run-bench/ and exports them).
"""

from __future__ import annotations

import argparse
import time

from bench.common import RESULTS, machine, save

BENCHMARKS = ("ingest", "queries", "live")


def rows_for(name: str, result: dict) -> list[tuple[str, str, str, str]]:
    """(benchmark, measure, figure, target + met) rows of one benchmark's result."""

    def mark(met: bool) -> str:
        return "yes" if met else "NO"

    out = []
    if name == "ingest":
        from bench.ingest import rows

        out += rows(result)
    elif name == "queries":
        d = result["data"]
        out.append(
            (
                "queries",
                "data set",
                f"{d['rows']:,} rows / {d['months']} months"
                + (" (reused)" if d.get("reused") else f", loaded in {d['total_seconds']:.0f} s"),
                "",
            )
        )
        for r in result["results"]:
            figure = f"median {r['median_ms']} ms, p95 {r['p95_ms']} ms"
            if r["kind"] == "csv":
                figure += f", {r['rows_per_second']:,} rows/s"
            out.append(("queries", r["name"], figure, f"{r['target']}: {mark(r['met'])}"))
        for r in result.get("compare", {}).get("scaling", []):
            out.append(
                (
                    "queries",
                    f"{r['name']}: {r['small_rows'] // 1000:,}k -> {r['large_rows'] // 1000:,}k rows",
                    f"median {r['small_median_ms']} -> {r['large_median_ms']} ms = {r['ratio']}x",
                    f"{r['target']}: {mark(r['met'])}",
                )
            )
    elif name == "live":
        from bench.live import rows

        out += rows(result)
    return out


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("benchmark", "measure", "figure", "target: met")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="repeatable")
    parser.add_argument("--ingest-count", type=int, default=100_000)
    parser.add_argument("--ingest-small-count", type=int, default=20_000)
    parser.add_argument("--ingest-tiny-count", type=int, default=3_000, help="for batch 1")
    parser.add_argument("--ingest-batch-sizes", default="500,50,1")
    parser.add_argument("--query-rows", type=int, default=5_000_000)
    parser.add_argument("--query-months", type=int, default=24)
    parser.add_argument("--query-runs", type=int, default=20)
    parser.add_argument(
        "--query-compare-rows",
        type=int,
        default=1_000_000,
        help="the smaller data set of the cost-as-the-data-grows ratios (0: none)",
    )
    parser.add_argument("--reuse", action="store_true", help="reuse the loaded query database")
    parser.add_argument("--live-rate", type=int, default=200)
    parser.add_argument("--live-sockets", type=int, default=1000)
    parser.add_argument("--live-seconds", type=float, default=30)
    parser.add_argument(
        "--live-ports", type=int, default=24781, help="the web process's; the live process's + 1"
    )
    args = parser.parse_args(argv)

    selected = args.only or list(BENCHMARKS)
    results: dict[str, dict] = {}
    started = time.time()
    for name in selected:
        print(f"== {name}", flush=True)
        if name == "ingest":
            from bench import ingest

            results[name] = ingest.main(
                [
                    "--count",
                    str(args.ingest_count),
                    "--small-count",
                    str(args.ingest_small_count),
                    "--tiny-count",
                    str(args.ingest_tiny_count),
                    "--batch-sizes",
                    args.ingest_batch_sizes,
                ]
            )
        elif name == "queries":
            from bench import queries

            results[name] = queries.main(
                [
                    "--rows",
                    str(args.query_rows),
                    "--months",
                    str(args.query_months),
                    "--runs",
                    str(args.query_runs),
                    "--compare-rows",
                    str(
                        args.query_compare_rows if args.query_compare_rows < args.query_rows else 0
                    ),
                    *(["--reuse"] if args.reuse else []),
                ]
            )
        else:
            from bench import live

            results[name] = live.main(
                [
                    "--rate",
                    str(args.live_rate),
                    "--sockets",
                    str(args.live_sockets),
                    "--seconds",
                    str(args.live_seconds),
                    "--port",
                    str(args.live_ports),
                    "--live-port",
                    str(args.live_ports + 1),
                ]
            )
    rows = [row for name in selected for row in rows_for(name, results[name])]
    print()
    print(f"Results ({machine()}, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC)")
    print(table(rows))
    save("summary", {"rows": rows, "benchmarks": selected})
    print(f"\nJSON results in {RESULTS}/", flush=True)
    failed = [r for r in rows if r[3].endswith(": NO")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
