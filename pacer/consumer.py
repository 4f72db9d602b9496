"""`PACERConsumer`: the base class a facility team subclasses to write a PACER consumer.

A subclass names its message type and queue, defines `callback_func_*` methods and says which
identifiers describe a message. For each delivery the base class decodes the body, validates it
against `payload_model` (when set), runs the callbacks in order, collects their errors, sends a
transient failure round the delayed retry route, publishes one report to the dashboard (DESIGN §3)
and then acks or rejects the delivery. The report is published before the ack: if the process dies
in between, the message is redelivered and reported again (at-least-once, with `attempt` 2).

Two callback styles are supported side by side, told apart by each callback's signature:
`(message, shared_obj_identifiers)` (the decoded, validated message) and PACER's documented kombu
style `(body, message, errors=..., received_at=..., shared_obj_identifiers=...)`, where `message` is
the delivered kombu message. Consumers written for PACER's own base class run unchanged.
"""

from __future__ import annotations

import inspect
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
#: Callback and identifier styles (chosen per method from its signature).
PAYLOAD_STYLE = "payload"
KOMBU_STYLE = "kombu"
#: What `message.payload` may decode for kombu-style code: never pickle, YAML or msgpack.
SAFE_CONTENT_TYPES = frozenset({"application/json", "text/plain", "application/xml", "text/xml"})
#: How many times a message went round the retry route (PACER's header).
RETRIES_HEADER = "x-retries"
REPORT_ALL = "all"
REPORT_FIRST_AND_LAST = "first_and_last"

F = TypeVar("F", bound=Callable[..., Any])


class TransientError(Exception):
    """A failure worth retrying later (a lost ICAT session, a service temporarily unavailable).

    Raised from a callback (subclasses too), it sends the message round the delayed retry route
    instead of failing it for good; see `PACERConsumer.transient_exceptions` for exceptions of
    other libraries.
    """


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
    #: Times this message already went round the retry route (its `x-retries` header).
    retries: int = 0
    #: Scratch space callbacks of this delivery share (not reported, unlike identifiers).
    state: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_message(cls, message: Message, retry_queue: str | None = None) -> Delivery:
        """Read the parts of a kombu message a report needs (`retry_queue`: see `_attempt`)."""
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
            attempt=_attempt(headers, redelivered, retry_queue),
            retries=_retries(headers),
        )


def _retries(headers: dict[str, Any]) -> int:
    """The `x-retries` header as a non-negative int (0 when absent or not a number)."""
    try:
        return max(int(headers.get(RETRIES_HEADER) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _attempt(headers: dict[str, Any], redelivered: bool, retry_queue: str | None = None) -> int:
    """1 for a first delivery; retries, other dead-letter cycles and a redelivery add to it.

    The retry route's own `x-death` entries (queue `retry_queue`) are already counted by
    `x-retries`, so they are left out.
    """
    deaths = headers.get("x-death") or []
    cycles = sum(
        int(d.get("count", 1))
        for d in deaths
        if isinstance(d, dict) and (retry_queue is None or d.get("queue") != retry_queue)
    )
    return 1 + _retries(headers) + cycles + (1 if redelivered else 0)


@dataclass
class Outcome:
    """The result of handling one delivery (returned by `handle`, used by tests and hooks)."""

    report: dict[str, Any]
    acked: bool
    rejected: bool
    #: A copy went to the retry route (the delivery itself was acked).
    retried: bool = False
    #: The report was published (`report_attempts` may leave intermediate attempts out).
    reported: bool = True


class PACERConsumer:
    """Base class for PACER consumers. Subclass it; see pacer/README.md for a full example."""

    #: `message_type` of the reports (e.g. "dataset-ingestion"). Required: a class attribute or
    #: PACER's `super().__init__(dashboard_message_type=...)`.
    dashboard_message_type: str = ""
    #: Stop at the first failing callback and reject the delivery (no requeue: it dead-letters
    #: when the queue has a dead-letter exchange). The report is sent either way. A class
    #: attribute or, as PACER documents it, set on the instance in `__init__`.
    reject_msg_at_first_callback_error: bool = False
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
    #: Exceptions a callback may raise that are worth retrying later, besides `TransientError`
    #: and its subclasses (e.g. `(icat.ICATSessionError,)`); `is_transient_error` decides.
    transient_exceptions: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Retries of a transiently failed message (its `x-retries` header counts them), each after
    #: `retry_delay` seconds in the retry queue. 0 turns retrying off.
    max_retries: int = 10
    retry_delay: float = 60.0
    #: Which attempts are reported: "all", or "first_and_last" (the first attempt and the one
    #: that settles the message: success, a permanent failure, or the last retry).
    report_attempts: str = REPORT_ALL

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
        dashboard_message_type: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        report_attempts: str | None = None,
    ):
        # Instance overrides let one class serve several deployments (and isolated tests).
        if dashboard_message_type is not None:  # PACER: super().__init__(dashboard_message_type=…)
            self.dashboard_message_type = dashboard_message_type
        if max_retries is not None:
            self.max_retries = max_retries
        if retry_delay is not None:
            self.retry_delay = retry_delay
        if report_attempts is not None:
            self.report_attempts = report_attempts
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
        self._check_retry_settings()
        self.host = socket.gethostname()
        self.publisher: Publisher | None = None
        self.delivery: Delivery | None = None
        if getattr(self, "logger", None) is None:
            #: This consumer's logger (PACER: hand it to the tasks module, `Tasks(self.logger)`).
            self.logger = logging.getLogger(self.name)
        self._plan = self._callback_plan()
        self._identifiers_style, self._identifiers_take_shared = self._identifiers_signature()

    @property
    def max_msg_retries(self) -> int:
        """PACER's name for `max_retries`."""
        return self.max_retries

    @max_msg_retries.setter
    def max_msg_retries(self, value: int) -> None:
        self.max_retries = value

    def _check_retry_settings(self) -> None:
        name = type(self).__name__
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise TypeError(f"{name}.max_retries must be an int, not {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(f"{name}.max_retries must be 0 or more, not {self.max_retries}")
        if not isinstance(self.retry_delay, int | float) or not self.retry_delay > 0:
            raise ValueError(f"{name}.retry_delay must be a positive number of seconds")
        if self.report_attempts not in (REPORT_ALL, REPORT_FIRST_AND_LAST):
            raise ValueError(
                f"{name}.report_attempts must be {REPORT_ALL!r} or {REPORT_FIRST_AND_LAST!r}, "
                f"not {self.report_attempts!r}"
            )

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

    def _callback_plan(self) -> list[tuple[str, Callable[..., Any], str]]:
        """`(name, bound method, style)` in run order; a signature fitting neither style fails."""
        return [
            (name, bound, callback_style(name, bound))
            for name, bound in ((n, getattr(self, n)) for n, _ in self.callbacks())
        ]

    def _identifiers_signature(self) -> tuple[str, bool]:
        """How to call `get_message_object_identifiers`: its style, and whether it takes shared.

        PACER's documented method receives the delivered kombu message. It is recognised by a
        first parameter annotated `Message`, by taking the message alone, or by belonging to a
        consumer whose callbacks all use the kombu style. Otherwise (and for the default method)
        it receives the decoded message, like payload-style callbacks.
        """
        method = self.get_message_object_identifiers
        if getattr(method, "__func__", None) is PACERConsumer.get_message_object_identifiers:
            return PAYLOAD_STYLE, True
        signature = inspect.signature(method)
        takes_shared = _binds(signature, None, {})
        if not takes_shared and not _binds(signature, None):
            raise TypeError(
                f"{type(self).__name__}.get_message_object_identifiers must accept "
                "(message, shared_obj_identifiers) or (message)"
            )
        first = next(iter(signature.parameters.values()))
        styles = {style for _, _, style in self._plan}
        if (
            _is_kombu_message_annotation(first.annotation)
            or not takes_shared
            or styles == {KOMBU_STYLE}
        ):
            return KOMBU_STYLE, takes_shared
        return PAYLOAD_STYLE, True

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

    @property
    def retry_queue_name(self) -> str:
        """The queue (and fanout exchange) transient failures wait in: `<queue_name>.retry`."""
        return f"{self.queue_name}.retry"

    def retry_entities(self) -> tuple[Exchange, Queue]:
        """The retry route: a fanout exchange and a queue whose messages, after `retry_delay`,
        are dead-lettered back to this consumer's exchange with their own routing key."""
        exchange = Exchange(self.retry_queue_name, type="fanout", durable=True)
        queue = Queue(
            self.retry_queue_name,
            exchange=exchange,
            routing_key="",
            durable=True,
            queue_arguments={
                "x-message-ttl": max(int(round(self.retry_delay * 1000)), 1),
                "x-dead-letter-exchange": self.exchange_name or "",
            },
        )
        return exchange, queue

    def bind(self, publisher: Publisher) -> None:
        """Attach the publisher used for reports and for `publish` (done by the worker).

        Also hands `self.logger` to a tasks module (`self.tasks`) whose `logger` is still None,
        as PACER's base class does.
        """
        self.publisher = publisher
        tasks = getattr(self, "tasks", None)
        if tasks is not None and getattr(tasks, "logger", False) is None:
            tasks.logger = self.logger

    # hooks for subclasses -------------------------------------------------------------------
    def get_message_object_identifiers(
        self, message: Any, shared_obj_identifiers: dict[str, Any]
    ) -> dict[str, Any]:
        """Identifiers of this message for the report; by default `object_identifier_fields`."""
        return pick_fields(message, self.object_identifier_fields)

    def is_transient_error(self, exc: BaseException) -> bool:
        """Whether a callback's exception is worth retrying: a `TransientError` or one of
        `transient_exceptions`. Override to decide by message text or status code as well."""
        return isinstance(exc, TransientError) or isinstance(exc, tuple(self.transient_exceptions))

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
        delivery = Delivery.from_message(message, retry_queue=self.retry_queue_name)
        if message.accept is None:  # what `message.payload` may decode for kombu-style code
            message.accept = set(SAFE_CONTENT_TYPES)
        self.delivery = delivery
        errors: dict[str, str] = {}
        tracebacks: dict[str, str] = {}
        failures: dict[str, BaseException] = {}
        shared: dict[str, Any] = {}

        def record(step: str, exc: BaseException) -> None:
            errors[step] = format_exception(exc)
            tracebacks[step] = format_traceback(exc)
            logger.warning(
                "%s failed in %s on message hash=%s (attempt %s): %s",
                self.dashboard_message_type,
                step,
                delivery.hash,
                delivery.attempt,
                errors[step],
            )

        try:
            payload, payload_ok = self._decode(delivery, record)
            if payload_ok:
                self._run_callbacks(message, delivery, payload, errors, shared, failures, record)
            identifiers = self._identifiers(message, payload, shared, payload_ok, record)
            retried = self._retry(delivery, failures)
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
            # "first_and_last": the first attempt, and the one that settles the message.
            reported = self.report_attempts == REPORT_ALL or delivery.retries == 0 or not retried
            if reported:
                self.send_report(report)
            reject = bool(errors) and self.reject_msg_at_first_callback_error and not retried
            if reject:
                message.reject(requeue=False)
            else:
                message.ack()
            return Outcome(
                report=report,
                acked=not reject,
                rejected=reject,
                retried=retried,
                reported=reported,
            )
        finally:
            self.delivery = None

    def _run_callbacks(
        self,
        message: Message,
        delivery: Delivery,
        payload: Any,
        errors: dict[str, str],
        shared: dict[str, Any],
        failures: dict[str, BaseException],
        record: Callable[[str, BaseException], None],
    ) -> None:
        received_at = delivery.started_at.isoformat()
        body: Any = None
        body_ready = False
        for name, func, style in self._plan:
            try:
                if style == KOMBU_STYLE:
                    if not body_ready:
                        body, body_ready = self._kombu_body(message, delivery), True
                    # PACER's call: `errors` is the live dict of the errors so far.
                    func(
                        body,
                        message,
                        errors=errors,
                        received_at=received_at,
                        shared_obj_identifiers=shared,
                    )
                else:
                    func(payload, shared)
            except Exception as exc:  # reported, that is the point of PACER
                record(name, exc)
                failures[name] = exc
                if self.reject_msg_at_first_callback_error:
                    break

    @staticmethod
    def _kombu_body(message: Message, delivery: Delivery) -> Any:
        """The body kombu hands its callbacks: JSON decoded, other accepted types as text."""
        try:
            return message.decode()
        except Exception:  # a content type kombu refuses (pickle…): the text, never unpickled
            return delivery.payload.text if delivery.payload else delivery.body

    def _retry(self, delivery: Delivery, failures: dict[str, BaseException]) -> bool:
        """Send a copy round the retry route when a failure is transient and retries remain."""
        transient = [name for name, exc in failures.items() if self.is_transient_error(exc)]
        if not transient:
            return False
        if delivery.retries >= self.max_retries:
            self.logger.error(
                "%s hash=%s: giving up after %d retries (%s failed transiently)",
                self.dashboard_message_type,
                delivery.hash,
                delivery.retries,
                ", ".join(transient),
            )
            return False
        if delivery.exchange != (self.exchange_name or "") or (
            not self.exchange_name and delivery.routing_key != self.queue_name
        ):
            # Dead-lettered to our exchange, it would not come back to this queue.
            self.logger.error(
                "%s hash=%s: not retried, it arrived through exchange %r, not %r",
                self.dashboard_message_type,
                delivery.hash,
                delivery.exchange,
                self.exchange_name,
            )
            return False
        try:
            self.send_to_retry(delivery)
        except Exception:  # the message is then settled as a permanent failure, and reported
            self.logger.exception(
                "%s hash=%s: could not send it to retry queue %s",
                self.dashboard_message_type,
                delivery.hash,
                self.retry_queue_name,
            )
            return False
        self.logger.info(
            "%s hash=%s: retry %d of %d in %s s (%s failed transiently)",
            self.dashboard_message_type,
            delivery.hash,
            delivery.retries + 1,
            self.max_retries,
            self.retry_delay,
            ", ".join(transient),
        )
        return True

    def send_to_retry(self, delivery: Delivery) -> None:
        """Declare the retry route and publish a copy there (confirmed), `x-retries` + 1."""
        if self.publisher is None:
            raise RuntimeError(f"{self.name} is not bound to a publisher (run it in a worker)")
        exchange, queue = self.retry_entities()
        self.publisher.declare(queue)  # idempotent: also declares the exchange and the binding
        self.publisher.publish(
            delivery.body,
            exchange=exchange,
            routing_key=delivery.routing_key,  # kept, and used again when dead-lettered back
            headers={**delivery.headers, RETRIES_HEADER: delivery.retries + 1},
            content_type=delivery.content_type,
        )

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

    def _identifiers(
        self, message: Message, payload: Any, shared: dict[str, Any], payload_ok: bool, record
    ):
        try:
            if self._identifiers_style == PAYLOAD_STYLE:
                found = self.get_message_object_identifiers(payload, shared)
            elif self._identifiers_take_shared:
                found = self.get_message_object_identifiers(message, shared)
            else:
                found = self.get_message_object_identifiers(message)
            found = found or {}
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


def _binds(signature: inspect.Signature, *args: Any, **kwargs: Any) -> bool:
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def callback_style(name: str, func: Callable[..., Any]) -> str:
    """`"kombu"` when the bound callback accepts PACER's kombu call `(body, message, errors=…,
    received_at=…, shared_obj_identifiers=…)`, `"payload"` when it takes `(message, shared)`."""
    signature = inspect.signature(func)
    if _binds(signature, None, None, errors={}, received_at="", shared_obj_identifiers={}):
        return KOMBU_STYLE
    if _binds(signature, None, {}):
        return PAYLOAD_STYLE
    raise TypeError(
        f"callback {name}{signature} must take (message, shared_obj_identifiers) or kombu's "
        "(body, message, *args, **kwargs)"
    )


def _is_kombu_message_annotation(annotation: Any) -> bool:
    if annotation is Message:
        return True
    return isinstance(annotation, str) and annotation.rsplit(".", 1)[-1] == "Message"
