"""The three definitions of the rollups agree (webapp.stats.rollups): the column lists are the
tables' columns, the trigger functions the migrations installed are the SQL rollups.py generates
(the frozen migrations generate it too), and what the ingestion writer adds equals what the
rebuild and a direct aggregate over `messages` give, hourly and daily."""

from __future__ import annotations

import ast
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import truncate
from tests.stats.support import basic_mix, error_body, ok_body
from tests.stats.test_rollups import _assert_daily_consistent, _expected, _rebuild, _snapshot
from webapp.stats import rollups

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def _migration(filename: str):
    """A migration module loaded from its file (alembic's `op` is only a proxy until it runs)."""
    spec = importlib.util.spec_from_file_location(
        f"_migration_{filename[:-3]}", VERSIONS / filename
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migrations_generate_the_trigger_sql_rollups_generates():
    daily = _migration("20261201_daily_rollups.py")
    generated = {
        name: daily._function(name, body)
        for name, body in {**daily.MS_FUNCTIONS, **daily.EG_FUNCTIONS}.items()
    }
    # As installed before the writer folded its batches itself (rollups_direct_ingest).
    assert generated == rollups.daily_trigger_functions(direct=False)
    assert daily.TRIGGERS == rollups.DAILY_TRIGGERS
    assert daily.LOCK_NAMESPACES == rollups.DAY_LOCK_NAMESPACES
    assert daily.MS_KEY == ", ".join(rollups.MESSAGE_STATS_KEY)
    assert daily.MS_COLUMNS == ", ".join(rollups.MESSAGE_STATS_MEASURES)
    assert daily.EG_KEY == ", ".join(rollups.ERROR_GROUP_STATS_KEY)
    assert daily.EG_COLUMNS == ", ".join(
        rollups.ERROR_GROUP_STATS_MEASURES + rollups.ERROR_GROUP_STATS_DAILY_OPEN
    )
    lock_order = _migration("20261202_rollup_lock_order.py")
    assert lock_order.ACK_FUNCTION == rollups.ACK_FUNCTION
    monthly = _migration("20261204_monthly_rollups.py")
    assert monthly.FUNCTIONS == rollups.monthly_trigger_functions(direct=False)
    assert monthly.TRIGGERS == rollups.MONTHLY_TRIGGERS
    assert monthly.LOCK_NAMESPACES == rollups.MONTH_LOCK_NAMESPACES
    direct = _migration("20261205_rollups_direct_ingest.py")
    assert direct.FUNCTIONS == {
        **rollups.daily_trigger_functions(),
        **rollups.monthly_trigger_functions(),
    }
    # Its downgrade restores what the two earlier revisions installed.
    assert {name: sql.replace(direct.SKIP, "") for name, sql in direct.FUNCTIONS.items()} == {
        **rollups.daily_trigger_functions(direct=False),
        **rollups.monthly_trigger_functions(direct=False),
    }


def test_the_monthly_triggers_are_the_daily_ones_one_level_up():
    """Same statements, from the daily tables into the monthly ones, month locks apart from the
    day locks."""
    daily, monthly = rollups.daily_trigger_functions(), rollups.monthly_trigger_functions()
    assert [n.replace("_monthly_", "_daily_") for n in monthly] == list(daily)
    assert set(rollups.MONTH_LOCK_NAMESPACES.values()).isdisjoint(
        rollups.DAY_LOCK_NAMESPACES.values()
    )
    for name, sql in monthly.items():
        assert "_daily_on_" not in sql
        if not name.endswith("_truncate"):
            assert "interval '1 month') AT TIME ZONE 'UTC'" in sql or name.endswith("_insert")


def test_the_migrations_import_nothing_from_the_application():
    """Applied revisions must keep meaning what they meant: their SQL is their own copy."""
    for path in VERSIONS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("webapp", "models")), path.name


def test_the_database_runs_the_trigger_functions_rollups_generates(pg):
    expected = {
        name: rollups.function_body(sql) for name, sql in rollups.daily_trigger_functions().items()
    }
    expected.update(
        (name, rollups.function_body(sql))
        for name, sql in rollups.monthly_trigger_functions().items()
    )
    expected["error_group_stats_on_ack"] = rollups.function_body(rollups.ACK_FUNCTION)
    with pg.cursor() as cur:
        installed = rollups.installed_function_bodies(cur, expected)
        cur.execute(
            "SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "WHERE tgname LIKE '%%stats_daily_%%' AND NOT tgisinternal"
        )
        triggers = dict(cur.fetchall())
        cur.execute(
            "SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "WHERE tgname LIKE '%%stats_monthly_%%' AND NOT tgisinternal"
        )
        monthly_triggers = dict(cur.fetchall())
    pg.rollback()
    assert installed == expected
    for hourly, daily, event, referencing in rollups.DAILY_TRIGGERS:
        definition = triggers[f"{daily}_{event.lower()}"]
        assert f"AFTER {event} ON public.{hourly}" in definition
        assert f"EXECUTE FUNCTION {daily}_on_{event.lower()}()" in definition
        if referencing:
            assert f"REFERENCING {referencing}" in definition
    assert len(triggers) == len(rollups.DAILY_TRIGGERS)
    for daily, monthly, event, referencing in rollups.MONTHLY_TRIGGERS:
        definition = monthly_triggers[f"{monthly}_{event.lower()}"]
        assert f"AFTER {event} ON public.{daily}" in definition
        assert "FOR EACH STATEMENT" in definition
        assert f"EXECUTE FUNCTION {monthly}_on_{event.lower()}()" in definition
        if referencing:
            assert f"REFERENCING {referencing}" in definition
    assert len(monthly_triggers) == len(rollups.MONTHLY_TRIGGERS)


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("message_stats", rollups.MESSAGE_STATS_KEY + rollups.MESSAGE_STATS_MEASURES),
        ("message_stats_daily", rollups.MESSAGE_STATS_KEY + rollups.MESSAGE_STATS_MEASURES),
        ("message_stats_monthly", rollups.MESSAGE_STATS_KEY + rollups.MESSAGE_STATS_MEASURES),
        (
            "error_group_stats_monthly",
            rollups.ERROR_GROUP_STATS_KEY
            + rollups.ERROR_GROUP_STATS_MEASURES
            + rollups.ERROR_GROUP_STATS_DAILY_OPEN,
        ),
        ("error_group_stats", rollups.ERROR_GROUP_STATS_KEY + rollups.ERROR_GROUP_STATS_MEASURES),
        (
            "error_group_stats_daily",
            rollups.ERROR_GROUP_STATS_KEY
            + rollups.ERROR_GROUP_STATS_MEASURES
            + rollups.ERROR_GROUP_STATS_DAILY_OPEN,
        ),
    ],
)
def test_the_column_lists_are_the_tables_columns(pg, table, columns):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
            (table,),
        )
        actual = {r[0] for r in cur.fetchall()}
    pg.rollback()
    assert set(columns) == actual


def test_error_groups_columns_are_the_tables_columns(pg):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'error_groups'"
        )
        actual = {r[0] for r in cur.fetchall()}
    pg.rollback()
    # The rest (id, timestamps of the page) are not rollup data.
    assert set(rollups.ERROR_GROUPS_COLUMNS) <= actual


def test_writer_rebuild_and_direct_aggregate_agree(app, db, pg, write_reports):
    truncate(app)
    base = datetime(2026, 3, 28, 22, 40, tzinfo=UTC)  # batches on both sides of midnight
    write_reports(*basic_mix(), now=base)
    write_reports(*basic_mix(), ok_body(ms=(0, 10_000)), now=base + timedelta(minutes=45))
    write_reports(
        error_body(error="InvestigationNotFound: Investigation 1 not found"),
        ok_body(instrument="BL06", ms=(0, 0)),
        now=base + timedelta(hours=3),
    )
    written = _snapshot(pg)
    stats, groups, per_fp = _expected(pg)
    assert written[0] == stats
    assert {k: v[:5] for k, v in written[1].items()} == groups
    assert {k: v[:3] for k, v in written[2].items()} == per_fp
    daily = _assert_daily_consistent(pg, stats)
    pg.rollback()

    _rebuild(app)
    pg.rollback()
    assert _snapshot(pg) == written
    assert _assert_daily_consistent(pg, stats) == daily
    pg.rollback()


def test_stats_imports_nothing_from_ingest():
    """The dependency points one way: ingest -> stats (the writer feeds the rollups)."""
    stats_dir = Path(rollups.__file__).parent
    for path in stats_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                assert "ingest" not in module, f"{path.name} imports {module}"
