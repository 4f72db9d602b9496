"""Publishing that cannot fail silently: publisher confirms, mandatory routing, persistence.

`Publisher` owns its own connection (a clone of the one it is given, with `confirm_publish`), so
waiting for a confirm never dispatches deliveries of a consumer connection re-entrantly.
Each publish waits for the broker's ack; a message the broker returns as unroutable, a nack, or a
missing exchange raises a `PublishError` subclass naming the exchange and routing key.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from amqp.exceptions import MessageNacked
from kombu import Connection, Exchange, Producer, Queue

from .decoding import JSON, XML, detect_format

logger = logging.getLogger(__name__)

PERSISTENT = 2
CONTENT_TYPES = {JSON: "application/json", XML: "application/xml"}
RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


class PublishError(RuntimeError):
    """A message was not accepted by the broker."""

    def __init__(self, message: str, *, exchange: str, routing_key: str):
        super().__init__(message)
        self.exchange = exchange
        self.routing_key = routing_key


class MessageUnroutable(PublishError):
    """The broker returned a mandatory message: no queue is bound for that routing key."""


class PublishNacked(PublishError):
    """The broker negatively acknowledged the message (it was not stored)."""


class ExchangeNotFound(PublishError):
    """The exchange does not exist on the broker."""


def encode_body(body: Any, content_type: str | None) -> tuple[bytes, str]:
    """Bytes and content type: dict/list → JSON; text sniffed as JSON, XML or plain text."""
    if isinstance(body, dict | list):
        return json.dumps(body).encode("utf-8"), content_type or CONTENT_TYPES[JSON]
    if isinstance(body, str):
        data = body.encode("utf-8")
        text = body
    elif isinstance(body, bytes):
        data = body
        text = body.decode("utf-8", "replace")
    else:
        raise TypeError(f"cannot publish a {type(body).__name__}; give a dict, list, str or bytes")
    return data, content_type or CONTENT_TYPES.get(detect_format(text), "text/plain")


class Publisher:
    """Confirmed, mandatory, persistent publishing on a private connection. Thread-safe."""

    def __init__(self, connection: Connection, *, timeout: float = 10.0):
        options = dict(connection.transport_options or {}, confirm_publish=True)
        self.connection = connection.clone(transport_options=options)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._returned: dict[str, str] = {}

    # lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the private connection."""
        with self._lock:
            self._producer = None
            self.connection.release()

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                self.connection.channel(), auto_declare=False, on_return=self._on_return
            )
        return self._producer

    def _reset_channel(self) -> None:
        if self._producer is not None:
            try:
                self._producer.channel.close()
            except Exception:  # the broker closed it already; we only need a fresh one
                logger.debug("closing a failed channel raised", exc_info=True)
        self._producer = None

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = (message.properties or {}).get("message_id")
        self._returned[message_id] = str(exc)

    # API ------------------------------------------------------------------------------------
    def declare(self, *entities: Exchange | Queue) -> None:
        """Declare exchanges/queues (with their bindings) on the publishing channel."""
        with self._lock:
            channel = self._get_producer().channel
            for entity in entities:
                entity(channel).declare()

    def publish(
        self,
        body: Any,
        *,
        exchange: str | Exchange,
        routing_key: str,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Publish one message and wait for the broker's confirm. Returns the message id.

        Raises MessageUnroutable, PublishNacked or ExchangeNotFound (all PublishError).
        """
        data, content_type = encode_body(body, content_type)
        message_id = message_id or str(uuid.uuid4())
        exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
        with self._lock:
            producer = self._get_producer()
            try:
                producer.publish(
                    data,
                    exchange=exchange_name,
                    routing_key=routing_key,
                    content_type=content_type,
                    content_encoding="utf-8",
                    delivery_mode=PERSISTENT,
                    mandatory=True,
                    headers=dict(headers or {}),
                    message_id=message_id,
                    retry=True,
                    retry_policy=RETRY_POLICY,
                    timeout=self.timeout,
                )
            except MessageNacked:
                raise PublishNacked(
                    f"broker nacked message {message_id} to exchange {exchange_name!r} "
                    f"with routing key {routing_key!r}",
                    exchange=exchange_name,
                    routing_key=routing_key,
                ) from None
            except self.connection.channel_errors as exc:
                self._reset_channel()
                if getattr(exc, "code", None) == 404:
                    raise ExchangeNotFound(
                        f"exchange {exchange_name!r} does not exist: {exc}",
                        exchange=exchange_name,
                        routing_key=routing_key,
                    ) from exc
                raise
            reason = self._returned.pop(message_id, None)
        if reason is not None:
            raise MessageUnroutable(
                f"message {message_id} to exchange {exchange_name!r} with routing key "
                f"{routing_key!r} was returned by the broker: {reason}",
                exchange=exchange_name,
                routing_key=routing_key,
            )
        return message_id
