"""The check against a fake ICAT, a real HTTP PSS and a real RabbitMQ exchange."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta

import psycopg2
import pytest
from sqlalchemy import select

from models.investigations import InvestigationCheck
from tests.conftest import admin_dsn
from webapp.investigations import services
from webapp.investigations.pss import PssClient
from webapp.locks import LOCK_INVESTIGATION_CHECKS

from .conftest import NOW, investigation


@pytest.fixture
def run(db, check_settings, icat, pss):
    """Run the check at a given time (default NOW) with the test's settings."""

    def run_at(now=NOW, settings=None, **kwargs):
        s = settings or check_settings
        return services.run_checks(
            db.session,
            s,
            gateway=icat,
            pss=PssClient(s.PANOSC_API_URL, timeout=s.PANOSC_API_TIMEOUT),
            now=now,
            **kwargs,
        )

    return run_at


def rows(db) -> dict[str, InvestigationCheck]:
    db.session.expire_all()
    return {r.name: r for r in db.session.scalars(select(InvestigationCheck))}


def test_doi_missing_only_requests_a_doi(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-DOI", doi=None))
    pss.answer("INV-DOI", 200)

    result = run()

    messages = ops_broker.drain()
    assert [json.loads(m.body) for m in messages] == [
        {"name": "INV-DOI", "visit_id": "1", "operations": ["mint-proposal"]}
    ]
    props = messages[0].properties
    assert messages[0].content_type == "text/plain"  # JSON text (README, design notes)
    assert props["delivery_mode"] == 2
    row = rows(db)["INV-DOI"]
    assert (row.status, row.has_doi, row.has_pss_item, row.attempts) == ("pending", False, True, 1)
    assert row.operations_sent == [{"operations": ["mint-proposal"], "at": NOW.isoformat()}]
    assert row.first_checked_at == NOW == row.last_checked_at
    assert row.end_date == NOW - timedelta(days=2)
    assert row.last_error is None
    assert result.summary()["requests_published"] == 1


def test_pss_item_missing_only_requests_the_item(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-PSS", doi="10.5286/abc"))
    pss.answer("INV-PSS", 404)

    run()

    assert ops_broker.bodies() == [
        {"name": "INV-PSS", "visit_id": "1", "operations": ["create-panosc-item"]}
    ]
    row = rows(db)["INV-PSS"]
    assert (row.status, row.has_doi, row.has_pss_item) == ("pending", True, False)


def test_both_missing_requests_both_in_one_message(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-BOTH", doi="  "))  # blank DOI = no DOI
    pss.answer("INV-BOTH", 404)

    run()

    assert ops_broker.bodies() == [
        {
            "name": "INV-BOTH",
            "visit_id": "1",
            "operations": ["mint-proposal", "create-panosc-item"],
        }
    ]
    assert rows(db)["INV-BOTH"].status == "pending"


def test_both_present_is_complete_and_never_checked_again(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-OK", doi="10.5286/ok"))
    pss.answer("INV-OK", 200)

    run()
    run(NOW + timedelta(days=1))

    assert ops_broker.drain() == []
    row = rows(db)["INV-OK"]
    assert (row.status, row.has_doi, row.has_pss_item, row.attempts) == ("complete", True, True, 1)
    assert row.operations_sent == []
    assert pss.hits("INV-OK") == 1


def test_pss_500_sends_nothing_for_pss_and_retries_next_run(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-500", doi=None), investigation("INV-500B", doi="10.1/x"))
    pss.answer("INV-500", 500)
    pss.answer("INV-500B", 500)

    run()

    # The DOI is still requested; the PSS item is not (unknown is never "absent").
    assert ops_broker.bodies() == [
        {"name": "INV-500", "visit_id": "1", "operations": ["mint-proposal"]}
    ]
    checks = rows(db)
    assert checks["INV-500"].status == "error"
    assert checks["INV-500"].has_pss_item is None
    assert "HTTP 500" in checks["INV-500"].last_error
    assert checks["INV-500B"].status == "error"
    assert checks["INV-500B"].operations_sent == []

    pss.answer("INV-500", 404)
    pss.answer("INV-500B", 404)
    run(NOW + timedelta(days=1))

    assert sorted(ops_broker.bodies(), key=lambda b: b["name"]) == [
        {"name": "INV-500", "visit_id": "1", "operations": ["mint-proposal", "create-panosc-item"]},
        {"name": "INV-500B", "visit_id": "1", "operations": ["create-panosc-item"]},
    ]
    checks = rows(db)
    assert checks["INV-500B"].status == "pending"
    assert checks["INV-500B"].last_error is None
    assert checks["INV-500B"].attempts == 2


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(401, "HTTP 401"), ("slow", "did not answer within 1 s")],
)
def test_pss_refusal_or_timeout_is_unknown(db, run, icat, pss, ops_broker, answer, reason):
    icat.add(investigation("INV-U", doi="10.1/u"), investigation("INV-FINE", doi="10.1/f"))
    pss.answer("INV-U", answer)
    pss.answer("INV-FINE", 404)

    started = time.monotonic()
    run()

    assert time.monotonic() - started < 5
    assert ops_broker.bodies() == [
        {"name": "INV-FINE", "visit_id": "1", "operations": ["create-panosc-item"]}
    ]
    row = rows(db)["INV-U"]
    assert (row.status, row.has_pss_item) == ("error", None)
    assert reason in row.last_error


def test_day_31_is_expired_and_nothing_is_sent(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-OLD", days_ago=2, doi=None))
    pss.answer("INV-OLD", 200)
    end = NOW - timedelta(days=2)

    run(end + timedelta(days=29))
    assert len(ops_broker.drain()) == 1

    run(end + timedelta(days=31))

    assert ops_broker.drain() == []
    row = rows(db)["INV-OLD"]
    assert (row.status, row.has_doi, row.attempts) == ("expired", False, 2)
    assert len(row.operations_sent) == 1

    # Expired checks stop: not looked up again, not even in ICAT.
    calls = len(icat.calls)
    run(end + timedelta(days=32))
    assert rows(db)["INV-OLD"].attempts == 2
    assert [c for c in icat.calls[calls:] if c[0] == "find"] == []
    assert ops_broker.drain() == []


def test_window_passed_but_created_meanwhile_is_complete(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-LATE", days_ago=2, doi=None))
    pss.answer("INV-LATE", 200)
    end = NOW - timedelta(days=2)
    run(end + timedelta(days=29, hours=12))
    icat.set_doi("INV-LATE", "10.1/late")

    run(end + timedelta(days=31))

    assert [b["operations"] for b in ops_broker.bodies()] == [["mint-proposal"]]
    assert rows(db)["INV-LATE"].status == "complete"


def test_industrial_investigation_is_ignored(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-IND", doi=None, type_name="INDUSTRIAL"))
    pss.answer("INV-IND", 404)

    run()

    assert icat.calls[0][3] == ("INDUSTRIAL",)
    assert ops_broker.drain() == []
    assert rows(db) == {}
    assert pss.hits("INV-IND") == 0


def test_industrial_investigation_asked_for_explicitly_is_skipped(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-IND", doi=None, type_name="INDUSTRIAL"))

    result = run(investigation=("INV-IND", "1"))

    assert result.outcomes[0].skipped == "investigation type INDUSTRIAL is not checked"
    assert ops_broker.drain() == []
    assert rows(db) == {}


def test_investigation_completed_between_runs_stops_being_checked(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-C", doi=None))
    pss.answer("INV-C", 200)

    run()
    assert len(ops_broker.drain()) == 1
    icat.set_doi("INV-C", "10.1/c")  # PACER minted it

    run(NOW + timedelta(days=1))
    assert ops_broker.drain() == []
    row = rows(db)["INV-C"]
    assert (row.status, row.has_doi, row.attempts) == ("complete", True, 2)

    run(NOW + timedelta(days=2))
    assert ops_broker.drain() == []
    assert rows(db)["INV-C"].attempts == 2
    assert pss.hits("INV-C") == 2


def test_still_missing_next_day_is_requested_again_but_not_within_hours(
    db, run, icat, pss, ops_broker
):
    icat.add(investigation("INV-R", doi=None))
    pss.answer("INV-R", 200)

    run()
    run(NOW + timedelta(hours=2))  # a retried task or a manual run the same morning
    assert len(ops_broker.drain()) == 1
    assert rows(db)["INV-R"].attempts == 2

    run(NOW + timedelta(days=1))
    assert [b["operations"] for b in ops_broker.bodies()] == [["mint-proposal"]]
    assert len(rows(db)["INV-R"].operations_sent) == 2


def test_dry_run_sends_and_saves_nothing(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-D1", doi=None), investigation("INV-D2", doi="10.1/d"))
    pss.answer("INV-D1", 404)
    pss.answer("INV-D2", 200)

    result = run(dry_run=True)

    assert ops_broker.drain() == []
    assert rows(db) == {}
    by_name = {o.name: o for o in result.outcomes}
    assert by_name["INV-D1"].operations == ["mint-proposal", "create-panosc-item"]
    assert (
        by_name["INV-D1"]
        .describe(dry_run=True)
        .endswith("would request mint-proposal, create-panosc-item")
    )
    assert by_name["INV-D2"].status == "complete"


def test_dry_run_leaves_an_existing_check_untouched(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-D", doi=None))
    pss.answer("INV-D", 200)
    run()
    ops_broker.drain()

    run(NOW + timedelta(days=1), dry_run=True)

    assert ops_broker.drain() == []
    row = rows(db)["INV-D"]
    assert (row.attempts, row.last_checked_at, len(row.operations_sent)) == (1, NOW, 1)


def test_missing_exchange_is_an_error_not_a_success(db, run, icat, pss, check_settings):
    icat.add(investigation("INV-X", doi=None))
    pss.answer("INV-X", 200)
    settings = dataclasses.replace(
        check_settings, INVESTIGATION_OPS_EXCHANGE="no-such-exchange-for-tests"
    )

    result = run(settings=settings)

    row = rows(db)["INV-X"]
    assert row.status == "error"
    assert "no-such-exchange-for-tests" in row.last_error
    assert "does not exist" in row.last_error
    assert row.operations_sent == []
    assert result.summary()["error"] == 1


def test_unroutable_request_is_an_error(db, run, icat, pss, check_settings, ops_broker):
    icat.add(investigation("INV-NR", doi=None))
    pss.answer("INV-NR", 200)
    settings = dataclasses.replace(check_settings, INVESTIGATION_OPS_ROUTING_KEY="nobody.listens")

    run(settings=settings)

    row = rows(db)["INV-NR"]
    assert row.status == "error"
    assert "unroutable" in row.last_error


def test_one_failing_investigation_never_aborts_the_others(
    db, icat, pss, ops_broker, check_settings
):
    icat.add(investigation("INV-A", doi=None), investigation("INV-BAD", doi=None))
    pss.answer("INV-A", 200)

    class Exploding(PssClient):
        def item_state(self, name, visit_id):
            if name == "INV-BAD":
                raise RuntimeError("boom")
            return super().item_state(name, visit_id)

    services.run_checks(
        db.session,
        check_settings,
        gateway=icat,
        pss=Exploding(pss.url, timeout=1),
        now=NOW,
    )

    assert ops_broker.bodies() == [
        {"name": "INV-A", "visit_id": "1", "operations": ["mint-proposal"]}
    ]
    checks = rows(db)
    assert checks["INV-BAD"].status == "error"
    assert "boom" in checks["INV-BAD"].last_error
    assert checks["INV-A"].status == "pending"


def test_overlapping_run_is_locked_out(db, run, icat, pss, ops_broker, app):
    icat.add(investigation("INV-L", doi=None))
    holder = psycopg2.connect(admin_dsn(app.extensions["settings"].POSTGRES_DB))
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_INVESTIGATION_CHECKS,))
        result = run()
    finally:
        holder.close()

    assert result.locked_out
    assert icat.calls == []
    assert ops_broker.drain() == []
    assert rows(db) == {}
    # The lock is released after a run: the next one proceeds.
    pss.answer("INV-L", 200)
    assert not run().locked_out
    assert len(ops_broker.drain()) == 1


def test_icat_unavailable_is_transient(db, run, icat, ops_broker):
    icat.add(investigation("INV-T", doi=None))
    icat.failures_left = 1

    with pytest.raises(services.TransientCheckError, match="ICAT"):
        run()
    assert rows(db) == {}
    assert icat.closed == 1


def test_broker_down_saves_the_state_and_is_transient(db, run, icat, pss, check_settings):
    icat.add(investigation("INV-B1", doi=None), investigation("INV-B2", doi=None))
    pss.answer("INV-B1", 200)
    pss.answer("INV-B2", 200)
    settings = dataclasses.replace(check_settings, RMQ_HOST="127.0.0.1", RMQ_PORT=1)

    with pytest.raises(services.TransientCheckError, match="broker") as caught:
        run(settings=settings)

    checks = rows(db)
    assert {c.status for c in checks.values()} == {"error"}
    assert all("not published" in c.last_error for c in checks.values())
    assert len(caught.value.run.outcomes) == 2


def test_single_investigation_unknown_to_icat(db, run, icat):
    with pytest.raises(services.CheckError, match="no investigation named"):
        run(investigation=("NOPE", "1"))


def test_single_investigation_is_checked_whatever_its_status(db, run, icat, pss, ops_broker):
    icat.add(investigation("INV-S", doi="10.1/s"))
    pss.answer("INV-S", 200)
    run()
    pss.answer("INV-S", 404)  # the item was deleted from the search index

    run(NOW + timedelta(days=1), investigation=("INV-S", "1"))

    assert ops_broker.bodies() == [
        {"name": "INV-S", "visit_id": "1", "operations": ["create-panosc-item"]}
    ]
    assert rows(db)["INV-S"].status == "pending"


def test_never_an_empty_operations_list():
    with pytest.raises(ValueError, match="empty"):
        services.operations_body("INV", "1", [])
