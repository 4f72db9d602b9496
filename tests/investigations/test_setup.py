"""The /investigations page explains itself: which variables are missing, when the next run
starts, and a dry run now for administrators (POST with CSRF; 403 for anyone else)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tests.auth.support import csrf_token, login
from webapp.investigations import services

from .conftest import investigation


def test_unconfigured_page_names_the_missing_variables_and_the_next_run(app, client, db):
    html = client.get("/investigations").get_data(as_text=True)
    assert 'data-config="missing"' in html
    for name in ("ICAT_SERVER_URL", "ICAT_USERNAME", "ICAT_PASSWORD", "PANOSC_API_URL"):
        assert f"<code>{name}</code>" in html
    assert "not configured: see above" in html
    expected = services.next_scheduled_run(app.extensions["settings"])
    assert f'data-next-run="{expected.isoformat()}"' in html
    assert "INVESTIGATION_CHECKS_CRON=30 4 * * *" in html
    # DISABLED_AUTH: everyone is an administrator and is offered the dry run.
    assert 'data-action="dry-run"' in html


def test_configured_page_says_so(client, configured_app):
    html = client.get("/investigations").get_data(as_text=True)
    assert 'data-config="ok"' in html and 'data-config="missing"' not in html


@pytest.mark.parametrize(
    ("cron", "now", "expected"),
    [
        ("30 4 * * *", datetime(2026, 5, 10, 4, 29, tzinfo=UTC), datetime(2026, 5, 10, 4, 30)),
        ("30 4 * * *", datetime(2026, 5, 10, 4, 31, tzinfo=UTC), datetime(2026, 5, 11, 4, 30)),
        ("0 */6 * * 1", datetime(2026, 5, 10, 4, 31, tzinfo=UTC), datetime(2026, 5, 11, 0, 0)),
    ],
)
def test_next_scheduled_run_follows_the_cron(settings, cron, now, expected):
    got = services.next_scheduled_run(
        dataclasses.replace(settings, INVESTIGATION_CHECKS_CRON=cron), now
    )
    assert got == expected.replace(tzinfo=UTC)


def test_anonymous_icat_needs_no_password(settings):
    anon = dataclasses.replace(
        settings,
        ICAT_SERVER_URL="https://icat.example.org",
        ICAT_USERNAME="reader",
        ICAT_AUTH_PLUGIN="anon",
        PANOSC_API_URL="https://pss.example.org/api",
    )
    assert services.missing_configuration(anon) == []
    assert services.missing_configuration(settings) == list(services.REQUIRED_SETTINGS)


def test_admin_dry_run_shows_what_would_be_requested(client, configured_app, icat, pss, ops_broker):
    # The route runs "now" (the real clock), not at the tests' NOW.
    icat.add(
        dataclasses.replace(
            investigation("INV-NODOI", doi=None), end_date=datetime.now(UTC) - timedelta(days=2)
        )
    )
    pss.answer("INV-NODOI", 200)
    response = client.post("/investigations/dry-run", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "nothing was published, nothing saved" in html
    assert "INV-NODOI (visit 1): pending [DOI missing, PSS item present]" in html
    assert "would request mint-proposal" in html
    assert ops_broker.drain() == []
    # Nothing saved: the table is still empty.
    assert "INV-NODOI" not in client.get("/investigations").get_data(as_text=True)


def test_dry_run_unconfigured_says_what_is_missing(client, db):
    response = client.post(
        "/investigations/dry-run",
        data={"csrf_token": csrf_token(client)},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="dry-run-result"')
    assert "not configured: set ICAT_SERVER_URL" in html


def test_dry_run_needs_csrf(client, db):
    assert client.post("/investigations/dry-run").status_code == 400


def test_non_admins_do_not_see_or_run_the_dry_run(client, db, auth_enabled, make_user, make_group):
    viewers = make_group("viewers", identifier_rules={"instrument": ["BL06"]})
    login(client, make_user("viewer", groups=[viewers]))
    html = client.get("/investigations").get_data(as_text=True)
    assert 'data-config="missing"' in html
    assert 'data-action="dry-run"' not in html
    response = client.post("/investigations/dry-run", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 403
