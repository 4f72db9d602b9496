"""The demo consumers: RabbitMQ glue only; the work is in `pacer.demo.tasks`.

Pipeline: dataset-ingestion → internal-dataset-ingestion → internal-statistics and
internal-dataset-links. Onward messages go through `self.publish`, which carries the stage-1
payload hash, so the dashboard links all four reports.
"""

from __future__ import annotations

from typing import Any

from pacer.config import ReportSettings
from pacer.consumer import PACERConsumer, callback_order

from . import tasks
from .models import (
    DatasetIngestion,
    DatasetReference,
    InternalDatasetIngestion,
    InvestigationOps,
    ProposalSync,
    UserSync,
)
from .tasks import Simulation
from .topology import (
    DATASET_INGESTION,
    INTERNAL_DATASET_INGESTION,
    INTERNAL_DATASET_LINKS,
    INTERNAL_STATISTICS,
    INVESTIGATION_OPS,
    PROPOSAL_SYNC,
    USER_SYNC,
    DemoTopology,
)

DATASET_FIELDS = ("instrument", "investigation", "dataset")
INTERNAL_FIELDS = (*DATASET_FIELDS, "dataset_id", "visit_id")


class DemoConsumer(PACERConsumer):
    """Takes its queue and exchange from the demo topology."""

    def __init__(
        self,
        topology: DemoTopology,
        simulation: Simulation,
        reports: ReportSettings | None = None,
    ):
        route = topology.route(self.dashboard_message_type)
        reports = reports or ReportSettings()
        super().__init__(
            queue_name=route.queue,
            exchange_name=route.exchange,
            routing_key=route.routing_key,
            report_exchange=reports.exchange,
            report_routing_key=reports.routing_key,
        )
        self.topology = topology
        self.sim = simulation

    def forward(self, message_type: str, body: dict[str, Any]) -> None:
        route = self.topology.route(message_type)
        self.publish(body, exchange=route.exchange, routing_key=route.routing_key)


class DatasetIngestionConsumer(DemoConsumer):
    """Stage 1: check files, create the dataset in ICAT, hand over to stage 2."""

    dashboard_message_type = DATASET_INGESTION
    reject_msg_at_first_callback_error = True
    payload_model = DatasetIngestion
    object_identifier_fields = DATASET_FIELDS

    @callback_order(1)
    def callback_func_check_files(self, message: DatasetIngestion, shared: dict) -> None:
        tasks.check_files(message, self.sim)

    @callback_order(2)
    def callback_func_main_dataset_creation(self, message: DatasetIngestion, shared: dict) -> None:
        shared["dataset_id"], shared["visit_id"] = tasks.create_dataset(message, self.sim)

    @callback_order(3)
    def callback_func_forward(self, message: DatasetIngestion, shared: dict) -> None:
        body = message.model_dump(mode="json")
        body.update(dataset_id=shared["dataset_id"], visit_id=shared["visit_id"])
        self.forward(INTERNAL_DATASET_INGESTION, body)


class InternalDatasetIngestionConsumer(DemoConsumer):
    """Stage 2: register datafiles and parameters, then fan out to statistics and links."""

    dashboard_message_type = INTERNAL_DATASET_INGESTION
    reject_msg_at_first_callback_error = True
    payload_model = InternalDatasetIngestion
    object_identifier_fields = INTERNAL_FIELDS

    @callback_order(1)
    def callback_func_datafiles(self, message: InternalDatasetIngestion, shared: dict) -> None:
        self.delivery.state["file_count"] = tasks.register_datafiles(message, self.sim)

    @callback_order(2)
    def callback_func_parameters(self, message: InternalDatasetIngestion, shared: dict) -> None:
        self.delivery.state["total_size"] = int(
            tasks.extract_parameters(message, self.sim)["total_size"]
        )

    @callback_order(3)
    def callback_func_forward(self, message: InternalDatasetIngestion, shared: dict) -> None:
        body = DatasetReference(
            **message.model_dump(include=set(INTERNAL_FIELDS) | {"fail_stage"}),
            file_count=self.delivery.state["file_count"],
            total_size=self.delivery.state["total_size"],
        ).model_dump(mode="json")
        self.forward(INTERNAL_STATISTICS, body)
        self.forward(INTERNAL_DATASET_LINKS, body)


class InternalStatisticsConsumer(DemoConsumer):
    """Stage 3a: statistics per instrument."""

    dashboard_message_type = INTERNAL_STATISTICS
    payload_model = DatasetReference
    object_identifier_fields = INTERNAL_FIELDS

    def callback_func_statistics(self, message: DatasetReference, shared: dict) -> None:
        tasks.compute_statistics(message, self.sim)


class InternalDatasetLinksConsumer(DemoConsumer):
    """Stage 3b: links between datasets."""

    dashboard_message_type = INTERNAL_DATASET_LINKS
    payload_model = DatasetReference
    object_identifier_fields = INTERNAL_FIELDS

    def callback_func_links(self, message: DatasetReference, shared: dict) -> None:
        tasks.link_dataset(message, self.sim)


class UserSyncConsumer(DemoConsumer):
    dashboard_message_type = USER_SYNC
    payload_model = UserSync
    object_identifier_fields = ("profile_id", "usernames")

    def callback_func_sync_user(self, message: UserSync, shared: dict) -> None:
        tasks.sync_user(message, self.sim)


class ProposalSyncConsumer(DemoConsumer):
    """The visit id is only known once the investigation exists: a shared identifier."""

    dashboard_message_type = PROPOSAL_SYNC
    payload_model = ProposalSync
    object_identifier_fields = ("name", "instrument")

    def callback_func_proposal(self, message: ProposalSync, shared: dict) -> None:
        shared["visit_id"] = tasks.sync_proposal(message, self.sim)


class InvestigationOpsConsumer(DemoConsumer):
    """Each operation is independent: one failing does not stop the others."""

    dashboard_message_type = INVESTIGATION_OPS
    payload_model = InvestigationOps

    def get_message_object_identifiers(self, message: Any, shared: dict) -> dict[str, Any]:
        if isinstance(message, InvestigationOps):
            return {
                "investigation": message.name,
                "operations": message.operations,
                "visit_id": message.visit_id,
            }
        # An invalid payload still gets whatever identifiers it carries.
        return {"investigation": message.get("name"), "visit_id": message.get("visit_id")}

    def callback_func_operations(self, message: InvestigationOps, shared: dict) -> None:
        failures = []
        for operation in message.operations:
            try:
                tasks.run_operation(message, operation, self.sim)
            except Exception as exc:  # run the others, then report all
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise ExceptionGroup(f"{len(failures)} operations failed", failures)


ALL_CONSUMERS: tuple[type[DemoConsumer], ...] = (
    DatasetIngestionConsumer,
    InternalDatasetIngestionConsumer,
    InternalStatisticsConsumer,
    InternalDatasetLinksConsumer,
    UserSyncConsumer,
    ProposalSyncConsumer,
    InvestigationOpsConsumer,
)


def build_consumers(
    topology: DemoTopology,
    simulation: Simulation,
    reports: ReportSettings | None = None,
) -> list[DemoConsumer]:
    """One instance of every demo consumer."""
    return [cls(topology, simulation, reports) for cls in ALL_CONSUMERS]
