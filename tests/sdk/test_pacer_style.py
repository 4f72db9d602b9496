"""Consumers written for PACER's documented base class, run unchanged on `pacer/` against a real
RabbitMQ: constructor kwargs, instance attributes, kombu-style callbacks, shared identifiers, the
tasks module's logger, and the delayed retry route for transient failures."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from kombu import Exchange, Queue
from kombu.message import Message

from pacer import RETRIES_HEADER, PACERConsumer, TransientError, callback_order
from pacer.consumer import KOMBU_STYLE, PAYLOAD_STYLE, callback_style
from tests.sdk.pacer_style import tasks
from tests.sdk.pacer_style.consumers import DatasetsConsumer, InternalStatisticsConsumer
from tests.sdk.pacer_style.tasks import ICATSessionError

ROUTING_KEY = "dataset.ingest"
DATASET = {"instrument": "bl13", "investigation": "2022097034", "dataset": "mx_01"}
RETRY_DELAY = 0.4


def pacer_consumer(cls, names, report_sink, dead_letters=None, **kwargs):
    """`cls` built the way PACER's consumers are (everything through **kwargs), on private
    names; its retry route is deleted with them."""
    consumer = cls(
        queue_name=names.queue(cls.__name__.lower()),
        exchange_name=names.exchange("pacer-input"),
        routing_key=ROUTING_KEY,
        report_exchange=report_sink.exchange,
        report_routing_key=report_sink.routing_key,
        **kwargs,
    )
    names.queues.append(consumer.retry_queue_name)
    names.exchanges.append(consumer.retry_queue_name)
    if dead_letters is not None:
        consumer.queue_arguments = dead_letters[0]
    return consumer


@pytest.fixture
def dead_letters(names, connection):
    """(queue arguments, SimpleQueue): where a consumer's rejected messages end up."""
    dlx = names.exchange("dlx")
    dlq = Queue(names.queue("dlq"), Exchange(dlx, type="fanout", durable=False), durable=False)
    simple = connection.SimpleQueue(dlq)
    yield {"x-dead-letter-exchange": dlx}, simple
    simple.close()


@pytest.fixture(autouse=True)
def _empty_journal():
    tasks.JOURNAL.clear()
    yield
    tasks.JOURNAL.clear()


def send(publisher, consumer, body, **kwargs):
    return publisher.publish(
        body, exchange=consumer.exchange_name, routing_key=ROUTING_KEY, **kwargs
    )


def steps() -> list[str]:
    return [step for step, _ in tasks.JOURNAL]


def assert_no_dead_letter(dead_letters, timeout=0.5):
    with pytest.raises(dead_letters[1].Empty):
        dead_letters[1].get(timeout=timeout)


# The documented consumer ------------------------------------------------------------------------


def test_documented_constructor_attributes_and_tasks_logger(names, report_sink):
    consumer = pacer_consumer(DatasetsConsumer, names, report_sink)
    assert consumer.dashboard_message_type == "dataset-ingestion"
    assert consumer.reject_msg_at_first_callback_error is True
    assert DatasetsConsumer.reject_msg_at_first_callback_error is False  # set on the instance
    assert consumer.logger.name == "tests.sdk.pacer_style.consumers.DatasetsConsumer"
    assert consumer.tasks.logger is consumer.logger
    assert consumer.max_retries == consumer.max_msg_retries == 10  # PACER's default and name
    assert [style for _, _, style in consumer._plan] == [KOMBU_STYLE] * 3
    assert consumer._identifiers_style == KOMBU_STYLE


def test_documented_consumer_runs_unchanged(
    names, report_sink, publisher, run_worker, dead_letters, caplog
):
    consumer = pacer_consumer(DatasetsConsumer, names, report_sink, dead_letters)
    run_worker([consumer])
    caplog.set_level("INFO", logger=consumer.logger.name)
    send(publisher, consumer, DATASET)
    (report,) = report_sink.get(1)

    kwargs = report["kwargs"]
    assert kwargs["message_type"] == "dataset-ingestion"
    assert kwargs["errored"] is False and kwargs["error_message"] == {}
    # From the kombu message (payload), merged with what the tasks shared.
    assert kwargs["object_identifiers"] == {**DATASET, "dataset_id": 4711}
    assert kwargs["attempt"] == 1 and report["retries"] == 0

    # No @callback_order: name order. Each task got PACER's keyword arguments.
    assert steps() == ["check_files", "create_base_dataset_icat", "create_dataset_gallery"]
    for _, seen in tasks.JOURNAL[:2]:
        assert seen["dataset"] == DATASET  # message.payload: kombu decoded the JSON
        assert set(seen["kwargs"]) == {"errors", "received_at", "shared_obj_identifiers"}
        assert seen["logger"] == consumer.logger.name
    gallery = tasks.JOURNAL[2][1]
    assert gallery["dataset"] == DATASET  # `body`: what kombu hands its callbacks
    assert isinstance(gallery["kwargs"]["message"], Message)
    assert gallery["kwargs"]["message"].delivery_info["routing_key"] == ROUTING_KEY
    assert gallery["kwargs"]["errors"] == {}
    assert gallery["kwargs"]["shared_obj_identifiers"] == {"dataset_id": 4711}
    received_at = datetime.fromisoformat(gallery["kwargs"]["received_at"])
    assert received_at == datetime.fromisoformat(kwargs["processing_start"])
    # The consumer's and the tasks module's log lines go through self.logger.
    logged = [r.getMessage() for r in caplog.records if r.name == consumer.logger.name]
    assert any(m.startswith("callback_func_check_files > Processing message") for m in logged)
    assert "Creating dataset mx_01, inv=2022097034, instr=bl13" in logged
    assert_no_dead_letter(dead_letters)  # acked


def test_first_error_skips_the_rest_reports_and_rejects(
    names, report_sink, publisher, run_worker, dead_letters
):
    consumer = pacer_consumer(DatasetsConsumer, names, report_sink, dead_letters)
    run_worker([consumer])
    body = {**DATASET, "investigation": "0000", "missing_file": "/data/bl13/mx_01/master.h5"}
    send(publisher, consumer, body)
    (report,) = report_sink.get(1)

    assert steps() == ["check_files"]
    kwargs = report["kwargs"]
    assert kwargs["errored"] is True
    assert kwargs["error_message"] == {
        "callback_func_check_files": (
            "FileNotFoundError: [Errno 2] No such file or directory: '/data/bl13/mx_01/master.h5'"
        )
    }
    assert set(kwargs["traceback"]) == {"callback_func_check_files"}
    assert kwargs["object_identifiers"] == {**DATASET, "investigation": "0000"}
    dead = dead_letters[1].get(timeout=5)
    assert json.loads(dead.body) == body
    dead.ack()
    report_sink.assert_silent(RETRY_DELAY * 2)  # not transient: no retry


def test_without_reject_every_callback_runs_and_sees_the_errors_so_far(
    names, report_sink, publisher, run_worker, dead_letters
):
    consumer = pacer_consumer(DatasetsConsumer, names, report_sink, dead_letters)
    consumer.reject_msg_at_first_callback_error = False
    run_worker([consumer])
    send(publisher, consumer, {**DATASET, "investigation": "0000", "missing_file": "/x"})
    (report,) = report_sink.get(1)

    errors = {
        "callback_func_check_files": "FileNotFoundError: [Errno 2] No such file or directory: '/x'",
        "callback_func_main_dataset_creation": (
            "InvestigationNotFound: Investigation 0000 not found in ICAT"
        ),
    }
    assert steps() == ["check_files", "create_base_dataset_icat", "create_dataset_gallery"]
    assert tasks.JOURNAL[2][1]["kwargs"]["errors"] == errors  # PACER's live errors dict
    assert report["kwargs"]["error_message"] == errors
    assert list(report["kwargs"]["error_message"]) == list(errors)  # in callback order
    assert_no_dead_letter(dead_letters)  # acked


def test_callback_order_and_identifiers_from_the_message_alone(
    names, report_sink, publisher, run_worker
):
    consumer = pacer_consumer(InternalStatisticsConsumer, names, report_sink)
    assert consumer.tasks.logger is consumer.logger
    run_worker([consumer])
    send(publisher, consumer, {"dataset": "mx_01"}, headers={"dataset_id": 4711})
    (report,) = report_sink.get(1)

    assert steps() == ["count_files", "volume"]  # @callback_order, not the names
    kwargs = report["kwargs"]
    # get_message_object_identifiers(self, message): headers of the kombu message + shared.
    assert kwargs["object_identifiers"] == {"dataset": "mx_01", "dataset_id": 4711, "file_count": 2}
    assert kwargs["error_message"] == {
        "callback_func_a_volume": "ValueError: no volume for dataset 4711"
    }


class Mixed(PACERConsumer):
    """Both callback styles in one consumer; identifiers stay payload style."""

    dashboard_message_type = "test-mixed"
    seen: list = []

    @callback_order(1)
    def callback_func_modern(self, message, shared):
        type(self).seen.append(("modern", message))
        shared["visit_id"] = f"{message['investigation']}-1"

    @callback_order(2)
    def callback_func_pacer(self, body, message, *args, **kwargs):
        type(self).seen.append(("pacer", body, kwargs["shared_obj_identifiers"]["visit_id"]))

    def get_message_object_identifiers(self, message, shared_obj_identifiers):
        return {"investigation": message["investigation"]}


def test_both_callback_styles_in_one_consumer(names, report_sink, publisher, run_worker):
    Mixed.seen = []
    consumer = pacer_consumer(Mixed, names, report_sink)
    assert [s for _, _, s in consumer._plan] == [PAYLOAD_STYLE, KOMBU_STYLE]
    assert consumer._identifiers_style == PAYLOAD_STYLE
    run_worker([consumer])
    send(publisher, consumer, {"investigation": "2022097034"})
    (report,) = report_sink.get(1)
    assert Mixed.seen == [
        ("modern", {"investigation": "2022097034"}),
        ("pacer", {"investigation": "2022097034"}, "2022097034-1"),
    ]
    assert report["kwargs"]["object_identifiers"] == {
        "investigation": "2022097034",
        "visit_id": "2022097034-1",
    }


class RecordsBody(PACERConsumer):
    dashboard_message_type = "test-body"
    bodies: list = []

    def callback_func_keep(self, _body, message, *args, **kwargs):
        type(self).bodies.append((_body, message.content_type))


def test_kombu_body_follows_the_content_type_and_never_unpickles(
    names, report_sink, publisher, run_worker
):
    RecordsBody.bodies = []
    consumer = pacer_consumer(RecordsBody, names, report_sink)
    run_worker([consumer])
    send(publisher, consumer, '{"a": 1}', content_type="application/json")
    send(publisher, consumer, '{"a": 1}', content_type="text/plain")
    send(publisher, consumer, "<A><B>1</B></A>", content_type="application/xml")
    send(
        publisher,
        consumer,
        "cos\nsystem\n(S'id'\ntR.",
        content_type="application/x-python-serialize",
    )
    report_sink.get(4)
    assert RecordsBody.bodies == [
        ({"a": 1}, "application/json"),
        ('{"a": 1}', "text/plain"),
        ("<A><B>1</B></A>", "application/xml"),
        ("cos\nsystem\n(S'id'\ntR.", "application/x-python-serialize"),  # text, not unpickled
    ]


# Signatures -------------------------------------------------------------------------------------


class Shapes:
    def payload(self, message, shared): ...

    def payload_named(self, message, shared_obj_identifiers): ...

    def kombu(self, _body, message, *args, **kwargs): ...

    def kombu_named(
        self, body, message, errors=None, received_at="", shared_obj_identifiers=None
    ): ...

    def kombu_kwargs_only(self, body, message, **kwargs): ...

    def neither(self, message): ...


@pytest.mark.parametrize(
    ("method", "style"),
    [
        ("payload", PAYLOAD_STYLE),
        ("payload_named", PAYLOAD_STYLE),
        ("kombu", KOMBU_STYLE),
        ("kombu_named", KOMBU_STYLE),
        ("kombu_kwargs_only", KOMBU_STYLE),
    ],
)
def test_callback_style_from_the_signature(method, style):
    assert callback_style(method, getattr(Shapes(), method)) == style


def test_a_callback_fitting_neither_style_fails_at_construction():
    class Broken(PACERConsumer):
        dashboard_message_type = "test-broken"
        queue_name = "never-declared"

        def callback_func_one(self, message): ...

    with pytest.raises(TypeError, match=r"callback_func_one\(message\) must take"):
        Broken()


def test_settings_are_checked():
    class Plain(PACERConsumer):
        dashboard_message_type = "test-settings"
        queue_name = "never-declared"

    with pytest.raises(ValueError, match="report_attempts"):
        Plain(report_attempts="some")
    with pytest.raises(ValueError, match="max_retries"):
        Plain(max_retries=-1)
    with pytest.raises(ValueError, match="retry_delay"):
        Plain(retry_delay=0)
    consumer = Plain(max_retries=3, retry_delay=2.5)
    consumer.max_msg_retries = 5  # PACER's attribute name
    assert consumer.max_retries == 5
    exchange, queue = consumer.retry_entities()
    assert (exchange.name, exchange.type, queue.name) == (
        "never-declared.retry",
        "fanout",
        "never-declared.retry",
    )
    assert queue.queue_arguments == {"x-message-ttl": 2500, "x-dead-letter-exchange": ""}


def test_what_counts_as_transient():
    class Unavailable(TransientError):
        pass

    class ByText(DatasetsConsumer):
        def is_transient_error(self, exc):
            return "Service Temporarily Unavailable" in str(exc) or super().is_transient_error(exc)

    consumer = ByText(queue_name="never-declared")
    assert consumer.is_transient_error(ICATSessionError("Session 1 has expired"))  # listed
    assert consumer.is_transient_error(Unavailable("try later"))  # the SDK base class
    assert consumer.is_transient_error(RuntimeError("503 Service Temporarily Unavailable"))
    assert not consumer.is_transient_error(tasks.InvestigationNotFound("gone"))
    assert not consumer.is_transient_error(ValueError("bad"))


# The delayed retry route ------------------------------------------------------------------------


def retry_headers(report) -> object:
    return report["kwargs"]["headers"].get(RETRIES_HEADER)


def gap(earlier, later) -> float:
    end = datetime.fromisoformat(earlier["kwargs"]["processing_end"])
    start = datetime.fromisoformat(later["kwargs"]["processing_start"])
    return (start - end).total_seconds()


def test_transient_failure_retried_after_the_delay_then_succeeds(
    names, report_sink, publisher, run_worker, dead_letters, connection
):
    consumer = pacer_consumer(
        DatasetsConsumer, names, report_sink, dead_letters, max_retries=3, retry_delay=RETRY_DELAY
    )
    run_worker([consumer])
    send(publisher, consumer, {**DATASET, "icat_session_lost_times": 2})
    first, second, third = report_sink.get(3, timeout=15)

    assert [r["kwargs"]["attempt"] for r in (first, second, third)] == [1, 2, 3]
    assert [r["retries"] for r in (first, second, third)] == [0, 1, 2]
    assert [retry_headers(r) for r in (first, second, third)] == [None, 1, 2]
    assert first["kwargs"]["error_message"] == {
        "callback_func_main_dataset_creation": "ICATSessionError: Session 1000 has expired"
    }
    assert second["kwargs"]["error_message"] == {
        "callback_func_main_dataset_creation": "ICATSessionError: Session 1001 has expired"
    }
    assert third["kwargs"]["errored"] is False
    assert third["kwargs"]["object_identifiers"]["dataset_id"] == 4711
    # Back through the original exchange and routing key, after the delay.
    for report in (second, third):
        assert report["kwargs"]["exchange_name"] == consumer.exchange_name
        assert report["kwargs"]["routing_key"] == ROUTING_KEY
        assert report["kwargs"]["hash"] == first["kwargs"]["hash"]
    assert gap(first, second) >= RETRY_DELAY * 0.9
    assert gap(second, third) >= RETRY_DELAY * 0.9
    # The broker's own record: dead-lettered from the retry queue when its TTL expired.
    (death,) = third["kwargs"]["headers"]["x-death"]
    assert death["queue"] == consumer.retry_queue_name and death["reason"] == "expired"
    assert_no_dead_letter(dead_letters)  # the successful attempt was acked
    report_sink.assert_silent(RETRY_DELAY * 2)
    # The SDK declared the retry queue with these arguments: the same declaration is accepted.
    _, queue = consumer.retry_entities()
    assert queue.queue_arguments == {
        "x-message-ttl": int(RETRY_DELAY * 1000),
        "x-dead-letter-exchange": consumer.exchange_name,
    }
    channel = connection.channel()
    try:
        _, count, _ = queue(channel).queue_declare()
        assert count == 0
    finally:
        channel.close()


def test_gives_up_after_the_maximum_and_rejects(
    names, report_sink, publisher, run_worker, dead_letters
):
    consumer = pacer_consumer(
        DatasetsConsumer, names, report_sink, dead_letters, max_retries=2, retry_delay=RETRY_DELAY
    )
    run_worker([consumer])
    body = {**DATASET, "icat_session_lost_times": 99}
    send(publisher, consumer, body)
    reports = report_sink.get(3, timeout=15)

    assert [r["kwargs"]["attempt"] for r in reports] == [1, 2, 3]
    assert [retry_headers(r) for r in reports] == [None, 1, 2]
    assert all(r["kwargs"]["errored"] for r in reports)
    assert steps().count("create_base_dataset_icat") == 3
    assert "create_dataset_gallery" not in steps()  # reject_msg_at_first_callback_error
    # After the last retry: rejected (dead-lettered once), nothing more.
    dead = dead_letters[1].get(timeout=5)
    assert json.loads(dead.body) == body and dead.headers[RETRIES_HEADER] == 2
    dead.ack()
    report_sink.assert_silent(RETRY_DELAY * 3)
    assert_no_dead_letter(dead_letters)


def test_first_and_last_attempts_only(names, report_sink, publisher, run_worker):
    consumer = pacer_consumer(
        DatasetsConsumer,
        names,
        report_sink,
        max_retries=3,
        retry_delay=RETRY_DELAY,
        report_attempts="first_and_last",
    )
    run_worker([consumer])
    send(publisher, consumer, {**DATASET, "dataset": "fails", "icat_session_lost_times": 99})
    send(publisher, consumer, {**DATASET, "dataset": "recovers", "icat_session_lost_times": 2})
    reports = report_sink.get(4, timeout=20)
    report_sink.assert_silent(RETRY_DELAY * 3)

    by_dataset = {}
    for report in reports:
        identifiers = report["kwargs"]["object_identifiers"]
        by_dataset.setdefault(identifiers["dataset"], []).append(report)
    assert [(r["kwargs"]["attempt"], r["kwargs"]["errored"]) for r in by_dataset["fails"]] == [
        (1, True),
        (4, True),
    ]
    assert [(r["kwargs"]["attempt"], r["kwargs"]["errored"]) for r in by_dataset["recovers"]] == [
        (1, True),
        (3, False),
    ]
    assert steps().count("create_base_dataset_icat") == 4 + 3  # every attempt ran


def test_not_retried_when_it_would_not_come_back(names, report_sink, publisher, run_worker):
    """Published straight to the queue: dead-lettered to the consumer's exchange with the queue
    name as routing key it would be dropped, so it is settled instead."""
    consumer = pacer_consumer(DatasetsConsumer, names, report_sink, retry_delay=RETRY_DELAY)
    run_worker([consumer])
    publisher.publish(
        {**DATASET, "icat_session_lost_times": 1}, exchange="", routing_key=consumer.queue_name
    )
    (report,) = report_sink.get(1)
    assert report["kwargs"]["errored"] is True
    report_sink.assert_silent(RETRY_DELAY * 3)


def test_retry_queue_with_other_arguments_settles_without_retrying(
    names, report_sink, publisher, run_worker, connection, dead_letters
):
    """The broker refuses to redeclare the retry queue (406): logged, the message is settled as
    a permanent failure, and the publisher's channel recovers for the next reports."""
    consumer = pacer_consumer(
        DatasetsConsumer, names, report_sink, dead_letters, retry_delay=RETRY_DELAY
    )
    _, queue = consumer.retry_entities()
    channel = connection.channel()
    try:
        Queue(queue.name, durable=True, queue_arguments={"x-message-ttl": 99_000})(
            channel
        ).declare()
    finally:
        channel.close()
    run_worker([consumer])
    send(publisher, consumer, {**DATASET, "dataset": "lost", "icat_session_lost_times": 99})
    send(publisher, consumer, {**DATASET, "dataset": "fine"})
    lost, fine = report_sink.get(2)
    assert lost["kwargs"]["errored"] is True and lost["kwargs"]["attempt"] == 1
    assert fine["kwargs"]["errored"] is False
    dead = dead_letters[1].get(timeout=5)  # rejected: settled as a permanent failure
    assert json.loads(dead.body)["dataset"] == "lost"
    dead.ack()
    report_sink.assert_silent(RETRY_DELAY * 3)
