"""`flask investigations check` and the beat task `tasks.investigations.run_checks`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab
from sqlalchemy import select

from models.investigations import InvestigationCheck
from tasks.investigations import run_checks as run_checks_task

from .conftest import investigation


def end_recently(days=2):
    return datetime.now(UTC) - timedelta(days=days)


@pytest.fixture
def cli(configured_app, db):
    runner = configured_app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=["investigations", "check", *args])

    return invoke


def saved(db) -> dict[str, InvestigationCheck]:
    db.session.expire_all()
    return {r.name: r for r in db.session.scalars(select(InvestigationCheck))}


def test_cli_dry_run_prints_and_does_nothing(cli, db, icat, pss, ops_broker):
    icat.add(investigation("INV-CLI", doi=None), investigation("INV-IND", type_name="INDUSTRIAL"))
    icat.investigations = {
        k: dataclasses.replace(v, end_date=end_recently()) for k, v in icat.investigations.items()
    }
    pss.answer("INV-CLI", 404)

    result = cli("--dry-run")

    assert result.exit_code == 0, result.output
    assert "dry run: nothing is published and nothing is saved" in result.output
    assert (
        "INV-CLI (visit 1): pending [DOI missing, PSS item missing]; "
        "would request mint-proposal, create-panosc-item"
    ) in result.output
    assert "INV-IND" not in result.output
    assert ops_broker.drain() == []
    assert saved(db) == {}


def test_cli_run_publishes_and_saves(cli, db, icat, pss, ops_broker):
    icat.add(dataclasses.replace(investigation("INV-CLI", doi=None), end_date=end_recently()))
    pss.answer("INV-CLI", 200)

    result = cli()

    assert result.exit_code == 0, result.output
    assert "requested mint-proposal" in result.output
    assert "published 1 request(s)" in result.output
    assert [b["operations"] for b in ops_broker.bodies()] == [["mint-proposal"]]
    assert saved(db)["INV-CLI"].status == "pending"


def test_cli_single_investigation(cli, db, icat, pss, ops_broker):
    icat.add(
        dataclasses.replace(investigation("O'Brien", doi="10.1/o"), end_date=end_recently()),
        dataclasses.replace(investigation("OTHER", doi=None), end_date=end_recently()),
    )
    pss.answer("O'Brien", 404)

    result = cli("--investigation", "O'Brien", "--visit-id", "1")

    assert result.exit_code == 0, result.output
    assert icat.calls == [("find", "O'Brien", "1")]
    assert ops_broker.bodies() == [
        {"name": "O'Brien", "visit_id": "1", "operations": ["create-panosc-item"]}
    ]
    assert set(saved(db)) == {"O'Brien"}


def test_cli_usage_errors(cli, icat):
    result = cli("--investigation", "X")
    assert result.exit_code == 2
    assert "--investigation and --visit-id go together" in result.output
    result = cli("--investigation", "NOPE", "--visit-id", "1")
    assert result.exit_code == 1
    assert "ICAT has no investigation named 'NOPE'" in result.output


def test_cli_reports_errors_with_a_failing_exit_code(cli, db, icat, pss):
    icat.add(dataclasses.replace(investigation("INV-E", doi="10.1/e"), end_date=end_recently()))
    pss.answer("INV-E", 500)

    result = cli()

    assert result.exit_code == 1
    assert "INV-E (visit 1): error [DOI present, PSS item unknown]; PSS answered HTTP 500" in (
        result.output
    )
    assert "1 check(s) ended with an error" in result.output


def test_cli_refuses_to_run_unconfigured(app, db):
    result = app.test_cli_runner().invoke(args=["investigations", "check"])
    assert result.exit_code == 1
    assert (
        "not configured: set ICAT_SERVER_URL, ICAT_USERNAME, ICAT_PASSWORD, PANOSC_API_URL"
        in result.output
    )


def test_beat_schedules_the_task_from_settings(app, settings):
    entry = app.extensions["celery"].conf.beat_schedule["investigation-checks"]
    assert entry["task"] == "tasks.investigations.run_checks"
    minute, hour, *_ = settings.INVESTIGATION_CHECKS_CRON.split()
    assert entry["schedule"] == crontab(minute=minute, hour=hour)
    assert "tasks.investigations.run_checks" in app.extensions["celery"].tasks


def test_task_runs_the_check(configured_app, db, icat, pss, ops_broker):
    icat.add(dataclasses.replace(investigation("INV-T", doi=None), end_date=end_recently()))
    pss.answer("INV-T", 200)

    summary = run_checks_task.apply().get()

    assert summary["pending"] == 1
    assert summary["requests_published"] == 1
    assert len(ops_broker.drain()) == 1


def test_task_retries_transient_icat_failures(configured_app, db, icat, pss, ops_broker):
    icat.add(dataclasses.replace(investigation("INV-T", doi=None), end_date=end_recently()))
    pss.answer("INV-T", 200)
    icat.failures_left = 2

    result = run_checks_task.apply()

    assert result.successful(), result.traceback
    assert [c[0] for c in icat.calls] == ["list", "list", "list"]
    assert len(ops_broker.drain()) == 1


def test_task_retries_are_bounded(configured_app, db, icat):
    icat.failures_left = 100

    result = run_checks_task.apply()

    assert result.failed()
    assert len(icat.calls) == run_checks_task.max_retries + 1
    assert "ICAT search failed" in str(result.result)


def test_task_skips_when_not_configured(app, db):
    assert "not configured" in run_checks_task.apply().get()["skipped"]
