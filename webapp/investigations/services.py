"""The investigation check (DESIGN §9, §10): DOI and PaNOSC search item for every finished
investigation, asking PACER to create whichever is missing.

One run:

1. takes the advisory lock `LOCK_INVESTIGATION_CHECKS` (a second, overlapping run stops at once);
2. lists from ICAT the non-industrial investigations whose end date lies in
   `[now - INVESTIGATION_CHECK_WINDOW_DAYS, now]`, plus the rows still open (`pending`/`error`)
   whose window has passed since the last run (they get one final look, then stop);
3. for each investigation not yet `complete`/`expired`: DOI from ICAT, PSS item from the PaNOSC
   search API, then publishes `{"name", "visit_id", "operations"}` to PACER's investigation-ops
   exchange for what is missing, and saves the state (one commit per investigation, so one
   failure never loses or aborts the others).

Status of a check: `pending` (waiting for PACER), `complete` (both exist: never checked again),
`expired` (window passed with something still missing: never checked again), `error` (the last
check was inconclusive or its request could not be published: checked again next run).

An operation already requested less than `RESEND_AFTER` ago is not requested again, so a retried
task or a manual run on the same day does not flood PACER; the daily run re-requests what PACER
has still not created.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from models.investigations import (
    COMPLETE,
    ERROR,
    EXPIRED,
    FINAL_STATUSES,
    PENDING,
    STATUSES,
    InvestigationCheck,
)

from ..amqp import Publisher, PublishError
from ..locks import LOCK_INVESTIGATION_CHECKS, run_lock
from .gateway import IcatGateway, IcatInvestigation, IcatUnavailable
from .pss import PssAnswer, PssClient

logger = logging.getLogger(__name__)

OP_MINT_DOI = "mint-proposal"
OP_CREATE_PSS_ITEM = "create-panosc-item"


#: Do not request the same operation for the same investigation again within this delay.
RESEND_AFTER = timedelta(hours=12)


class CheckError(Exception):
    """The run cannot be done as asked (not configured, unknown investigation)."""


class TransientCheckError(Exception):
    """ICAT, the PSS or the broker was unavailable: the run should be retried later.

    `run` holds what was done before (state of the investigations already checked is saved).
    """

    def __init__(self, message: str, run: CheckRun | None = None):
        super().__init__(message)
        self.run = run


@dataclass
class Outcome:
    """What one check found and did (or, in a dry run, would do)."""

    name: str
    visit_id: str
    status: str | None = None
    has_doi: bool | None = None
    has_pss_item: bool | None = None
    #: Operations published (or that a dry run would publish).
    operations: list[str] = field(default_factory=list)
    error: str | None = None
    #: Set when the investigation was not checked at all, with the reason.
    skipped: str | None = None

    def describe(self, dry_run: bool = False) -> str:
        """One line for the CLI and the logs."""
        who = f"{self.name} (visit {self.visit_id})"
        if self.skipped:
            return f"{who}: skipped, {self.skipped}"
        doi = _flag(self.has_doi)
        pss = _flag(self.has_pss_item)
        line = f"{who}: {self.status} [DOI {doi}, PSS item {pss}]"
        if self.operations:
            verb = "would request" if dry_run else "requested"
            line += f"; {verb} {', '.join(self.operations)}"
        if self.error:
            line += f"; {self.error}"
        return line


def _flag(value: bool | None) -> str:
    return {True: "present", False: "missing", None: "unknown"}[value]


@dataclass
class CheckRun:
    """Result of one run."""

    dry_run: bool = False
    locked_out: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    #: Investigations listed by ICAT whose check is already complete or expired.
    already_final: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status and not o.skipped)

    @property
    def published(self) -> int:
        return sum(1 for o in self.outcomes if o.operations and not self.dry_run)

    def summary(self) -> dict[str, Any]:
        """Counts for the task result and the logs."""
        return {
            "dry_run": self.dry_run,
            "locked_out": self.locked_out,
            "checked": sum(1 for o in self.outcomes if not o.skipped),
            "skipped": sum(1 for o in self.outcomes if o.skipped),
            "already_final": self.already_final,
            "requests_published": self.published,
            **{status: self.count(status) for status in STATUSES},
        }


# ---- publishing -------------------------------------------------------------------------------


def operations_body(name: str, visit_id: str, operations: list[str]) -> str:
    """The JSON body PACER's investigation-ops consumer expects. Never an empty list.

    Published as UTF-8 JSON text with INVESTIGATION_OPS_CONTENT_TYPE (`text/plain` by default,
    README "Design notes": not application/json, for PACER's consumers).
    """
    if not operations:
        raise ValueError("refusing to publish an empty operations list")
    return json.dumps({"name": name, "visit_id": visit_id, "operations": list(operations)})


def ops_publisher(settings: Any) -> Publisher:
    """A publisher for INVESTIGATION_OPS_EXCHANGE: the main broker user, no re-ingest allow-list
    (the exchange is configuration, not a stored report's; SECURITY.md)."""
    return Publisher(settings, broker_url=settings.broker_url, refusal=None)


class OpsPublisher:
    """Publishes investigation operations; connects at the first request, once per run."""

    def __init__(self, settings: Any, factory: Callable[[Any], Publisher] = ops_publisher):
        self.settings = settings
        self.factory = factory
        self._publisher: Publisher | None = None
        #: Set when the broker could not be reached: later requests fail at once.
        self.unreachable: str | None = None

    def send(self, name: str, visit_id: str, operations: list[str]) -> None:
        """Publish with confirms, `mandatory`, persistent; raise PublishError if not routed."""
        body = operations_body(name, visit_id, operations)
        if self.unreachable:
            raise PublishError(self.unreachable)
        if self._publisher is None:
            publisher = self.factory(self.settings)
            try:
                publisher.__enter__()
            except PublishError as exc:
                self.unreachable = str(exc)
                raise
            self._publisher = publisher
        self._publisher.publish(
            body,
            exchange=self.settings.INVESTIGATION_OPS_EXCHANGE,
            routing_key=self.settings.INVESTIGATION_OPS_ROUTING_KEY,
            payload_format="json",
            headers={},
            # text/plain by default: kombu hands PACER's consumer a str, which its newest
            # versions both act on and report (a dict body is acted on, then not reported).
            content_type=self.settings.INVESTIGATION_OPS_CONTENT_TYPE,
        )
        logger.info(
            "requested %s for investigation %s visit %s", ",".join(operations), name, visit_id
        )

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.__exit__(None, None, None)
            self._publisher = None


# ---- the check --------------------------------------------------------------------------------


#: Variables a run needs (ICAT_PASSWORD unless ICAT_AUTH_PLUGIN is `anon`).
REQUIRED_SETTINGS = ("ICAT_SERVER_URL", "ICAT_USERNAME", "ICAT_PASSWORD", "PANOSC_API_URL")


def missing_configuration(settings: Any) -> list[str]:
    """Names of the unset variables a run against ICAT and the PSS needs."""
    return [
        name
        for name in REQUIRED_SETTINGS
        if not getattr(settings, name)
        and not (name == "ICAT_PASSWORD" and settings.ICAT_AUTH_PLUGIN == "anon")
    ]


def next_scheduled_run(settings: Any, now: datetime | None = None) -> datetime:
    """When beat next starts the check (INVESTIGATION_CHECKS_CRON, in UTC like beat)."""
    from celeryconfig import _cron

    now = now or datetime.now(UTC)
    start, delta, _ = _cron(settings.INVESTIGATION_CHECKS_CRON).remaining_delta(now)
    return start + delta


def check_configuration(settings: Any) -> None:
    """Raise CheckError naming what is missing for a run against ICAT and the PSS."""
    missing = missing_configuration(settings)
    if missing:
        raise CheckError(f"investigation checks are not configured: set {', '.join(missing)}")


class _Run:
    """State of one run (kept off the public API: use `run_checks`)."""

    def __init__(
        self,
        session: Session,
        settings: Any,
        gateway: IcatGateway,
        pss: PssClient,
        publisher: OpsPublisher,
        now: datetime,
        dry_run: bool,
    ):
        self.session = session
        self.settings = settings
        self.gateway = gateway
        self.pss = pss
        self.publisher = publisher
        self.now = now
        self.window_start = now - timedelta(days=settings.INVESTIGATION_CHECK_WINDOW_DAYS)
        self.excluded = tuple(settings.INDUSTRIAL_INVESTIGATION_TYPES)
        self.dry_run = dry_run
        self.result = CheckRun(dry_run=dry_run)
        self.pss_lookups = 0
        self.pss_unreachable = 0
        self.icat_failures: list[str] = []

    # -- selection ------------------------------------------------------------------------------
    def scheduled(self) -> None:
        try:
            listed = self.gateway.finished_investigations(
                self.window_start, self.now, self.excluded
            )
        except IcatUnavailable as exc:
            raise TransientCheckError(str(exc), self.result) from exc
        rows = self._rows_for({(i.name, i.visit_id) for i in listed})
        # Decide before the first commit (a commit expires the loaded rows).
        to_check = []
        for inv in listed:
            row = rows.get((inv.name, inv.visit_id))
            if row is not None and row.status in FINAL_STATUSES:
                self.result.already_final += 1
            else:
                to_check.append((inv, row))
        for inv, row in to_check:
            self.check(inv, row)
        listed_keys = {(i.name, i.visit_id) for i in listed}
        # Open checks whose window passed since the last run: ICAT no longer lists them.
        stale = self.session.scalars(
            select(InvestigationCheck)
            .where(
                InvestigationCheck.status.in_((PENDING, ERROR)),
                InvestigationCheck.end_date < self.window_start,
            )
            .order_by(InvestigationCheck.id)
        ).all()
        for row in stale:
            if (row.name, row.visit_id) in listed_keys:
                continue
            self.final_look(row)

    def single(self, name: str, visit_id: str) -> None:
        try:
            inv = self.gateway.find_investigation(name, visit_id)
        except IcatUnavailable as exc:
            raise TransientCheckError(str(exc), self.result) from exc
        if inv is None:
            raise CheckError(f"ICAT has no investigation named {name!r} with visit id {visit_id!r}")
        row = self._rows_for({(inv.name, inv.visit_id)}).get((inv.name, inv.visit_id))
        # Asked for explicitly: checked whatever its status (an operator wants to know now).
        self.check(inv, row)

    def _rows_for(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], InvestigationCheck]:
        if not keys:
            return {}
        found: dict[tuple[str, str], InvestigationCheck] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            for row in self.session.scalars(
                select(InvestigationCheck).where(
                    tuple_(InvestigationCheck.name, InvestigationCheck.visit_id).in_(chunk)
                )
            ):
                found[(row.name, row.visit_id)] = row
        return found

    def final_look(self, row: InvestigationCheck) -> None:
        """One last check of an open row whose window passed (complete, or expired)."""
        try:
            inv = self.gateway.find_investigation(row.name, row.visit_id)
        except IcatUnavailable as exc:
            self.icat_failures.append(str(exc))
            inv = None
            gone_reason = f"window passed; ICAT unavailable for a last check: {exc}"
        else:
            gone_reason = "window passed; the investigation is no longer in ICAT"
        if inv is None:
            outcome = Outcome(row.name, row.visit_id, EXPIRED, row.has_doi, row.has_pss_item)
            outcome.error = gone_reason
            self._save(row, None, outcome)
            self.result.outcomes.append(outcome)
            return
        if inv.type_name and inv.type_name in self.excluded:
            # Re-typed as industrial since the last run: stop checking it.
            outcome = Outcome(row.name, row.visit_id, EXPIRED, row.has_doi, row.has_pss_item)
            outcome.error = f"investigation type is now {inv.type_name}: no longer checked"
            self._save(row, inv, outcome)
            self.result.outcomes.append(outcome)
            return
        self.check(inv, row)

    # -- one investigation ----------------------------------------------------------------------
    def check(self, inv: IcatInvestigation, row: InvestigationCheck | None) -> None:
        try:
            outcome = self._check(inv, row)
        except Exception as exc:  # one investigation never aborts the others
            logger.exception("investigation check of %s visit %s failed", inv.name, inv.visit_id)
            self.session.rollback()
            outcome = Outcome(inv.name, inv.visit_id, ERROR, error=f"check failed: {exc}")
            if row is not None:
                row = self.session.get(InvestigationCheck, row.id)
            self._save_safely(row, inv, outcome)
        self.result.outcomes.append(outcome)

    def _check(self, inv: IcatInvestigation, row: InvestigationCheck | None) -> Outcome:
        outcome = Outcome(inv.name, inv.visit_id)
        if inv.type_name and inv.type_name in self.excluded:
            outcome.skipped = f"investigation type {inv.type_name} is not checked"
            return outcome
        if inv.end_date is None or inv.end_date > self.now:
            outcome.skipped = "the investigation has not ended yet"
            if row is not None and not self.dry_run and inv.end_date != row.end_date:
                row.end_date = inv.end_date  # moved into the future: no longer stale
                self.session.commit()
            return outcome

        answer = self._pss_state(inv)
        outcome.has_doi = inv.has_doi
        outcome.has_pss_item = answer.present
        outcome.error = answer.reason
        window_passed = inv.end_date < self.window_start

        if outcome.has_doi and outcome.has_pss_item:
            outcome.status, outcome.error = COMPLETE, None
        elif window_passed:
            outcome.status = EXPIRED
        else:
            missing = []
            if not outcome.has_doi:
                missing.append(OP_MINT_DOI)
            if outcome.has_pss_item is False:
                missing.append(OP_CREATE_PSS_ITEM)
            # PSS unknown: nothing requested for it (a creation on a 500 could duplicate it).
            outcome.operations = [op for op in missing if not self._recently_sent(row, op)]
            outcome.status = ERROR if answer.reason else PENDING
            if outcome.operations and not self.dry_run:
                try:
                    self.publisher.send(inv.name, inv.visit_id, outcome.operations)
                except PublishError as exc:
                    outcome.status = ERROR
                    outcome.error = _join(outcome.error, f"request to PACER not published: {exc}")
                    outcome.operations = []
        self._save(row, inv, outcome)
        return outcome

    def _pss_state(self, inv: IcatInvestigation) -> PssAnswer:
        self.pss_lookups += 1
        answer = self.pss.item_state(inv.name, inv.visit_id)
        if answer.unreachable:
            self.pss_unreachable += 1
        return answer

    def _recently_sent(self, row: InvestigationCheck | None, operation: str) -> bool:
        if row is None:
            return False
        for entry in reversed(row.operations_sent or []):
            if operation not in entry.get("operations", ()):
                continue
            try:
                sent_at = datetime.fromisoformat(entry["at"])
            except (KeyError, TypeError, ValueError):
                continue
            if sent_at.tzinfo is None:
                sent_at = sent_at.replace(tzinfo=UTC)
            return self.now - sent_at < RESEND_AFTER
        return False

    # -- saving ---------------------------------------------------------------------------------
    def _save(
        self, row: InvestigationCheck | None, inv: IcatInvestigation | None, outcome: Outcome
    ) -> None:
        if self.dry_run:
            return
        if row is None:
            row = InvestigationCheck(
                name=outcome.name,
                visit_id=outcome.visit_id,
                first_checked_at=self.now,
                attempts=0,
                operations_sent=[],
            )
            self.session.add(row)
        if inv is not None:
            row.end_date = inv.end_date
        row.attempts = (row.attempts or 0) + 1
        row.last_checked_at = self.now
        row.has_doi = outcome.has_doi
        row.has_pss_item = outcome.has_pss_item
        if outcome.operations:
            row.operations_sent = [
                *(row.operations_sent or []),
                {"operations": list(outcome.operations), "at": self.now.isoformat()},
            ]
        row.status = outcome.status
        row.last_error = outcome.error
        self.session.commit()

    def _save_safely(
        self, row: InvestigationCheck | None, inv: IcatInvestigation, outcome: Outcome
    ) -> None:
        try:
            self._save(row, inv, outcome)
        except Exception:
            logger.exception("could not record the failed check of %s", inv.name)
            self.session.rollback()

    # -- end ------------------------------------------------------------------------------------
    def transient_problem(self) -> str | None:
        if self.publisher.unreachable:
            return f"broker unavailable: {self.publisher.unreachable}"
        if self.pss_lookups and self.pss_unreachable == self.pss_lookups:
            return "the PaNOSC search API was unreachable for every lookup"
        if self.icat_failures:
            return f"ICAT unavailable: {self.icat_failures[-1]}"
        return None


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


def run_checks(
    session: Session,
    settings: Any,
    *,
    gateway: IcatGateway,
    pss: PssClient,
    publisher_factory: Callable[[Any], Publisher] = ops_publisher,
    now: datetime | None = None,
    dry_run: bool = False,
    investigation: tuple[str, str] | None = None,
) -> CheckRun:
    """Run the investigation check (all finished investigations, or one `(name, visit_id)`).

    A dry run queries ICAT and the PSS but publishes nothing and saves nothing. Raises
    `TransientCheckError` (after saving what was checked) when ICAT, the PSS or the broker was
    unavailable, and `CheckError` when the run cannot be done as asked.
    """
    now = now or datetime.now(UTC)
    publisher = OpsPublisher(settings, publisher_factory)
    run = _Run(session, settings, gateway, pss, publisher, now, dry_run)
    try:
        if dry_run:
            _select(run, investigation)
        else:
            with run_lock(session, LOCK_INVESTIGATION_CHECKS) as locked:
                if not locked:
                    logger.warning("investigation checks already running elsewhere; skipped")
                    run.result.locked_out = True
                    return run.result
                _select(run, investigation)
    finally:
        publisher.close()
        gateway.close()
        pss.close()
        if dry_run:
            session.rollback()
    problem = run.transient_problem()
    logger.info("investigation checks: %s", run.result.summary())
    if problem:
        raise TransientCheckError(problem, run.result)
    return run.result


def _select(run: _Run, investigation: tuple[str, str] | None) -> None:
    if investigation is not None:
        run.single(*investigation)
    else:
        run.scheduled()
