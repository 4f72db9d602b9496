"""Replay quarantined bodies through the current parser (after a fix or a config change)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extras

from .writer import ParseOptions, RawReport, classify, write_batch


@dataclass
class ReplayResult:
    ingested: int = 0
    duplicates: int = 0
    still_invalid: int = 0


def replay_quarantine(conn, options: ParseOptions, ids: list[int] | None = None) -> ReplayResult:
    """Ingest every waiting quarantined body (or those of `ids`) that is now a valid report;
    keep the rest.

    Each replayed row is marked (replayed_at, replayed_message_id) in the same transaction that
    stores its message; still-invalid rows get their current reason and stay waiting.
    """
    result = ReplayResult()
    with conn.cursor(cursor_factory=psycopg2.extras.DictCursor) as cur:
        query = (
            "SELECT id, body, content_type, headers, routing_key FROM quarantined_reports "
            "WHERE replayed_at IS NULL"
        )
        params: tuple = ()
        if ids is not None:  # an empty selection selects nothing (None: every waiting body)
            query += " AND id = ANY(%s::bigint[])"
            params = (ids,)
        cur.execute(query + " ORDER BY id", params)
        rows = cur.fetchall()
    conn.commit()
    for row in rows:
        raw = RawReport(
            body=bytes(row["body"]),
            content_type=row["content_type"],
            headers=row["headers"] or {},
            routing_key=row["routing_key"],
        )
        parsed, rejected = classify([raw], options)
        if rejected:
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE quarantined_reports SET reason = %s WHERE id = %s",
                    (rejected[0][1], row["id"]),
                )
            conn.commit()
            result.still_invalid += 1
            continue
        batch = write_batch(conn, [raw], options)
        message_id = batch.ids_by_report.get(parsed[0][1].report_id)
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE quarantined_reports SET replayed_at = now(), replayed_message_id = %s "
                "WHERE id = %s",
                (message_id, row["id"]),
            )
        conn.commit()
        if batch.stored:
            result.ingested += 1
        else:
            result.duplicates += 1
    return result
