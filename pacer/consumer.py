"""`PACERConsumer`: the base class a facility team subclasses to write a PACER consumer.

A subclass names its message type and queue, defines `callback_func_*` methods and says which
identifiers describe a message. For each delivery the base class decodes the body, validates it
against `payload_model` (when set), runs the callbacks in order, collects their errors, publishes
one report to the dashboard (DESIGN §3) and then acks or rejects the delivery. The report is
published before the ack: if the process dies in between, the message is redelivered and reported
again (at-least-once, with `attempt` 2).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from kombu import Exchange, Queue
from kombu.message import Message
from pydantic import BaseModel, ValidationError

from .config import DEFAULT_REPORT_EXCHANGE, DEFAULT_REPORT_ROUTING_KEY
from .decoding import TEXT, DecodedPayload, PayloadDecodeError, decode_payload
from .producer import Publisher, PublishError
from .report import (
    HASH_HEADER,
    build_report,
    encode_report,
    format_exception,
    format_traceback,
    is_valid_hash,
    payload_hash,
)

logger = logging.getLogger(__name__)

CALLBACK_PREFIX = "callback_func_"
ORDER_ATTRIBUTE = "_pacer_callback_order"
#: error_message keys for failures that happen before any callback runs.
DECODE_STEP = "decode_payload"
VALIDATE_STEP = "validate_payload"
IDENTIFIERS_STEP = "get_message_object_identifiers"

F = TypeVar("F", bound=Callable[..., Any])


def callback_order(position: int) -> Callable[[F], F]:
    """Run this callback at `position` (ascending; ties by name; unordered callbacks run last)."""
    if isinstance(position, bool) or not isinstance(position, int):
        raise TypeError(f"callback_order takes an int, not {position!r}")

    def decorate(func: F) -> F:
        setattr(func, ORDER_ATTRIBUTE, position)
        return func

    return decorate


@dataclass
class Delivery:
    """What arrived, as the consumer saw it (available as `self.delivery` inside callbacks)."""

    body: bytes
    content_type: str | None
    headers: dict[str, Any]
    exchange: str
    routing_key: str
    redelivered: bool
    hash: str
    attempt: int
    payload: DecodedPayload | None = None
    #: Scratch space callbacks of this delivery share (not reported, unlike identifiers).
    state: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_message(cls, message: Message) -> Delivery:
        """Read the parts of a kombu message a report needs."""
        body = message.body
        if isinstance(body, str):  # py-amqp decodes bodies that declare a content_encoding
            body = body.encode(message.content_encoding or "utf-8")
        headers = dict(message.headers or {})
        info = message.delivery_info or {}
        redelivered = bool(info.get("redelivered"))
        carried = headers.get(HASH_HEADER)
        return cls(
            body=body,
            content_type=message.content_type,
            headers=headers,
            exchange=info.get("exchange") or "",
            routing_key=info.get("routing_key") or "",
            redelivered=redelivered,
            hash=carried if is_valid_hash(carried) else payload_hash(body),
            attempt=_attempt(headers, redelivered),
        )


def _attempt(headers: dict[str, Any], redelivered: bool) -> int:
    """1 for a first delivery; dead-letter cycles (`x-death`) and a redelivery add to it."""
    deaths = headers.get("x-death") or []
    cycles = sum(int(d.get("count", 1)) for d in deaths if isinstance(d, dict))
    return 1 + cycles + (1 if redelivered else 0)


@dataclass
class Outcome:
    """The result of handling one delivery (returned by `handle`, used by tests and hooks)."""

    report: dict[str, Any]
    acked: bool
    rejected: bool


class PACERConsumer:
    """Base class for PACER consumers. Subclass it; see pacer/README.md for a full example."""

    #: `message_type` of the reports (e.g. "dataset-ingestion"). Required.
    dashboard_message_type: ClassVar[str] = ""
    #: Stop at the first failing callback and reject the delivery (no requeue: it dead-letters
    #: when the queue has a dead-letter exchange). The report is sent either way.
    reject_msg_at_first_callback_error: ClassVar[bool] = False
    #: Where the messages come from. The queue is declared durable and bound on start.
    queue_name: str = ""
    exchange_name: str = ""
    exchange_type: ClassVar[str] = "direct"
    routing_key: str = ""
    prefetch_count: ClassVar[int] = 10
    #: Extra queue arguments, e.g. {"x-dead-letter-exchange": "..."} for rejected messages.
    queue_arguments: ClassVar[dict[str, Any] | None] = None
    #: Validate decoded payloads with this model; callbacks then receive the model instance.
    payload_model: ClassVar[type[BaseModel] | None] = None
    #: Fields the default `get_message_object_identifiers` copies from the message.
    object_identifier_fields: ClassVar[tuple[str, ...]] = ()
    #: Where reports go (DESIGN §3 defaults).
    report_exchange: str = DEFAULT_REPORT_EXCHANGE
    report_routing_key: str = DEFAULT_REPORT_ROUTING_KEY

    _callbacks_cache: ClassVar[tuple[tuple[str, Callable[..., Any]], ...] | None] = None

    def __init__(
        self,
        *,
        queue_name: str | None = None,
        exchange_name: str | None = None,
        routing_key: str | None = None,
        report_exchange: str | None = None,
        report_routing_key: str | None = None,
        name: str | None = None,
    ):
        # Instance overrides let one class serve several deployments (and isolated tests).
        self.queue_name = queue_name or type(self).queue_name
        self.exchange_name = exchange_name if exchange_name is not None else self.exchange_name
        self.routing_key = routing_key if routing_key is not None else self.routing_key
        self.report_exchange = report_exchange or type(self).report_exchange
        self.report_routing_key = report_routing_key or type(self).report_routing_key
        self.name = name or f"{type(self).__module__}.{type(self).__qualname__}"
        if not self.dashboard_message_type:
            raise TypeError(f"{type(self).__name__} must set dashboard_message_type")
        if not self.queue_name:
            raise TypeError(f"{type(self).__name__} must set queue_name")
        self.host = socket.gethostname()
        self.publisher: Publisher | None = None
        self.delivery: Delivery | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._callbacks_cache = None

    # configuration --------------------------------------------------------------------------
    @classmethod
    def callbacks(cls) -> list[tuple[str, Callable[..., Any]]]:
        """`(name, function)` of every `callback_func_*` method, in the order they run."""
        if cls.__dict__.get("_callbacks_cache") is None:
            found = {
                name: getattr(cls, name)
                for name in dir(cls)
                if name.startswith(CALLBACK_PREFIX) and callable(getattr(cls, name))
            }
            ordered = sorted(
                (getattr(f, ORDER_ATTRIBUTE), n)
                for n, f in found.items()
                if getattr(f, ORDER_ATTRIBUTE, None) is not None
            )
            names = [n for _, n in ordered]
            names += sorted(n for n in found if n not in names)
            cls._callbacks_cache = tuple((n, found[n]) for n in names)
        return list(cls._callbacks_cache)

    @property
    def exchange(self) -> Exchange:
        """The exchange the queue is bound to (durable)."""
        return Exchange(self.exchange_name, type=self.exchange_type, durable=True)

    @property
    def queue(self) -> Queue:
        """The durable queue this consumer reads."""
        if not self.exchange_name:
            return Queue(self.queue_name, durable=True, queue_arguments=self.queue_arguments)
        return Queue(
            self.queue_name,
            exchange=self.exchange,
            routing_key=self.routing_key,
            durable=True,
            queue_arguments=self.queue_arguments,
        )

    @property
    def report_exchange_entity(self) -> Exchange:
        """The dashboard's direct exchange."""
        return Exchange(self.report_exchange, type="direct", durable=True)

    def bind(self, publisher: Publisher) -> None:
        """Attach the publisher used for reports and for `publish` (done by the worker)."""
        self.publisher = publisher

    # hooks for subclasses -------------------------------------------------------------------
    def get_message_object_identifiers(
        self, message: Any, shared_obj_identifiers: dict[str, Any]
    ) -> dict[str, Any]:
        """Identifiers of this message for the report; by default `object_identifier_fields`."""
        return pick_fields(message, self.object_identifier_fields)

    # helpers for callbacks ------------------------------------------------------------------
    def publish(
        self,
        body: Any,
        *,
        exchange: str | Exchange,
        routing_key: str,
        headers: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> str:
        """Publish onward (confirmed), carrying this delivery's hash to the next stage."""
        if self.publisher is None:
            raise RuntimeError(f"{self.name} is not bound to a publisher (run it in a worker)")
        carried = {HASH_HEADER: self.delivery.hash} if self.delivery else {}
        return self.publisher.publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            headers={**carried, **(headers or {})},
            content_type=content_type,
        )

    # the delivery ---------------------------------------------------------------------------
    def on_message(self, message: Message) -> None:
        """kombu `on_message` handler: handle, report, then ack or reject."""
        self.handle(message)

    def handle(self, message: Message) -> Outcome:
        """Process one kombu message completely (see the module docstring)."""
        delivery = Delivery.from_message(message)
        self.delivery = delivery
        errors: dict[str, str] = {}
        tracebacks: dict[str, str] = {}
        shared: dict[str, Any] = {}

        def record(step: str, exc: BaseException) -> None:
            errors[step] = format_exception(exc)
            tracebacks[step] = format_traceback(exc)
            logger.warning(
                "%s failed in %s on message hash=%s: %s",
                self.dashboard_message_type,
                step,
                delivery.hash,
                errors[step],
            )

        try:
            payload, payload_ok = self._decode(delivery, record)
            if payload_ok:
                for name, func in self.callbacks():
                    try:
                        func(self, payload, shared)
                    except Exception as exc:  # reported, that is the point of PACER
                        record(name, exc)
                        if self.reject_msg_at_first_callback_error:
                            break
            identifiers = self._identifiers(payload, shared, payload_ok, record)
            report = build_report(
                message_type=self.dashboard_message_type,
                object_identifiers=identifiers,
                error_message=errors,
                processing_start=delivery.started_at,
                processing_end=datetime.now(UTC),
                payload_hash=delivery.hash,
                payload_format=delivery.payload.format if delivery.payload else TEXT,
                payload=delivery.payload.text if delivery.payload else "",
                exchange_name=delivery.exchange,
                routing_key=delivery.routing_key,
                tracebacks=tracebacks,
                consumer=self.name,
                host=self.host,
                attempt=delivery.attempt,
                headers=delivery.headers,
            )
            self.send_report(report)
            reject = bool(errors) and self.reject_msg_at_first_callback_error
            if reject:
                message.reject(requeue=False)
            else:
                message.ack()
            return Outcome(report=report, acked=not reject, rejected=reject)
        finally:
            self.delivery = None

    def _decode(self, delivery: Delivery, record: Callable[[str, BaseException], None]):
        try:
            decoded = decode_payload(delivery.body, delivery.content_type)
        except PayloadDecodeError as exc:
            delivery.payload = DecodedPayload(format=exc.format, text=exc.text, data=None)
            record(DECODE_STEP, exc.cause)
            return None, False
        delivery.payload = decoded
        if self.payload_model is None:
            return decoded.data, True
        try:
            return self.payload_model.model_validate(decoded.data), True
        except ValidationError as exc:
            record(VALIDATE_STEP, exc)
            return decoded.data, False

    def _identifiers(self, payload: Any, shared: dict[str, Any], payload_ok: bool, record):
        try:
            found = self.get_message_object_identifiers(payload, shared) or {}
        except Exception as exc:
            if payload_ok:
                record(IDENTIFIERS_STEP, exc)
            else:  # already reported as undecodable/invalid; identifiers are best effort
                logger.debug("no identifiers for an invalid payload", exc_info=True)
            found = {}
        # What the method returns wins; what callbacks shared fills in the rest.
        merged = dict(found)
        for key, value in shared.items():
            merged.setdefault(key, value)
        return {k: v for k, v in merged.items() if v is not None}

    def send_report(self, report: dict[str, Any]) -> None:
        """Publish the report (confirmed). An unroutable/nacked report is logged, not raised."""
        if self.publisher is None:
            raise RuntimeError(f"{self.name} is not bound to a publisher (run it in a worker)")
        try:
            self.publisher.publish(
                encode_report(report),
                exchange=self.report_exchange,
                routing_key=self.report_routing_key,
                content_type="application/json",
                message_id=report["id"],
            )
        except PublishError:
            # The message itself was processed; re-processing it would repeat its side effects.
            logger.exception(
                "report %s for %s (hash=%s) was not accepted by the broker",
                report["id"],
                self.dashboard_message_type,
                report["kwargs"]["hash"],
            )


def pick_fields(message: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Copy `fields` from a dict or an object (pydantic model), skipping missing ones."""
    picked: dict[str, Any] = {}
    for name in fields:
        value = message.get(name) if isinstance(message, dict) else getattr(message, name, None)
        if value is not None:
            picked[name] = value
    return picked
