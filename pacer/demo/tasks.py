"""The demo's business logic: simulated ICAT work with the failures real PACER sees.

Consumers call these functions; they know nothing about RabbitMQ. `Simulation` decides how long
work takes and when it fails at random; `fail_stage`/`fail` in a payload forces a failure so
tests are deterministic.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field

from .models import DatasetIngestion, DatasetReference, InvestigationOps, ProposalSync, UserSync

KNOWN_OPERATIONS = ("doi", "pss", "close", "release")


class InvestigationNotFound(LookupError):
    """The investigation is not in ICAT (yet)."""


class ICATSessionError(RuntimeError):
    """The ICAT session expired or was refused."""


class ICATObjectExistsError(RuntimeError):
    """ICAT refused to create an object that already exists."""


class LDAPError(RuntimeError):
    """The user directory did not answer as expected."""


class DOIMintingError(RuntimeError):
    """The DOI registration agency refused the request."""


@dataclass
class Simulation:
    """Timing and random failures of simulated work."""

    failure_rate: float = 0.1
    work_ms: tuple[float, float] = (2.0, 12.0)
    rng: random.Random = field(default_factory=random.Random)

    def work(self) -> None:
        time.sleep(self.rng.uniform(*self.work_ms) / 1000)

    def unlucky(self, share: float = 1.0) -> bool:
        """True with probability `failure_rate * share` (a consumer splits its rate over steps)."""
        return self.rng.random() < self.failure_rate * share

    def session_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"


def stable_id(*parts: str, digits: int = 7) -> int:
    """A deterministic numeric id (the same dataset always gets the same ICAT id)."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return 10 ** (digits - 1) + int(digest[:12], 16) % (9 * 10 ** (digits - 1))


def dataset_path(payload: DatasetIngestion, filename: str) -> str:
    return f"{payload.location.rstrip('/')}/{filename}"


# dataset pipeline ----------------------------------------------------------------------------
def check_files(payload: DatasetIngestion, sim: Simulation) -> None:
    """Every listed file must exist on disk."""
    sim.work()
    if payload.files and sim.unlucky(0.5):
        missing = dataset_path(payload, sim.rng.choice(payload.files).name)
        raise FileNotFoundError(2, "No such file or directory", missing)


def create_dataset(payload: DatasetIngestion, sim: Simulation) -> tuple[int, str]:
    """Create the dataset in ICAT; returns (dataset_id, visit_id)."""
    sim.work()
    if payload.fail_stage == 1 or sim.unlucky(0.5):
        raise InvestigationNotFound(f"Investigation {payload.investigation} not found in ICAT")
    return (
        stable_id(payload.instrument.upper(), payload.investigation, payload.dataset),
        f"{payload.investigation}-1",
    )


def register_datafiles(payload: DatasetIngestion, sim: Simulation) -> int:
    """Register the dataset's files in ICAT; returns how many."""
    sim.work()
    if payload.fail_stage == 2 or sim.unlucky(0.6):
        raise ICATSessionError(f"Session {sim.session_id()} has expired")
    return len(payload.files)


def extract_parameters(payload: DatasetIngestion, sim: Simulation) -> dict[str, float]:
    """Read the dataset parameters from its master file."""
    sim.work()
    if sim.unlucky(0.4):
        int(payload.dataset)  # raises ValueError: invalid literal for int() ... the real bug
    return {"total_size": float(sum(f.size for f in payload.files))}


def compute_statistics(payload: DatasetReference, sim: Simulation) -> dict[str, int]:
    """Update the per-instrument statistics."""
    sim.work()
    if payload.fail_stage == 3 or sim.unlucky():
        raise TimeoutError(f"statistics service timed out after {sim.rng.randint(10, 60)} s")
    return {"files": payload.file_count, "bytes": payload.total_size}


def link_dataset(payload: DatasetReference, sim: Simulation) -> int:
    """Link the dataset to its investigation's other datasets; returns the link id."""
    sim.work()
    link_id = stable_id(str(payload.dataset_id), "link")
    if payload.fail_stage == 4 or sim.unlucky():
        raise ICATObjectExistsError(f"Dataset link {link_id} already exists")
    return link_id


# other consumers -----------------------------------------------------------------------------
def sync_user(payload: UserSync, sim: Simulation) -> None:
    """Create or update the ICAT user for each username."""
    sim.work()
    if payload.fail or sim.unlucky():
        raise LDAPError(f"user {payload.usernames[0] if payload.usernames else '?'} not found")


def sync_proposal(payload: ProposalSync, sim: Simulation) -> str:
    """Create or update the investigation; returns its visit id."""
    sim.work()
    if payload.fail or sim.unlucky():
        raise ICATSessionError(f"Session {sim.session_id()} has expired")
    return f"{payload.name}-{payload.visit}"


def run_operation(payload: InvestigationOps, operation: str, sim: Simulation) -> str:
    """Run one operation (mint a DOI, create the PaNOSC search item, ...)."""
    sim.work()
    if operation not in KNOWN_OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    if payload.fail or sim.unlucky(1 / max(len(payload.operations), 1)):
        if operation == "doi":
            raise DOIMintingError(f"DataCite refused DOI for investigation {payload.name}")
        raise InvestigationNotFound(f"Investigation {payload.name} not found in ICAT")
    return f"{operation}:{payload.name}"
