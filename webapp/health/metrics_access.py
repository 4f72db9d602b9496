"""Who may read /metrics, and how many `message_type` series it may hold.

- `METRICS_TOKEN`: when set, a request must carry `Authorization: Bearer <token>` (401 otherwise).
- `METRICS_ALLOW_NETWORKS`: when set, the client address (after TRUSTED_PROXIES' X-Forwarded-For)
  must be in one of these networks (403 otherwise).
  When both are set, both must pass. When neither is set /metrics is open, as Prometheus expects
  by default: set one of them whenever the web port is reachable beyond the monitoring network.
- Message types are chosen by producers: only the `MAX_MESSAGE_TYPE_LABELS` most frequent types
  get their own series, the rest are summed under `message_type="other"`, so a producer that
  invents a type per report cannot grow the scrape (or Prometheus) without bound.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Response, request

#: Message types with their own series on /metrics; the rest are aggregated as "other".
MAX_MESSAGE_TYPE_LABELS = 50
OTHER_TYPE = "other"


def refusal(settings) -> Response | None:
    """The 401/403 response for a request that may not read /metrics (None = allowed)."""
    if settings.METRICS_ALLOW_NETWORKS and not _client_allowed(settings.METRICS_ALLOW_NETWORKS):
        return Response("metrics: client address not allowed\n", 403, mimetype="text/plain")
    if settings.METRICS_TOKEN:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.METRICS_TOKEN.encode()
        ):
            return Response(
                "metrics: bearer token required\n",
                401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return None


def _client_allowed(networks: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


@dataclass(frozen=True)
class TypeTotals:
    message_type: str
    total: int
    errored: int
    #: Unix time the type was last seen (None: not known); "other" has the latest of its types.
    last_seen: float | None = None


def cap_message_types(rows: Iterable, limit: int = MAX_MESSAGE_TYPE_LABELS) -> list[TypeTotals]:
    """The `limit` most frequent types (by total, then name), the rest summed as "other".

    `rows` have `message_type`, `total`, `errored` and optionally `last_seen`. A producer type
    literally named "other" joins the aggregate (one series per label value, never two).
    """
    items = [
        TypeTotals(
            str(r.message_type),
            int(r.total or 0),
            int(r.errored or 0),
            _seconds(getattr(r, "last_seen", None)),
        )
        for r in rows
    ]
    named = [t for t in items if t.message_type != OTHER_TYPE]
    named.sort(key=lambda t: (-t.total, t.message_type))
    kept, rest = named[:limit], named[limit:] + [t for t in items if t.message_type == OTHER_TYPE]
    kept.sort(key=lambda t: t.message_type)
    if rest:
        seen = [t.last_seen for t in rest if t.last_seen is not None]
        kept.append(
            TypeTotals(
                OTHER_TYPE,
                sum(t.total for t in rest),
                sum(t.errored for t in rest),
                max(seen) if seen else None,
            )
        )
    return kept


def _seconds(value) -> float | None:
    return None if value is None else float(value)
