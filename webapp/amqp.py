"""Publishing to PACER's exchanges with kombu (shared by re-ingest and the investigation checks):
passive exchange check, publisher confirms, `mandatory`, persistent delivery. Any failure raises
`PublishError` with a reason a person can act on; a success returns only after the broker
confirmed the message was routed.

Each publisher is built with a broker URL and a target policy, both stated by the caller and
without defaults: `refusal(exchange)` names why an exchange may not be published to (None: it
may) and is checked inside `publish`, whatever the caller checked before. Re-ingest passes the
allow-list (`webapp.actions.targets.reingest_publisher`); the investigation checks publish to
their configured exchange and pass `refusal=None`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import amqp.exceptions
from kombu import Connection, Producer
from kombu.exceptions import OperationalError

from .config import AMQP_NAME_MAX_BYTES

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "text": "text/plain",
}

#: Exchange names are logged at most this long (a stored report's are producer-chosen).
LOGGED_NAME_CHARS = 80


class PublishError(Exception):
    """The broker did not accept the message (missing exchange, unroutable, nacked, down)."""


class PublishRefused(PublishError):
    """The exchange is not a permitted target of this publisher: nothing was sent."""


class Publisher:
    """One broker connection for one or many confirmed publishes (`with Publisher(s) as p:`)."""

    def __init__(
        self,
        settings: Any,
        *,
        broker_url: str,
        refusal: Callable[[str], str | None] | None,
    ):
        """`broker_url`: whom to publish as; `refusal`: the target policy checked in `publish`
        (None only for a publisher whose exchanges come from configuration, not from reports)."""
        self.settings = settings
        self.refusal = refusal
        self.connection = Connection(
            broker_url,
            ssl=settings.broker_use_ssl,
            connect_timeout=5,
            transport_options={"confirm_publish": True},
        )
        self._channel = None
        self._returned: Exception | None = None
        self._known_exchanges: set[str] = set()

    def __enter__(self) -> Publisher:
        try:
            self.connection.connect()
        except (OSError, OperationalError, amqp.exceptions.AMQPError) as exc:
            raise PublishError(f"cannot connect to RabbitMQ: {exc}") from None
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.connection.release()
        except (OSError, amqp.exceptions.AMQPError):  # already gone
            logger.debug("broker connection closed with an error", exc_info=True)

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        self._returned = exc

    @property
    def channel(self):
        if self._channel is None or not self._channel.is_open:
            self._channel = self.connection.channel()
            self._channel.events["basic_return"].add(self._on_return)
        return self._channel

    def check_exchange(self, exchange: str) -> None:
        """Passive declare: PACER owns its exchanges; a missing one is an error, never created."""
        if exchange in self._known_exchanges:
            return
        try:
            self.channel.exchange_declare(exchange, "direct", passive=True)
        except amqp.exceptions.NotFound:
            self._channel = None  # the broker closed the channel
            raise PublishError(f"exchange {exchange!r} does not exist on the broker") from None
        self._known_exchanges.add(exchange)

    def publish(
        self,
        body: str,
        *,
        exchange: str,
        routing_key: str,
        payload_format: str,
        headers: dict[str, Any],
        content_type: str | None = None,
    ) -> None:
        """Publish persistently and wait for the confirm; raise PublishError if not routed.

        The body goes out as UTF-8 with `content_type` (default: the one of `payload_format`).
        """
        if not exchange:
            raise PublishRefused("the message has no exchange recorded: nowhere to publish it")
        reason = self.refusal(exchange) if self.refusal is not None else None
        if reason:
            raise PublishRefused(reason)
        if len(routing_key.encode("utf-8")) > AMQP_NAME_MAX_BYTES:
            raise PublishRefused(
                f"the routing key is over {AMQP_NAME_MAX_BYTES} bytes: AMQP cannot carry it"
            )
        timeout = self.settings.PUBLISH_CONFIRM_TIMEOUT
        try:
            self.check_exchange(exchange)
            self._returned = None
            Producer(self.channel).publish(
                body.encode("utf-8"),
                exchange=exchange,
                routing_key=routing_key,
                mandatory=True,
                delivery_mode=2,
                content_type=content_type or CONTENT_TYPES.get(payload_format, "text/plain"),
                content_encoding="utf-8",
                headers=headers,
                retry=False,
                timeout=timeout,
                confirm_timeout=timeout,
            )
        except amqp.exceptions.MessageNacked:
            raise PublishError("the broker refused the message (nack)") from None
        except TimeoutError:
            self._channel = None
            raise PublishError(f"no confirmation from the broker within {timeout} s") from None
        except amqp.exceptions.ChannelError as exc:
            self._channel = None
            raise PublishError(f"the broker refused the message: {exc}") from None
        except (OSError, OperationalError, amqp.exceptions.AMQPError) as exc:
            self._channel = None
            raise PublishError(f"broker connection failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. a value the AMQP encoder cannot pack
            logger.exception("unexpected error publishing to %r", exchange[:LOGGED_NAME_CHARS])
            self._channel = None
            raise PublishError(f"could not publish: {type(exc).__name__}: {exc}") from None
        if self._returned is not None:
            returned, self._returned = self._returned, None
            raise PublishError(
                f"unroutable: no queue is bound to exchange {exchange!r} with routing key "
                f"{routing_key!r} ({returned})"
            )
