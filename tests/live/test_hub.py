"""The per-process LISTEN hub: every commit reaches every subscription; outages are flagged."""

from __future__ import annotations

import time

import pytest

from tests.factories import report_body as body
from tests.processes import wait_for
from webapp.live.hub import Batch, Hub, Subscription


@pytest.fixture
def hub(app, db):
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    hub = Hub(url)
    yield hub
    hub.stop()


def test_each_commit_reaches_every_subscription(hub, write_reports):
    first, second = hub.subscribe(), hub.subscribe()
    assert hub.listening.wait(10)
    ids = write_reports(body(), body(), body())
    for sub in (first, second):
        batches, gap = sub.wait(5)
        assert not gap
        assert len(batches) == 1
        assert (batches[0].min_id, batches[0].max_id) == (min(ids), max(ids))
    hub.unsubscribe(second)
    more = write_reports(body())
    assert first.wait(5)[0][0].min_id == more[0]
    assert second.wait(0.3) == ([], False)


def test_malformed_notifications_are_ignored(hub, pg, write_reports):
    sub = hub.subscribe()
    assert hub.listening.wait(10)
    with pg.cursor() as cur:
        cur.execute("SELECT pg_notify('pacer_messages', 'not json')")
    pg.commit()
    (mid,) = write_reports(body())
    batches, _ = sub.wait(5)
    assert [b.min_id for b in batches] == [mid]


def test_a_lost_listen_connection_reconnects_and_reports_a_gap(hub, pg, write_reports):
    sub = hub.subscribe()
    assert hub.listening.wait(10)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'pacer-dashboard-live' AND datname = current_database()"
        )
    pg.commit()
    deadline = time.monotonic() + 10
    gap = False
    while time.monotonic() < deadline and not gap:
        gap = sub.wait(0.5)[1]
    assert gap, "subscribers must learn that updates may have been missed"
    wait_for(hub.listening.is_set, 10, "the hub to listen again")
    (mid,) = write_reports(body())
    assert sub.wait(5)[0][0].min_id == mid


def test_a_slow_subscription_merges_its_backlog():
    sub = Subscription()
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(200):
        at = start + timedelta(seconds=n)
        sub.deliver(Batch(n * 10 + 1, n * 10 + 10, at, at))
    batches, _ = sub.wait(0)
    assert len(batches) <= 65
    assert min(b.min_id for b in batches) == 1 and max(b.max_id for b in batches) == 2000
    assert min(b.received_from for b in batches) == start
