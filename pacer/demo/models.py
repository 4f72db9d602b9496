"""Payload models of the demo messages. Each accepts the JSON shape and the legacy XML shape."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pacer.models import PayloadModel, XmlList


class DataFile(PayloadModel):
    name: str
    size: int = Field(ge=0)
    checksum: str | None = None


class DatasetIngestion(PayloadModel):
    """Stage 1: a dataset written by an instrument, to be catalogued."""

    instrument: str
    investigation: str
    dataset: str
    location: str
    #: XML sends repeated `<file>` elements.
    files: XmlList[DataFile] = Field(
        default_factory=list, validation_alias=AliasChoices("files", "file")
    )
    #: Test hook: the pipeline stage (1-4) that must fail for this message.
    fail_stage: int | None = None


class InternalDatasetIngestion(DatasetIngestion):
    """Stage 2: the dataset exists in ICAT; register its files and parameters."""

    dataset_id: int
    visit_id: str


class DatasetReference(PayloadModel):
    """Stages 3a/3b: statistics and links work on the catalogued dataset."""

    instrument: str
    investigation: str
    dataset: str
    dataset_id: int
    visit_id: str
    file_count: int = 0
    total_size: int = 0
    fail_stage: int | None = None


class UserSync(PayloadModel):
    profile_id: int
    usernames: XmlList[str] = Field(validation_alias=AliasChoices("usernames", "username"))
    email: str | None = None
    fail: bool = False


class ProposalSync(PayloadModel):
    """A proposal to create or update as an ICAT investigation (`name` is its number)."""

    name: str = Field(validation_alias=AliasChoices("name", "proposal"))
    instrument: str
    title: str = ""
    visit: int = 1
    fail: bool = False


class InvestigationOps(PayloadModel):
    """Operations on a finished investigation, e.g. from the dashboard's checks."""

    name: str
    visit_id: str
    operations: XmlList[str] = Field(validation_alias=AliasChoices("operations", "operation"))
    fail: bool = False
