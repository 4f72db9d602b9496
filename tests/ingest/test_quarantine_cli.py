"""`flask quarantine {list,replay}` (webapp/ingest/cli.py) registered on the app."""

from __future__ import annotations

from datetime import UTC, datetime


def test_quarantine_list_shows_waiting_bodies_with_their_reason(app, db):
    from models import QuarantinedReport

    db.session.add(
        QuarantinedReport(
            received_at=datetime.now(UTC),
            body=b"not a report",
            reason="body is not JSON",
            content_type="text/plain",
            headers={},
            routing_key="message.logging",
        )
    )
    db.session.flush()
    out = app.test_cli_runner().invoke(args=["quarantine", "list"])
    assert out.exit_code == 0, out.output
    assert "body is not JSON" in out.output and "waiting" in out.output


def test_quarantine_replay_of_no_body_ingests_nothing(app, db):
    out = app.test_cli_runner().invoke(args=["quarantine", "replay", "--id", "-1"])
    assert out.exit_code == 0, out.output
    assert "ingested 0, already stored 0, still invalid 0" in out.output
