"""Run PACER consumers: one kombu `ConsumerMixin` hosting any number of `PACERConsumer`s.

All consumers share one consuming connection and channel (each with its own prefetch); reports
and onward messages go through one `Publisher` on a second connection with publisher confirms.
The worker reconnects after broker restarts (kombu's ConsumerMixin) and stops cleanly when
`stop()` is called, e.g. from a SIGTERM handler.

`paused` (optional) names message types whose consumer should stop consuming for now (checked
about every second): their messages wait in their queues and no report is sent, as when that
consumer dies; they are consumed again when the type leaves the set (the demo's silence).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.mixins import ConsumerMixin

from .config import BrokerSettings, ReportSettings
from .consumer import PACERConsumer
from .producer import Publisher

logger = logging.getLogger(__name__)

#: How often `paused` is asked which consumers should not consume.
PAUSE_CHECK_SECONDS = 1.0


class PACERWorker(ConsumerMixin):
    """Consume the queues of `consumers` until `stop()`; declare `declare` entities on start."""

    def __init__(
        self,
        connection: Connection,
        consumers: Sequence[PACERConsumer],
        *,
        declare: Iterable[Exchange | Queue] = (),
        publisher: Publisher | None = None,
        paused: Callable[[], Collection[str]] | None = None,
    ):
        if not consumers:
            raise ValueError("a worker needs at least one consumer")
        names = [c.queue_name for c in consumers]
        if len(set(names)) != len(names):
            raise ValueError(f"two consumers read the same queue: {names}")
        self.connection = connection
        self.consumers = list(consumers)
        self.declare = list(declare)
        self.publisher = publisher or Publisher(connection)
        self._owns_publisher = publisher is None
        self.ready = False
        self.paused = paused
        self._kombu_consumers: dict[str, Any] = {}
        self._paused_now: set[str] = set()
        self._next_pause_check = 0.0
        for consumer in self.consumers:
            consumer.bind(self.publisher)

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:  # noqa: N803 (kombu API)
        """One kombu Consumer per PACER consumer; declares the topology first."""
        for entity in self.declare:
            entity(channel).declare()
        for consumer in self.consumers:
            consumer.report_exchange_entity(channel).declare()
        return [
            Consumer(
                queues=[c.queue],
                on_message=c.on_message,
                prefetch_count=c.prefetch_count,
                tag_prefix=f"{c.dashboard_message_type}-",
            )
            for c in self.consumers
        ]

    def on_consume_ready(
        self, connection: Any, channel: Any, consumers: Any, **kwargs: Any
    ) -> None:
        """Mark the worker ready once every queue is being consumed."""
        self._kombu_consumers = {
            c.dashboard_message_type: k for c, k in zip(self.consumers, consumers, strict=True)
        }
        self._paused_now = set()
        self._apply_pauses(force=True)
        self.ready = True
        logger.info(
            "consuming %s",
            ", ".join(f"{c.queue_name} ({c.dashboard_message_type})" for c in self.consumers),
        )

    def on_iteration(self) -> None:
        """Between deliveries: pause or resume consumers as `paused` says."""
        self._apply_pauses()

    def _apply_pauses(self, force: bool = False) -> None:
        if self.paused is None or not self._kombu_consumers:
            return
        now = time.monotonic()
        if not force and now < self._next_pause_check:
            return
        self._next_pause_check = now + PAUSE_CHECK_SECONDS
        wanted = set(self.paused()) & set(self._kombu_consumers)
        for message_type in sorted(wanted - self._paused_now):
            self._kombu_consumers[message_type].cancel()
            logger.warning("paused the %s consumer: its messages wait, no reports", message_type)
        for message_type in sorted(self._paused_now - wanted):
            self._kombu_consumers[message_type].consume()
            logger.info("resumed the %s consumer", message_type)
        self._paused_now = wanted

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        """Log broker outages (kombu retries)."""
        logger.warning("broker connection error: %s; retrying in %.1f s", exc, interval)

    def stop(self) -> None:
        """Ask the loop to finish after the current delivery (safe from a signal handler)."""
        self.should_stop = True

    def close(self) -> None:
        """Release both connections."""
        if self._owns_publisher:
            self.publisher.close()
        self.connection.release()


def report_queue(settings: ReportSettings) -> Queue | None:
    """The dashboard's report queue as the dashboard declares it, when `settings.queue` is set."""
    if not settings.queue:
        return None
    exchange = Exchange(settings.exchange, type="direct", durable=True)
    return Queue(settings.queue, exchange=exchange, routing_key=settings.routing_key, durable=True)


def run_consumers(
    consumers: Sequence[PACERConsumer],
    *,
    broker: BrokerSettings | None = None,
    declare: Iterable[Exchange | Queue] = (),
    handle_signals: bool = True,
    paused: Callable[[], Collection[str]] | None = None,
) -> None:
    """Run consumers in this process until SIGTERM/SIGINT (the usual `main` of a PACER)."""
    broker = broker or BrokerSettings.from_env()
    worker = PACERWorker(broker.connection(), consumers, declare=declare, paused=paused)
    if handle_signals:

        def _stop(signum: int, _frame: Any) -> None:
            logger.info("signal %s received, stopping after the current message", signum)
            worker.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    try:
        worker.run()
    finally:
        worker.close()
