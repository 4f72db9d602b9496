# ruff: noqa: UP010, G004 - kept exactly in PACER's documented style
"""Two consumers in PACER's documented style, unchanged but for the `PACERConsumer` import
(PACER: `from helpers.utils.pacer_consumer import PACERConsumer, callback_order`)."""

from __future__ import absolute_import, unicode_literals

import json

from kombu import Message

from pacer import PACERConsumer, callback_order
from tests.sdk.pacer_style.tasks import DatasetsTasks, ICATSessionError, InternalStatisticsTasks


class DatasetsConsumer(PACERConsumer):
    # BEFORE ADDING (COPYING AND PASTING THIS CONSUMER TO CREATE A NEW ONE), REPLACE THE
    # `dashboard_message_type` SPECIFIED IN THE CALL TO THE SUPERIOR CLASS CONSTRUCTOR WITH A NEW
    # VALUE FOR THE NEW MESSAGES TYPE.

    # The one addition for the SDK's retry route: a lost ICAT session is worth retrying.
    transient_exceptions = (ICATSessionError,)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(dashboard_message_type="dataset-ingestion", *args, **kwargs)
        self.reject_msg_at_first_callback_error = True

        self.tasks = DatasetsTasks(self.logger)

    def get_message_object_identifiers(
        self, message: Message, shared_obj_identifiers: dict = {}
    ) -> dict:
        try:
            dataset_str = message.payload or message.body
            dataset = json.loads(dataset_str) if isinstance(dataset_str, str) else dataset_str
            return {
                "instrument": dataset["instrument"],
                "investigation": dataset["investigation"],
                "dataset": dataset["dataset"],
                **shared_obj_identifiers,
            }
        except Exception as e:
            self.logger.error(f"Error getting message object identifiers: {e!r}")
            return {}

    def callback_func_check_files(self, _body, message: Message, *_args, **_kwargs) -> None:
        self.logger.info(
            f"callback_func_check_files > Processing message from "
            f"{message.delivery_info['routing_key']}: {message.payload!r}"
        )
        self.tasks.check_files(message.payload, *_args, **_kwargs)

    def callback_func_main_dataset_creation(self, _body, message: Message, *args, **kwargs) -> None:
        self.logger.info(
            f"callback_func_main_dataset_creation > Processing message from "
            f"{message.delivery_info['routing_key']}: {message.payload!r}"
        )
        retries: int = message.headers.get("x-retries", 0)
        self.tasks.create_base_dataset_icat(message.payload, retries, *args, **kwargs)

    def callback_func_register_gallery(
        self, body, message, errors=None, received_at="", shared_obj_identifiers=None
    ) -> None:
        self.tasks.create_dataset_gallery(
            body,
            errors=errors,
            received_at=received_at,
            shared_obj_identifiers=shared_obj_identifiers,
            message=message,
        )


class InternalStatisticsConsumer(PACERConsumer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(dashboard_message_type="internal-statistics", *args, **kwargs)
        self.tasks = InternalStatisticsTasks(self.logger)

    def get_message_object_identifiers(self, message: Message) -> dict:
        dataset_id: int = message.headers.get("dataset_id", 0)
        return {"dataset": message.payload["dataset"], "dataset_id": dataset_id}

    @callback_order(2)
    def callback_func_a_volume(self, _body, message: Message, *args, **kwargs) -> None:
        self.tasks.volume(message.headers.get("dataset_id", 0), *args, **kwargs)

    @callback_order(1)
    def callback_func_z_count_files(self, _body, message: Message, *args, **kwargs) -> None:
        self.tasks.count_files(message.headers.get("dataset_id", 0), *args, **kwargs)
