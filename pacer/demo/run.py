"""`python -m pacer.demo.run`: every demo consumer in one process until SIGTERM/SIGINT.

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

from pacer.config import DEFAULT_REPORT_QUEUE, BrokerSettings, ConfigError, ReportSettings
from pacer.worker import report_queue, run_consumers

from .consumers import build_consumers
from .tasks import Simulation
from .topology import DemoTopology

logger = logging.getLogger("pacer.demo")


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
    run_consumers(consumers, broker=broker, declare=declare)
    logger.info("demo PACER stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
