"""`python -m pacer.demo.run`: every demo consumer in one process until SIGTERM/SIGINT.

Silence (to watch the dashboard's silence alerts): the consumers of the message types listed in
the control file (`--control-file`, default `$RUN_DIR/demo-silenced`, one type per line; written
by `flask demo silence TYPE`) stop consuming within a second, as if they had died, and resume when
the type leaves the file. Without the file, PACER_DEMO_SILENCE (comma-separated types) says which.

Broker from RMQ_*; reports to DASHBOARD_EXCHANGE / DASHBOARD_ROUTING_KEY (DESIGN §3 defaults).
The dashboard's report queue (DASHBOARD_QUEUE, default `dashboard-logging`) is declared too, so
reports wait for a dashboard that starts later.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from pathlib import Path

from pacer.config import DEFAULT_REPORT_QUEUE, BrokerSettings, ConfigError, ReportSettings
from pacer.worker import report_queue, run_consumers

from .consumers import build_consumers
from .tasks import Simulation
from .topology import DemoTopology

logger = logging.getLogger("pacer.demo")

#: Name of the control file in RUN_DIR (`flask demo silence` writes it).
SILENCE_FILE = "demo-silenced"


def silenced_types(path: Path, default: str = "") -> set[str]:
    """Types whose consumer should be silent: the control file's lines, else `default` (csv)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = default.replace(",", "\n")
    return {line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pacer.demo.run", description=__doc__)
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=float(os.environ.get("PACER_DEMO_FAILURE_RATE", "0.1")),
        help="share of messages failing at random (default 0.1, env PACER_DEMO_FAILURE_RATE)",
    )
    parser.add_argument(
        "--name-suffix",
        default=os.environ.get("PACER_DEMO_SUFFIX", ""),
        help="suffix for every demo exchange and queue name (isolated demos on one broker)",
    )
    parser.add_argument(
        "--no-report-queue",
        action="store_true",
        help="do not declare the dashboard's report queue",
    )
    parser.add_argument(
        "--control-file",
        default=os.environ.get("PACER_DEMO_CONTROL_FILE")
        or str(Path(os.environ.get("RUN_DIR", ".run")) / SILENCE_FILE),
        help="file listing the silenced message types (default $RUN_DIR/demo-silenced)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible runs)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo PACER."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not 0 <= args.failure_rate <= 1:
        print("--failure-rate must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        broker = BrokerSettings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    reports = ReportSettings.from_env()
    if not reports.queue and not args.no_report_queue:
        reports = ReportSettings(reports.exchange, reports.routing_key, DEFAULT_REPORT_QUEUE)
    topology = DemoTopology(args.name_suffix)
    simulation = Simulation(failure_rate=args.failure_rate, rng=random.Random(args.seed))
    consumers = build_consumers(topology, simulation, reports)
    declare = topology.entities()
    queue = None if args.no_report_queue else report_queue(reports)
    if queue is not None:
        declare.append(queue)
    logger.info("demo PACER on %r, reports to %s/%s", broker, reports.exchange, reports.routing_key)
    control = Path(args.control_file)
    default = os.environ.get("PACER_DEMO_SILENCE", "")
    run_consumers(
        consumers,
        broker=broker,
        declare=declare,
        paused=lambda: silenced_types(control, default),
    )
    logger.info("demo PACER stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
