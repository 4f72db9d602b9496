"""PACER consumer SDK: write consumers that process RabbitMQ messages and report to the dashboard.

Independent of the dashboard (`webapp`): it only shares the wire format (DESIGN §3) and the RMQ_*
variable names. See pacer/README.md for a complete example.
"""

from .config import BrokerSettings, ConfigError, ReportSettings
from .consumer import (
    RETRIES_HEADER,
    Delivery,
    Outcome,
    PACERConsumer,
    TransientError,
    callback_order,
)
from .decoding import DecodedPayload, PayloadDecodeError, decode_payload, xml_to_dict
from .models import PayloadModel, XmlList
from .producer import (
    ExchangeNotFound,
    MessageUnroutable,
    Publisher,
    PublishError,
    PublishNacked,
)
from .report import HASH_HEADER, TASK_NAME, build_report
from .worker import PACERWorker, report_queue, run_consumers

__all__ = [
    "HASH_HEADER",
    "RETRIES_HEADER",
    "TASK_NAME",
    "BrokerSettings",
    "ConfigError",
    "DecodedPayload",
    "Delivery",
    "ExchangeNotFound",
    "MessageUnroutable",
    "Outcome",
    "PACERConsumer",
    "PACERWorker",
    "PayloadDecodeError",
    "PayloadModel",
    "PublishError",
    "PublishNacked",
    "Publisher",
    "ReportSettings",
    "TransientError",
    "XmlList",
    "build_report",
    "callback_order",
    "decode_payload",
    "report_queue",
    "run_consumers",
    "xml_to_dict",
]
