"""The report consumer: a Kombu ConsumerStep inside the Celery worker (DESIGN §5).

Callbacks run in the worker's consumer thread and only buffer the raw delivery. A batch is handed
on when it holds INGEST_BATCH_SIZE reports or INGEST_FLUSH_MS after its first report: a parser
thread parses it and builds its COPY rows (`writer.prepare_batch`, pure Python), a writer thread
stores it with `writer.write_prepared` in one transaction, and the consumer thread acks every
delivery of the batch only after that commit. Parsing the next batch overlaps the database's work
on the current one. When PostgreSQL is unreachable nothing is acked: the batches are retried in
order with exponential backoff and RabbitMQ keeps everything beyond the prefetch window.
"""

from __future__ import annotations

import collections
import gc
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import amqp
import psycopg2
from celery import bootsteps, signals
from kombu import Consumer, Exchange, Queue

from webapp.health import batch_histogram, heartbeats
from webapp.ingest import amqp_reads
from webapp.ingest.writer import ParseOptions, RawReport, prepare_batch, write_prepared

logger = logging.getLogger("pacer_dashboard.ingest")

BACKOFF_MAX_SECONDS = 30.0
#: Batches between hand-off and ack: one being parsed, one prepared and waiting, one being written.
MAX_IN_FLIGHT = 3


#: Allocations between two young-generation collections in the worker (Python's default: 700).
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for the ingesting worker.

    Each report allocates a few hundred containers (decoded JSON, kombu messages, rows) that live
    until their batch is acked, so with the default thresholds young collections ran every 700
    allocations and kept promoting them, and the older generations' collections walked the whole
    imported application again and again. Freezing what exists after start-up (the application,
    never garbage) takes it out of every collection, and a larger first threshold lets a batch's
    objects die before anyone looks at them: the worker's CPU per report fell by ~15 % (bench/
    README.md, "Ingestion near the machine's limit"). Reports create no reference cycles to speak
    of; the collector still runs, only less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def report_queue(settings) -> Queue:
    """The durable report queue bound to the direct dashboard exchange."""
    exchange = Exchange(settings.DASHBOARD_EXCHANGE, type="direct", durable=True)
    return Queue(
        settings.DASHBOARD_QUEUE,
        exchange=exchange,
        routing_key=settings.DASHBOARD_ROUTING_KEY,
        durable=True,
    )


class RawConsumer(Consumer):
    """A kombu Consumer that hands py-amqp's own Message to `on_message`.

    kombu wraps every delivery in its `Message` (a dozen attributes copied, a state machine, a
    decode step) before the callback; the ingestor needs only the body, three properties and a
    `multiple` ack of the last delivery of a batch, so that wrapper is per-report work for
    nothing (`_raw_report` and `_ack_through` read py-amqp's message the way kombu's would).
    A delivery kombu would change (a `compression` header: kombu decompresses the body) or
    another transport's message still goes through kombu's path.
    """

    def _receive_callback(self, message):
        if message.__class__ is amqp.Message and "compression" not in (
            message.properties.get("application_headers") or ()
        ):
            return self.on_message(message)
        return super()._receive_callback(message)


def _raw_report(message) -> RawReport:
    """What a delivery (py-amqp's Message, or kombu's) says about the report."""
    if message.__class__ is amqp.Message:
        properties = message.properties
        body = message.body
        return RawReport(
            body=body if isinstance(body, bytes) else str(body).encode(),
            content_type=properties.get("content_type"),
            headers=dict(properties.get("application_headers") or {}),
            routing_key=message.delivery_info.get("routing_key"),
        )
    return RawReport(
        body=message.body if isinstance(message.body, bytes) else str(message.body).encode(),
        content_type=message.content_type,
        headers=dict(message.headers or {}),
        routing_key=message.delivery_info.get("routing_key"),
    )


def _ack_through(message) -> None:
    """Ack `message` and every delivery before it on its channel (one `multiple` ack)."""
    if message.__class__ is amqp.Message:
        message.channel.basic_ack(message.delivery_tag, multiple=True)
    else:
        message.ack(multiple=True)


class ReportIngestor:
    """Buffering, batching and acking, independent of Celery so tests can drive it directly.

    The consumer thread (kombu callbacks and the hub timer) buffers deliveries and hands full
    batches to a parser thread and then one writer thread, which commits them while the consumer
    keeps receiving and the parser prepares the next batch: database time overlaps network and
    parsing time. Results come back in order and are acked from the consumer thread (AMQP
    channels are not thread-safe) with one `multiple` ack per batch. If a batch fails, it and every later batch are retried in order after a
    backoff, and nothing after a failed batch is acked before that batch is stored.
    """

    def __init__(self, settings, connect: Callable[[], psycopg2.extensions.connection]):
        self.settings = settings
        self.connect = connect
        self.options = ParseOptions(
            task_name=settings.REPORT_TASK_NAME,
            timezone=settings.timezone,
            max_bytes=settings.REPORT_MAX_BYTES,
        )
        self.batch_size = settings.INGEST_BATCH_SIZE
        self.flush_seconds = settings.INGEST_FLUSH_MS / 1000
        self.pending: list = []  # kombu Messages not yet handed to the writer
        self.first_pending_at: float | None = None
        self.retry: list[list] = []  # batches to write again, in delivery order
        self.in_flight = 0
        self.failures = 0
        self.retry_at = 0.0
        self.totals = {"stored": 0, "duplicates": 0, "quarantined": 0, "batches": 0}
        #: Arrival time (monotonic) of every delivery not acked yet, in delivery order: pending,
        #: in flight and retry alike. Read by the heartbeat thread (`held`).
        self.held_since: dict[int, float] = {}
        self.last_batch: dict | None = None
        #: Called in the consumer thread after each committed batch (the heartbeat's poke).
        self.on_batch: Callable[[], None] | None = None
        self.conn = None
        self._parse_jobs: queue.Queue = queue.Queue()
        self._jobs: queue.Queue = queue.Queue()
        #: Written batches, appended by the writer thread and popped by the consumer thread only
        #: (a deque: `collect` runs for every delivery, and an empty queue.Queue answered each
        #: look with a lock and a raised Empty).
        self._done: collections.deque = collections.deque()
        self._thread: threading.Thread | None = None
        self._parser: threading.Thread | None = None

    # consumer thread ----------------------------------------------------------------------------
    def on_message(self, message) -> None:
        self.held_since[id(message)] = time.monotonic()
        if not self.pending:
            self.first_pending_at = time.monotonic()
        self.pending.append(message)
        self.collect()
        if len(self.pending) >= self.batch_size:
            self.dispatch()
        elif time.monotonic() - (self.first_pending_at or 0) >= self.flush_seconds:
            # Deliveries flush an overdue partial batch themselves, so flushing never depends
            # on the timer alone (the timer runs only once the worker's event loop runs).
            self.dispatch(partial=True)

    def tick(self) -> None:
        """Timer callback: ack finished batches, retry after backoff, flush partial batches."""
        self.collect()
        if self.retry and self.in_flight == 0 and time.monotonic() >= self.retry_at:
            batches, self.retry = self.retry, []
            for batch in batches:
                self._submit(batch)
        if self.pending and time.monotonic() - (self.first_pending_at or 0) >= self.flush_seconds:
            self.dispatch(partial=True)
        elif len(self.pending) >= self.batch_size:
            # Full batches waiting for a writer slot that collect() just freed: with the prefetch
            # window full no delivery arrives to trigger dispatch, only this timer.
            self.dispatch()

    def dispatch(self, partial: bool = False) -> None:
        """Hand buffered deliveries on (at most MAX_IN_FLIGHT batches parsed or written at once:
        one being written, one prepared and waiting, one being parsed)."""
        while self.pending and not self.retry and self.in_flight < MAX_IN_FLIGHT:
            if len(self.pending) < self.batch_size and not partial:
                return
            batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
            self.first_pending_at = time.monotonic() if self.pending else None
            self._submit(batch)

    def collect(self) -> None:
        """Ack the batches the writer committed; schedule retries for the ones it could not."""
        done = self._done
        while done:
            batch, result, error = done.popleft()
            self.in_flight -= 1
            if error is not None or self.retry:
                # Failed, or committed after a failed batch: write again (dedupe makes that safe).
                if error is not None:
                    self._failed(batch, error)
                self.retry.append(batch)
                continue
            self._ack(batch)
            self._record(result)

    def _submit(self, batch: list) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._writer_loop, name="report-writer", daemon=True
            )
            self._thread.start()
        if self._parser is None or not self._parser.is_alive():
            self._parser = threading.Thread(
                target=self._parser_loop, name="report-parser", daemon=True
            )
            self._parser.start()
        self.in_flight += 1
        self._parse_jobs.put(batch)

    def _ack(self, batch: list) -> None:
        for message in batch:
            self.held_since.pop(id(message), None)
        try:
            _ack_through(batch[-1])
        except Exception:  # noqa: BLE001 - channel gone: the broker redelivers, receipts dedupe
            logger.warning("ack failed after commit; the batch will be redelivered and deduped")
        if self.failures:
            logger.warning("database is back; ingestion resumed after %d failures", self.failures)
        self.failures, self.retry_at = 0, 0.0

    def _failed(self, batch: list, error: BaseException) -> None:
        self.failures += 1
        delay = min(BACKOFF_MAX_SECONDS, 0.5 * 2 ** min(self.failures, 10))
        self.retry_at = time.monotonic() + delay
        if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
            text = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            logger.error(
                "database unavailable (%s); %d reports held unacked, retry in %.1f s",
                text,
                len(batch),
                delay,
            )
        else:
            logger.error(
                "batch write failed (%s: %s); %d reports held unacked, retry in %.1f s",
                type(error).__name__,
                error,
                len(batch),
                delay,
            )

    def _record(self, result) -> None:
        for key in ("stored", "duplicates", "quarantined"):
            self.totals[key] += getattr(result, key)
        self.totals["batches"] += 1
        self.last_batch = {
            "at": datetime.now(UTC).isoformat(),
            "size": result.stored + result.duplicates + result.quarantined,
            "seconds": round(result.seconds, 3),
        }
        batch_histogram.observe(result.seconds)
        if self.on_batch is not None:
            self.on_batch()
        logger.info(
            "batch: %d stored, %d duplicates, %d quarantined in %.0f ms",
            result.stored,
            result.duplicates,
            result.quarantined,
            result.seconds * 1000,
        )

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for the writer, ack what it committed, forget the rest (the channel is going
        away: unacked deliveries are redelivered and deduped)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.collect()
            time.sleep(0.02)
        self.collect()
        if self.pending or self.retry or self.in_flight:
            logger.info(
                "leaving %d unacked deliveries to redelivery",
                len(self.pending) + sum(map(len, self.retry)),
            )
        self.pending, self.retry, self.first_pending_at = [], [], None
        self.held_since.clear()

    # any thread ---------------------------------------------------------------------------------
    def held(self) -> dict:
        """Deliveries received and not acked yet, and how long the oldest has waited. Read from
        the heartbeat thread: when the consumer thread is stuck is exactly when this matters."""
        for _ in range(5):
            try:  # the consumer thread may change the dict meanwhile: read again
                held = len(self.held_since)
                oldest = next(iter(self.held_since.values()), None)
                break
            except RuntimeError:
                continue
        else:
            held, oldest = len(self.held_since), None
        pending = len(self.pending)
        retry = sum(len(batch) for batch in list(self.retry))
        return {
            "held_unacked": held,
            "held_pending": pending,
            "held_retry": retry,
            "held_in_flight": max(0, held - pending - retry),
            "oldest_held_seconds": (
                round(time.monotonic() - oldest, 1) if held and oldest is not None else None
            ),
            "write_failures": self.failures,
        }

    # parser thread ------------------------------------------------------------------------------
    def _parser_loop(self) -> None:
        while True:
            batch = self._parse_jobs.get()
            if batch is None:
                self._jobs.put(None)
                return
            try:
                prepared = self.prepare(batch)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer thread
                self._jobs.put((batch, None, exc))
            else:
                self._jobs.put((batch, prepared, None))

    def prepare(self, batch: list):
        return prepare_batch([_raw_report(m) for m in batch], self.options)

    # writer thread ------------------------------------------------------------------------------
    def _writer_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch, prepared, error = job
            if error is not None:
                self._done.append((batch, None, error))
                continue
            try:
                result = self.write(prepared)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer thread
                self._close()
                self._done.append((batch, None, exc))
            else:
                self._done.append((batch, result, None))

    def write(self, prepared):
        if self.conn is None or self.conn.closed:
            self.conn = self.connect()
        return write_prepared(self.conn, prepared, self.options)

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None

    def close(self) -> None:
        if self._parser is not None and self._parser.is_alive():
            self._parse_jobs.put(None)  # the parser passes the stop on to the writer
            self._parser.join(30)
        elif self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(30)
        self._close()


class ReportConsumerStep(bootsteps.ConsumerStep):
    """Consumes the report queue in the worker (`celery -A wsgi.celery_app worker`).

    Disabled with `--without-reports` (e.g. for a worker that should run only tasks).

    It starts after the Tasks step, hence after Mingle: a consumer started before Mingle lets
    every report that arrives wake Mingle's reply-collecting loop before its one-second quiet
    timeout, so with a steady trickle of reports start-up never completes (and the event loop,
    which runs the flush timer, never starts). Without `requires` the order among the consumer
    steps followed the process's hash seed.

    It also starts the worker's heartbeat (row `worker:<node>`, webapp/health/heartbeats.py): a
    daemon thread, independent of the event loop, that writes every few seconds what this worker
    holds unacked, its last batch and whether it reached 'ready', from the moment the worker is
    built (also with `--without-reports`) until it stops, when the row is removed.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, without_reports: bool = False, **kwargs):
        self.enabled = not without_reports
        if self.enabled:
            # One recv per 64 KB instead of three per AMQP frame (webapp/ingest/amqp_reads.py).
            amqp_reads.install()
            tune_gc()
        self.flask_app = parent.app.flask_app
        self.ingestor: ReportIngestor | None = None
        self.timer_entry = None
        self.consuming = False
        super().__init__(parent, **kwargs)
        self._start_heartbeat(parent)

    def get_consumers(self, channel):
        settings = self.flask_app.extensions["settings"]
        if self.ingestor is None:
            self.ingestor = ReportIngestor(settings, lambda: _connect(settings))
            self.ingestor.on_batch = self.heartbeat.poke
        prefetch = settings.ingest_prefetch
        consumer = RawConsumer(
            channel,
            queues=[report_queue(settings)],
            on_message=self.ingestor.on_message,
            accept=None,
            no_ack=False,
            prefetch_count=prefetch,
            auto_declare=True,
        )
        logger.info(
            "consuming reports from %s (batch %d, flush %d ms, prefetch %d)",
            settings.DASHBOARD_QUEUE,
            settings.INGEST_BATCH_SIZE,
            settings.INGEST_FLUSH_MS,
            prefetch,
        )
        return [consumer]

    def start(self, c):
        super().start(c)
        self.consuming = True
        if self.ingestor is not None and self.timer_entry is None:
            # Short: with the prefetch window full, acks (which let the broker send more) and
            # hand-offs happen only on this timer, so its period is dead time per batch.
            interval = max(0.005, min(self.ingestor.flush_seconds / 4, 0.01))
            self.timer_entry = c.timer.call_repeatedly(interval, self._tick)

    def _tick(self):
        try:
            if self.ingestor is not None:
                self.ingestor.tick()
        except Exception:  # noqa: BLE001 - never kill the timer
            logger.exception("report flush failed")

    def stop(self, c):
        # Connection lost or worker stopping: ack what the writer committed, forget the rest.
        self.consuming = False
        if self.ingestor is not None:
            try:
                self.ingestor.drain()
            except Exception:  # noqa: BLE001
                logger.exception("draining the report writer failed")
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        super().stop(c)

    def shutdown(self, c):
        self.stop(c)
        if self.ingestor is not None:
            self.ingestor.close()
        super().shutdown(c)
        self._stop_heartbeat()

    # heartbeat ----------------------------------------------------------------------------------
    def _start_heartbeat(self, parent) -> None:
        settings = self.flask_app.extensions["settings"]
        self.parent_consumer = parent
        self.node = parent.hostname
        self.up_since = datetime.now(UTC)
        self.ready_at: datetime | None = None
        store = heartbeats.HeartbeatStore(
            lambda: heartbeats.connect(settings, "pacer-dashboard-heartbeat")
        )
        self.heartbeat = heartbeats.HeartbeatThread(
            heartbeats.WORKER_PREFIX + self.node, self.heartbeat_detail, store
        )
        signals.worker_ready.connect(self._on_worker_ready, weak=False)
        signals.worker_shutdown.connect(self._on_worker_shutdown, weak=False)
        self.heartbeat.start()

    def _on_worker_ready(self, sender=None, **kwargs) -> None:
        if sender is self.parent_consumer:
            self.ready_at = datetime.now(UTC)
            self.heartbeat.poke()

    def _on_worker_shutdown(self, sender=None, **kwargs) -> None:
        if getattr(sender, "hostname", None) == self.node:
            self._stop_heartbeat()

    def _stop_heartbeat(self) -> None:
        """The worker stops on purpose: stop writing and remove the row (it is not missing)."""
        signals.worker_ready.disconnect(self._on_worker_ready)
        signals.worker_shutdown.disconnect(self._on_worker_shutdown)
        if self.heartbeat.is_alive():
            self.heartbeat.stop(delete=True)

    def heartbeat_detail(self) -> dict:
        """What the worker's heartbeat row says (webapp/health/queries.py reads it)."""
        settings = self.flask_app.extensions["settings"]
        ingestor = self.ingestor
        last = ingestor.last_batch if ingestor is not None else None
        return {
            "node": self.node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.ready_at is not None,
            "ready_at": self.ready_at.isoformat() if self.ready_at else None,
            "up_since": self.up_since.isoformat(),
            "up_seconds": round((datetime.now(UTC) - self.up_since).total_seconds(), 1),
            "consuming_reports": self.consuming,
            "reports_enabled": self.enabled,
            "report_queue": settings.DASHBOARD_QUEUE,
            "task_queue": settings.CELERY_QUEUE,
            "interval_seconds": self.heartbeat.interval,
            **(
                ingestor.held()
                if ingestor is not None
                else {"held_unacked": 0, "oldest_held_seconds": None}
            ),
            "last_batch_at": last["at"] if last else None,
            "last_batch_size": last["size"] if last else None,
            "last_batch_seconds": last["seconds"] if last else None,
            "totals": dict(ingestor.totals) if ingestor is not None else {},
            # /metrics' pacer_dashboard_ingest_batch_duration_seconds (webapp/health/prom.py).
            batch_histogram.KEY: batch_histogram.snapshot(),
        }


def _connect(settings):
    conn = psycopg2.connect(
        host=settings.POSTGRES_HOST,
        port=settings.POSTGRES_PORT,
        dbname=settings.POSTGRES_DB,
        user=settings.POSTGRES_USER,
        password=settings.POSTGRES_PASSWORD or None,
        application_name="pacer-dashboard-ingest",
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=30,
    )
    conn.autocommit = False
    return conn
