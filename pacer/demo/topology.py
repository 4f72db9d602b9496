"""Exchanges, routing keys and queues of the demo PACER (all direct and durable).

A `suffix` is appended to every exchange and queue name so several demos (or tests) can share one
broker without seeing each other's messages; routing keys stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue

DATASET_INGESTION = "dataset-ingestion"
INTERNAL_DATASET_INGESTION = "internal-dataset-ingestion"
INTERNAL_STATISTICS = "internal-statistics"
INTERNAL_DATASET_LINKS = "internal-dataset-links"
USER_SYNC = "user-sync"
PROPOSAL_SYNC = "proposal-sync"
INVESTIGATION_OPS = "investigation-ops"

#: message type → (exchange, routing key, queue), before the suffix.
ROUTES: dict[str, tuple[str, str, str]] = {
    DATASET_INGESTION: ("dataset-ingest-exchange", "dataset.ingest", "pacer-dataset-ingestion"),
    INTERNAL_DATASET_INGESTION: (
        "internal-dataset-exchange",
        "internal.dataset.ingest",
        "pacer-internal-dataset-ingestion",
    ),
    INTERNAL_STATISTICS: (
        "internal-dataset-exchange",
        "internal.statistics",
        "pacer-internal-statistics",
    ),
    INTERNAL_DATASET_LINKS: (
        "internal-dataset-exchange",
        "internal.dataset.links",
        "pacer-internal-dataset-links",
    ),
    USER_SYNC: ("user-sync-exchange", "user.sync", "pacer-user-sync"),
    PROPOSAL_SYNC: ("proposal-sync-exchange", "proposal.sync", "pacer-proposal-sync"),
    # The dashboard publishes investigation operations here (DESIGN §10).
    INVESTIGATION_OPS: (
        "investigation-ops-exchange",
        "investigation.ops",
        "pacer-investigation-ops",
    ),
}


@dataclass(frozen=True)
class Route:
    """Where one message type is published and consumed."""

    message_type: str
    exchange: str
    routing_key: str
    queue: str

    def exchange_entity(self) -> Exchange:
        return Exchange(self.exchange, type="direct", durable=True)

    def queue_entity(self) -> Queue:
        return Queue(
            self.queue, exchange=self.exchange_entity(), routing_key=self.routing_key, durable=True
        )


@dataclass(frozen=True)
class DemoTopology:
    """All demo routes, with an optional name suffix."""

    suffix: str = ""

    def route(self, message_type: str) -> Route:
        exchange, routing_key, queue = ROUTES[message_type]
        return Route(message_type, exchange + self.suffix, routing_key, queue + self.suffix)

    def routes(self) -> list[Route]:
        return [self.route(message_type) for message_type in ROUTES]

    def entities(self) -> list[Exchange | Queue]:
        """Every exchange and queue (with its binding), ready to declare."""
        exchanges = {r.exchange: r.exchange_entity() for r in self.routes()}
        return [*exchanges.values(), *(r.queue_entity() for r in self.routes())]
