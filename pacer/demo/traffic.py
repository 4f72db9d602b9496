"""`python -m pacer.demo.traffic --rate 50 [--count N]`: feed the demo PACER input messages.

Publishes (confirmed, mandatory, persistent) to the demo exchanges, not reports. Declares the
demo topology first, so messages wait in their queues until the consumers run. Prints the
totals as one JSON line on stdout when done.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import time
from collections import Counter

from pacer.config import BrokerSettings, ConfigError
from pacer.producer import Publisher, PublishError

from .samples import random_message
from .topology import DemoTopology

logger = logging.getLogger("pacer.demo.traffic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pacer.demo.traffic", description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second (50)")
    parser.add_argument("--count", type=int, default=None, help="stop after N messages")
    parser.add_argument(
        "--xml-share", type=float, default=0.2, help="share of legacy XML payloads (0.2)"
    )
    parser.add_argument(
        "--fail-stage",
        type=int,
        choices=(1, 2, 3, 4),
        default=None,
        help="force this pipeline stage to fail for every dataset message",
    )
    parser.add_argument(
        "--name-suffix",
        default=os.environ.get("PACER_DEMO_SUFFIX", ""),
        help="suffix of the demo exchange and queue names (as given to pacer.demo.run)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if args.count is not None and args.count < 0:
        parser.error("--count must not be negative")
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # finish like Ctrl-C: log the totals and close the connection


def main(argv: list[str] | None = None) -> int:
    """Publish demo traffic until --count messages or SIGINT/SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        broker = BrokerSettings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    rng = random.Random(args.seed)
    topology = DemoTopology(args.name_suffix)
    sent: Counter[str] = Counter()
    interval = 1.0 / args.rate
    with Publisher(broker.connection()) as publisher:
        publisher.declare(*topology.entities())
        next_at = time.monotonic()
        try:
            while args.count is None or sum(sent.values()) < args.count:
                kind, body, content_type = random_message(
                    rng, xml_share=args.xml_share, fail_stage=args.fail_stage
                )
                route = topology.route(kind)
                publisher.publish(
                    body,
                    exchange=route.exchange,
                    routing_key=route.routing_key,
                    content_type=content_type,
                )
                sent[kind] += 1
                if sum(sent.values()) % 500 == 0:
                    logger.info("published %s", dict(sent))
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()  # do not burst to catch up after a stall
        except KeyboardInterrupt:
            pass
        except PublishError as exc:
            logger.error("publishing failed: %s", exc)
            return 1
    logger.info("published %d messages: %s", sum(sent.values()), dict(sent))
    # Machine-readable totals on stdout (scripts and tests read them).
    print(json.dumps({"published": sum(sent.values()), "by_type": dict(sent)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
