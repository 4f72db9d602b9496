"""Partition manager: aligned bounds, idempotence, rows moved out of DEFAULT, retention."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime

import psycopg2
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import admin_dsn
from webapp.config import ALLOWED_PARTITION_MONTHS
from webapp.locks import LOCK_PARTITIONS
from webapp.partitions import services as p


@pytest.mark.parametrize("months", ALLOWED_PARTITION_MONTHS)
def test_bounds_are_calendar_aligned_for_every_allowed_size(months):
    seen: set[tuple[date, date]] = set()
    for year in (2025, 2026, 2028):  # 2028 is a leap year
        for month in range(1, 13):
            for day in (1, 15, 28):
                r = p.aligned_range(datetime(year, month, day, 23, 59, tzinfo=UTC), months)
                assert r.start.day == 1 and (r.start.month - 1) % months == 0
                assert p.add_months(r.start, months) == r.end
                assert r.start <= date(year, month, day) < r.end
                seen.add((r.start, r.end))
    # Planned from any month, ranges never overlap: they tile the calendar.
    ordered = sorted(seen)
    for (s1, e1), (s2, _) in zip(ordered, ordered[1:], strict=False):
        assert e1 <= s2


def test_six_months_means_january_and_july():
    plan = p.planned_ranges(datetime(2026, 11, 23, tzinfo=UTC), 6, 2)
    assert [(r.start, r.end) for r in plan] == [
        (date(2026, 7, 1), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2027, 7, 1)),
        (date(2027, 7, 1), date(2028, 1, 1)),
    ]
    assert [r.name for r in plan] == ["messages_p2026_07", "messages_p2027_01", "messages_p2027_07"]


def test_aware_non_utc_moment_is_converted_to_utc():
    from zoneinfo import ZoneInfo

    moment = datetime(2027, 1, 1, 0, 30, tzinfo=ZoneInfo("Europe/Madrid"))  # still 2026 in UTC
    assert p.aligned_range(moment, 6).start == date(2026, 7, 1)


@pytest.fixture
def fresh_engine(app):
    """A brand-new migrated database (no ranged partitions yet), dropped afterwards."""
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.config import Settings

    name = f"pd_part_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = Settings.from_env(
        environ={**os.environ, "POSTGRES_DB": name}, ENVIRONMENT="testing", DISABLED_AUTH=True
    )
    other = create_app(settings)
    with other.app_context():
        upgrade()
        from webapp.extensions import db

        db.engine.dispose()
    engine = create_engine(settings.database_url)
    yield engine
    engine.dispose()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def names(engine) -> list[str]:
    with engine.connect() as conn:
        return [x.name for x in p.list_partitions(conn)]


NOV_2026 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_create_is_idempotent(fresh_engine):
    with fresh_engine.begin() as conn:
        first = p.ensure_partitions(conn, months=6, ahead=2, now=NOV_2026)
    with fresh_engine.begin() as conn:
        second = p.ensure_partitions(conn, months=6, ahead=2, now=NOV_2026)
    assert first.created == ["messages_p2026_07", "messages_p2027_01", "messages_p2027_07"]
    assert second.created == [] and second.moved_rows == 0
    assert names(fresh_engine) == first.created + ["messages_default"]
    with fresh_engine.connect() as conn:
        assert p.partitions_ahead(conn, now=NOV_2026) == 2


def test_later_runs_in_other_months_extend_without_overlap(fresh_engine):
    for now in (NOV_2026, datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 8, 30, tzinfo=UTC)):
        with fresh_engine.begin() as conn:
            result = p.ensure_partitions(conn, months=6, ahead=2, now=now)
            assert not result.skipped
    assert names(fresh_engine) == [
        "messages_p2026_07",
        "messages_p2027_01",
        "messages_p2027_07",
        "messages_p2028_01",
        "messages_p2028_07",
        "messages_default",
    ]


def test_rows_in_default_are_moved_when_their_partition_is_created(fresh_engine):
    with fresh_engine.begin() as conn:
        p.ensure_partitions(conn, months=6, ahead=0, now=NOV_2026)
        # Messages received in 2028 have no partition yet: they land in DEFAULT.
        conn.execute(
            text(
                "INSERT INTO messages (received_at, report_id, message_type, payload_format, "
                "errored, error_message, object_identifiers, search_text, extra) "
                "SELECT timestamptz '2028-02-01 00:00+00' + n * interval '1 day', 'r' || n, 't', "
                "'text', false, '{}', '{}', '', '{}' FROM generate_series(1, 40) n"
            )
        )
        assert p.default_partition_rows(conn) == 40
    with fresh_engine.begin() as conn:
        result = p.ensure_partitions(conn, months=6, ahead=1, now=datetime(2028, 1, 5, tzinfo=UTC))
    assert result.created == ["messages_p2028_01", "messages_p2028_07"]
    assert result.moved_rows == 40
    with fresh_engine.connect() as conn:
        assert p.default_partition_rows(conn) == 0
        assert conn.execute(text("SELECT count(*) FROM messages_p2028_01")).scalar() == 40
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 40


def test_retention_dry_run_lists_exactly_the_expired_partitions(fresh_engine):
    for now in (datetime(2024, 3, 1, tzinfo=UTC), NOV_2026):
        with fresh_engine.begin() as conn:
            p.ensure_partitions(conn, months=6, ahead=2, now=now)
    # 12 months before Nov 2026 is 1 Nov 2025: partitions ending on or before it expire.
    with fresh_engine.begin() as conn:
        dry = p.drop_expired_partitions(conn, retention_months=12, dry_run=True, now=NOV_2026)
    assert [x.name for x in dry] == ["messages_p2024_01", "messages_p2024_07", "messages_p2025_01"]
    assert "messages_p2024_01" in names(fresh_engine)  # dry run dropped nothing
    with fresh_engine.begin() as conn:
        dropped = p.drop_expired_partitions(conn, retention_months=12, now=NOV_2026)
    assert [x.name for x in dropped] == [x.name for x in dry]
    assert names(fresh_engine) == [
        "messages_p2026_07",
        "messages_p2027_01",
        "messages_p2027_07",
        "messages_default",
    ]


def test_unset_retention_expires_nothing(fresh_engine):
    with fresh_engine.begin() as conn:
        p.ensure_partitions(conn, months=6, ahead=2, now=datetime(2020, 1, 1, tzinfo=UTC))
        assert p.expired_partitions(conn, retention_months=None) == []


def test_manager_skips_while_another_run_holds_the_lock(fresh_engine):
    with fresh_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_PARTITIONS})
        with fresh_engine.begin() as conn:
            result = p.ensure_partitions(conn, months=6, ahead=2, now=NOV_2026)
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_PARTITIONS})
    assert result.locked_out and result.created == []


def test_cli_create_list_and_drop_expired(app, db):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["partitions", "create"])
    assert out.exit_code == 0, out.output
    assert "up to date" in out.output  # the session fixture already created them
    out = runner.invoke(args=["partitions", "list"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].split()[:3] == ["partition", "from", "to"]
    assert any(line.startswith("messages_default") for line in lines)
    assert len([line for line in lines if line.startswith("messages_p")]) >= 3
    out = runner.invoke(args=["partitions", "drop-expired", "--dry-run"])
    assert out.exit_code == 0 and "MESSAGE_RETENTION_MONTHS is not set" in out.output
