"""PACERConsumer against a real RabbitMQ: callbacks, errors, identifiers, payloads, reports."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

import pytest
from kombu import Exchange, Queue
from pydantic import Field

from pacer import HASH_HEADER, TASK_NAME, PACERConsumer, PayloadModel, XmlList, callback_order
from pacer.decoding import xml_to_dict

ROUTING_KEY = "test.input"


def make_consumer(cls, names, report_sink, **overrides):
    """An instance of `cls` on a private exchange/queue, reporting to the sink."""
    return cls(
        queue_name=names.queue(cls.__name__.lower()),
        exchange_name=names.exchange("input"),
        routing_key=ROUTING_KEY,
        report_exchange=report_sink.exchange,
        report_routing_key=report_sink.routing_key,
        **overrides,
    )


def send(publisher, consumer, body, **kwargs):
    return publisher.publish(
        body, exchange=consumer.exchange_name, routing_key=ROUTING_KEY, **kwargs
    )


class Recording(PACERConsumer):
    """Records the order callbacks ran in (class-level list, reset per test)."""

    dashboard_message_type = "test-recording"
    calls: list[str] = []

    @classmethod
    def record(cls, name: str) -> None:
        cls.calls.append(name)


class Ordered(Recording):
    dashboard_message_type = "test-ordered"

    def callback_func_zeta(self, message, shared):
        self.record("zeta")

    def callback_func_alpha(self, message, shared):
        self.record("alpha")

    @callback_order(2)
    def callback_func_second(self, message, shared):
        self.record("second")

    @callback_order(1)
    def callback_func_first(self, message, shared):
        self.record("first")

    @callback_order(2)
    def callback_func_another_second(self, message, shared):
        self.record("another_second")

    def not_a_callback(self, message, shared):
        self.record("never")


def test_callbacks_run_explicit_order_then_unordered_by_name(
    names, report_sink, publisher, run_worker
):
    Ordered.calls = []
    consumer = make_consumer(Ordered, names, report_sink)
    run_worker([consumer])

    send(publisher, consumer, {"n": 1})
    (report,) = report_sink.get(1)

    assert Ordered.calls == ["first", "another_second", "second", "alpha", "zeta"]
    assert report["kwargs"]["errored"] is False
    assert report["kwargs"]["error_message"] == {}


def test_callback_order_is_inherited_and_overridable():
    class Child(Ordered):
        @callback_order(0)
        def callback_func_zeta(self, message, shared):
            self.record("zeta")

    assert [name for name, _ in Child.callbacks()] == [
        "callback_func_zeta",
        "callback_func_first",
        "callback_func_another_second",
        "callback_func_second",
        "callback_func_alpha",
    ]
    # The parent keeps its own order.
    assert [name for name, _ in Ordered.callbacks()][-1] == "callback_func_zeta"


def test_callback_order_needs_an_int():
    with pytest.raises(TypeError, match="int"):
        callback_order("1")


class FailsInTheMiddle(Recording):
    dashboard_message_type = "test-fails"

    @callback_order(1)
    def callback_func_prepare(self, message, shared):
        self.record("prepare")
        shared["prepared"] = "yes"

    @callback_order(2)
    def callback_func_main_dataset_creation(self, message, shared):
        self.record("create")
        raise LookupError(f"Investigation {message['investigation']} not found in ICAT")

    @callback_order(3)
    def callback_func_publish(self, message, shared):
        self.record("publish")

    def callback_func_zz_cleanup(self, message, shared):
        self.record("cleanup")
        raise FileNotFoundError(2, "No such file or directory", "/data/bl13/x")


class RejectsAtFirstError(FailsInTheMiddle):
    dashboard_message_type = "test-rejects"
    reject_msg_at_first_callback_error = True


def dead_letter_setup(names, connection):
    """A dead-letter exchange + queue that receives what a consumer rejects."""
    dlx = names.exchange("dlx")
    dlq = Queue(names.queue("dlq"), Exchange(dlx, type="fanout", durable=False), durable=False)
    return {"x-dead-letter-exchange": dlx}, connection.SimpleQueue(dlq)


def test_reject_at_first_error_skips_later_callbacks_but_reports(
    names, report_sink, publisher, run_worker, connection
):
    arguments, dead_letters = dead_letter_setup(names, connection)
    RejectsAtFirstError.calls = []
    RejectsAtFirstError.queue_arguments = arguments
    try:
        consumer = make_consumer(RejectsAtFirstError, names, report_sink)
        run_worker([consumer])
        send(publisher, consumer, {"investigation": "2022097034"})
        (report,) = report_sink.get(1)
    finally:
        RejectsAtFirstError.queue_arguments = None

    assert RejectsAtFirstError.calls == ["prepare", "create"]
    kwargs = report["kwargs"]
    assert kwargs["errored"] is True
    assert kwargs["error_message"] == {
        "callback_func_main_dataset_creation": (
            "LookupError: Investigation 2022097034 not found in ICAT"
        )
    }
    assert set(kwargs["traceback"]) == {"callback_func_main_dataset_creation"}
    assert (
        "Traceback (most recent call last)"
        in kwargs["traceback"]["callback_func_main_dataset_creation"]
    )
    assert (
        "callback_func_main_dataset_creation"
        in kwargs["traceback"]["callback_func_main_dataset_creation"]
    )
    # Rejected without requeue: the message went to the dead-letter queue, once.
    dead = dead_letters.get(timeout=5)
    assert json.loads(dead.body) == {"investigation": "2022097034"}
    dead.ack()
    with pytest.raises(dead_letters.Empty):
        dead_letters.get(timeout=0.5)
    dead_letters.close()


def test_without_reject_all_callbacks_run_errors_collected_and_message_acked(
    names, report_sink, publisher, run_worker, connection
):
    arguments, dead_letters = dead_letter_setup(names, connection)
    FailsInTheMiddle.calls = []
    FailsInTheMiddle.queue_arguments = arguments
    try:
        consumer = make_consumer(FailsInTheMiddle, names, report_sink)
        run_worker([consumer])
        send(publisher, consumer, {"investigation": "2022097034"})
        (report,) = report_sink.get(1)
    finally:
        FailsInTheMiddle.queue_arguments = None

    assert FailsInTheMiddle.calls == ["prepare", "create", "publish", "cleanup"]
    assert report["kwargs"]["error_message"] == {
        "callback_func_main_dataset_creation": (
            "LookupError: Investigation 2022097034 not found in ICAT"
        ),
        "callback_func_zz_cleanup": (
            "FileNotFoundError: [Errno 2] No such file or directory: '/data/bl13/x'"
        ),
    }
    assert set(report["kwargs"]["traceback"]) == set(report["kwargs"]["error_message"])
    with pytest.raises(dead_letters.Empty):
        dead_letters.get(timeout=0.5)
    dead_letters.close()


class WithIdentifiers(PACERConsumer):
    dashboard_message_type = "test-identifiers"

    def get_message_object_identifiers(self, message, shared_obj_identifiers):
        return {
            "instrument": message["instrument"],
            "investigation": message["investigation"],
            "dataset": None,  # unknown values are left out
        }

    def callback_func_create(self, message, shared):
        shared["dataset_id"] = 4711
        shared["visit_id"] = "2022097034-1"
        shared["instrument"] = "ignored: the method's value wins"


def test_identifiers_merged_with_shared_identifiers(names, report_sink, publisher, run_worker):
    consumer = make_consumer(WithIdentifiers, names, report_sink)
    run_worker([consumer])
    send(publisher, consumer, {"instrument": "bl13", "investigation": "2022097034"})
    (report,) = report_sink.get(1)
    assert report["kwargs"]["object_identifiers"] == {
        "instrument": "bl13",
        "investigation": "2022097034",
        "dataset_id": 4711,
        "visit_id": "2022097034-1",
    }


class Datafile(PayloadModel):
    name: str
    size: int


class DatasetPayload(PayloadModel):
    instrument: str
    investigation: str
    dataset_name: str
    files: XmlList[Datafile] = Field(validation_alias="data_file")


class ValidatedXml(PACERConsumer):
    dashboard_message_type = "test-xml"
    payload_model = DatasetPayload
    object_identifier_fields = ("instrument", "investigation", "dataset_name")
    seen: list = []

    def callback_func_keep(self, message, shared):
        type(self).seen.append(message)


LEGACY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<DatasetIngest xmlns="http://example.org/pacer">
  <Instrument>BL13</Instrument>
  <Investigation>2022097034</Investigation>
  <DatasetName>mx_01</DatasetName>
  <DataFile><Name>master.h5</Name><Size>1024</Size></DataFile>
  <DataFile><Name>data_000001.h5</Name><Size>2048</Size></DataFile>
</DatasetIngest>"""


def test_xml_payload_converted_and_validated(names, report_sink, publisher, run_worker):
    ValidatedXml.seen = []
    consumer = make_consumer(ValidatedXml, names, report_sink)
    run_worker([consumer])
    send(publisher, consumer, LEGACY_XML, content_type="application/xml")
    (report,) = report_sink.get(1)

    kwargs = report["kwargs"]
    assert kwargs["errored"] is False, kwargs["error_message"]
    assert kwargs["payload_format"] == "xml"
    assert kwargs["payload"] == LEGACY_XML  # raw text kept for re-ingestion
    assert kwargs["object_identifiers"] == {
        "instrument": "BL13",
        "investigation": "2022097034",
        "dataset_name": "mx_01",
    }
    (payload,) = ValidatedXml.seen
    assert isinstance(payload, DatasetPayload)
    assert payload.files == [
        Datafile(name="master.h5", size=1024),
        Datafile(name="data_000001.h5", size=2048),
    ]


def test_xml_conversion_shape():
    assert xml_to_dict(LEGACY_XML) == {
        "instrument": "BL13",
        "investigation": "2022097034",
        "dataset_name": "mx_01",
        "data_file": [
            {"name": "master.h5", "size": "1024"},
            {"name": "data_000001.h5", "size": "2048"},
        ],
    }
    single = xml_to_dict(
        '<Msg visitID="v-1"><HTTPServer>a</HTTPServer><File><Name>x</Name></File><Empty/></Msg>'
    )
    assert single == {"visit_id": "v-1", "http_server": "a", "file": {"name": "x"}, "empty": None}


def test_single_xml_element_still_validates_as_a_list():
    one = LEGACY_XML.replace(
        "<DataFile><Name>data_000001.h5</Name><Size>2048</Size></DataFile>", ""
    )
    payload = DatasetPayload.model_validate(xml_to_dict(one))
    assert payload.files == [Datafile(name="master.h5", size=1024)]


def test_invalid_payload_reported_without_running_callbacks(
    names, report_sink, publisher, run_worker
):
    ValidatedXml.seen = []
    consumer = make_consumer(ValidatedXml, names, report_sink)
    run_worker([consumer])
    send(publisher, consumer, {"instrument": "BL13", "investigation": "2022097034"})
    (report,) = report_sink.get(1)
    kwargs = report["kwargs"]
    assert ValidatedXml.seen == []
    assert kwargs["errored"] is True
    assert list(kwargs["error_message"]) == ["validate_payload"]
    assert kwargs["error_message"]["validate_payload"].startswith("ValidationError: ")
    assert "dataset_name: Field required" in kwargs["error_message"]["validate_payload"]
    # Best-effort identifiers from the raw dict.
    assert kwargs["object_identifiers"] == {"instrument": "BL13", "investigation": "2022097034"}


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<DatasetIngest><Instrument>&lol3;</Instrument></DatasetIngest>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<DatasetIngest><Instrument>&secret;</Instrument></DatasetIngest>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "external"])
def test_entity_xml_rejected_safely(names, report_sink, publisher, run_worker, document):
    ValidatedXml.seen = []
    consumer = make_consumer(ValidatedXml, names, report_sink)
    run_worker([consumer])
    send(publisher, consumer, document, content_type="application/xml")
    (report,) = report_sink.get(1)
    kwargs = report["kwargs"]
    assert ValidatedXml.seen == []
    assert kwargs["errored"] is True
    assert kwargs["error_message"]["decode_payload"].startswith("EntitiesForbidden: ")
    assert kwargs["payload_format"] == "xml"
    assert kwargs["payload"] == document
    assert "lollol" not in json.dumps(report) and "root:" not in json.dumps(report)


class Plain(PACERConsumer):
    dashboard_message_type = "test-plain"
    seen: list = []

    def callback_func_keep(self, message, shared):
        type(self).seen.append(message)


def test_text_and_broken_json_payloads(names, report_sink, publisher, run_worker):
    Plain.seen = []
    consumer = make_consumer(Plain, names, report_sink)
    run_worker([consumer])
    send(publisher, consumer, "resync all users", content_type="text/plain")
    send(publisher, consumer, '{"investigation": ', content_type="application/json")
    text_report, broken_report = report_sink.get(2)
    assert Plain.seen == ["resync all users"]
    assert text_report["kwargs"]["payload_format"] == "text"
    assert text_report["kwargs"]["errored"] is False
    assert broken_report["kwargs"]["payload_format"] == "json"
    assert broken_report["kwargs"]["payload"] == '{"investigation": '
    assert broken_report["kwargs"]["error_message"]["decode_payload"].startswith(
        "JSONDecodeError: "
    )


KWARGS_KEYS = {
    "object_identifiers",
    "error_message",
    "processing_start",
    "processing_end",
    "hash",
    "message_type",
    "payload_format",
    "payload",
    "errored",
    "exchange_name",
    "routing_key",
    # optional extras of our SDK (DESIGN §3)
    "traceback",
    "consumer",
    "host",
    "attempt",
    "headers",
}


def test_report_matches_the_wire_format(names, report_sink, publisher, run_worker):
    consumer = make_consumer(WithIdentifiers, names, report_sink, name="beamline-consumer")
    run_worker([consumer])
    body = '{"instrument": "BL13", "investigation": "2022097034", "note": "caf\u00e9"}'
    send(publisher, consumer, body, headers={"x-origin": "test", "x-try": 1})
    (report,) = report_sink.get(1)
    message = report_sink.messages[-1]

    assert message.content_type == "application/json"
    assert message.properties["delivery_mode"] == 2
    assert set(report) == {"id", "task", "args", "retries", "kwargs"}
    assert uuid.UUID(report["id"]).version == 4
    assert report["task"] == TASK_NAME == "dashboard.tasks.log_pacer_message"
    assert report["args"] == []
    assert report["retries"] == 0
    kwargs = report["kwargs"]
    assert set(kwargs) == KWARGS_KEYS
    assert kwargs["message_type"] == "test-identifiers"
    assert kwargs["object_identifiers"]["instrument"] == "BL13"
    assert kwargs["error_message"] == {} and kwargs["errored"] is False
    assert kwargs["traceback"] == {}
    start = datetime.fromisoformat(kwargs["processing_start"])
    end = datetime.fromisoformat(kwargs["processing_end"])
    assert start.tzinfo is not None and start <= end
    assert kwargs["hash"] == hashlib.sha256(body.encode()).hexdigest()
    assert kwargs["payload_format"] == "json"
    assert kwargs["payload"] == body
    assert kwargs["exchange_name"] == consumer.exchange_name
    assert kwargs["routing_key"] == ROUTING_KEY
    assert kwargs["consumer"] == "beamline-consumer"
    assert isinstance(kwargs["host"], str) and kwargs["host"]
    assert kwargs["attempt"] == 1
    assert kwargs["headers"] == {"x-origin": "test", "x-try": 1}
    # A second report has a new id.
    send(publisher, consumer, body)
    (again,) = report_sink.get(1)
    assert again["id"] != report["id"] and again["kwargs"]["hash"] == kwargs["hash"]


def test_carried_hash_header_is_reported(names, report_sink, publisher, run_worker):
    consumer = make_consumer(Plain, names, report_sink)
    run_worker([consumer])
    carried = "9a1b2c3d4e5f6071"
    send(publisher, consumer, {"a": 1}, headers={HASH_HEADER: carried})
    send(publisher, consumer, {"a": 1}, headers={HASH_HEADER: "not-a-hash"})
    first, second = report_sink.get(2)
    assert first["kwargs"]["hash"] == carried
    assert second["kwargs"]["hash"] == hashlib.sha256(b'{"a": 1}').hexdigest()


def test_report_is_accepted_by_the_dashboard_parser(names, report_sink, publisher, run_worker):
    """Interoperability: the dashboard's own parser takes our report with every field."""
    from webapp.ingest.report import parse_report

    consumer = make_consumer(FailsInTheMiddle, names, report_sink)
    FailsInTheMiddle.calls = []
    run_worker([consumer])
    send(publisher, consumer, {"investigation": "2022097034"})
    report_sink.get(1)
    raw = report_sink.messages[-1].body
    raw = raw.encode() if isinstance(raw, str) else raw

    parsed = parse_report(raw, task_name=TASK_NAME)
    report = json.loads(raw)
    assert parsed.report_id == report["id"]
    assert parsed.message_type == "test-fails"
    assert parsed.errored is True
    assert parsed.error_message == report["kwargs"]["error_message"]
    assert parsed.traceback == report["kwargs"]["traceback"]
    assert parsed.hash == report["kwargs"]["hash"]
    assert parsed.payload_format == "json"
    assert parsed.exchange_name == consumer.exchange_name
    assert parsed.processing_ms is not None and parsed.processing_ms >= 0
    assert {"consumer", "host", "attempt", "headers"} <= set(parsed.extra)
