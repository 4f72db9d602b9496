"""ICAT_TIMEZONE (issue 19 §2.1): ICAT reads `{ts ...}` literals in its own zone, which may differ
from PACER's; it defaults to PACER_TIMEZONE."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from webapp.config import ConfigError, Settings
from webapp.investigations.gateway import finished_investigations_query, gateway_for

pytestmark = pytest.mark.unit

BASE = {"RMQ_HOST": "localhost", "ENVIRONMENT": "testing", "DISABLED_AUTH": "true"}
SINCE = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_defaults_to_pacer_timezone():
    s = Settings.from_env({**BASE, "PACER_TIMEZONE": "Europe/Madrid"})
    assert s.ICAT_TIMEZONE == ""
    assert gateway_for(s).server_timezone == zoneinfo.ZoneInfo("Europe/Madrid")


def test_own_zone_is_used_in_the_query_literals():
    s = Settings.from_env(
        {**BASE, "PACER_TIMEZONE": "Europe/Madrid", "ICAT_TIMEZONE": "America/New_York"}
    )
    gateway = gateway_for(s)
    assert gateway.server_timezone == zoneinfo.ZoneInfo("America/New_York")
    query = finished_investigations_query(SINCE, SINCE, (), tz=gateway.server_timezone)
    assert "i.endDate >= {ts 2026-07-01 08:00:00}" in query  # EDT, not Madrid's 14:00


def test_unknown_zone_fails_start_up_naming_the_variable():
    with pytest.raises(ConfigError, match="ICAT_TIMEZONE: unknown IANA time zone"):
        Settings.from_env({**BASE, "ICAT_TIMEZONE": "Mars/Olympus"})
