"""ICAT behind a small interface: the investigations the check must look at (DESIGN §9).

`IcatGateway` is what the check needs from ICAT; `PythonIcatGateway` implements it with
python-icat. `icat.client.Client(url)` talks to the server in its constructor, so the client is
created lazily through an injectable factory (tests pass a stub; nothing connects at import or at
construction).

ICAT's query language takes string literals in single quotes with `''` for a quote, and timestamps
as `{ts yyyy-mm-dd hh:mm:ss}` without a zone, read by the server in its own time zone
(ICAT_TIMEZONE, by default PACER_TIMEZONE: ICAT may run elsewhere than PACER). Every
literal goes through `jpql_string` / `jpql_timestamp`; no value is ever pasted in raw. ICAT's
tokenizer only skips plain spaces, so queries are single-line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

logger = logging.getLogger(__name__)

#: Investigations fetched per ICAT search call (keyset pages on the id).
PAGE_SIZE = 500

#: Key of `app.extensions` holding an optional `factory(settings) -> IcatGateway` (a test seam).
GATEWAY_FACTORY_KEY = "investigations.gateway_factory"


class IcatUnavailable(Exception):
    """ICAT could not answer (network, server error, login refused): try again later."""


@dataclass(frozen=True)
class IcatInvestigation:
    """What the check needs to know about one ICAT investigation."""

    name: str
    visit_id: str
    doi: str | None
    end_date: datetime | None
    type_name: str | None = None

    @property
    def has_doi(self) -> bool:
        return bool(self.doi and self.doi.strip())


class IcatGateway(Protocol):
    """The ICAT queries the investigation check uses."""

    def finished_investigations(
        self, since: datetime, until: datetime, excluded_types: Sequence[str]
    ) -> list[IcatInvestigation]:
        """Investigations with `since <= endDate <= until` whose type is not excluded."""
        ...

    def find_investigation(self, name: str, visit_id: str) -> IcatInvestigation | None:
        """The investigation with this name and visit id (any end date and type), or None."""
        ...

    def close(self) -> None:
        """End the ICAT session, if any."""
        ...


# ---- query literals ---------------------------------------------------------------------------


def jpql_string(value: str) -> str:
    """`value` as an ICAT query string literal: single quotes, a quote doubled."""
    value = str(value)
    if "\x00" in value:
        # ICAT's tokenizer treats NUL as the end of the query: refuse rather than truncate.
        raise ValueError("an ICAT query literal cannot contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def jpql_timestamp(moment: datetime, tz: tzinfo = UTC) -> str:
    """`moment` as an ICAT timestamp literal, expressed in the ICAT server's time zone `tz`."""
    if moment.tzinfo is None:
        raise ValueError("jpql_timestamp needs an aware datetime")
    return "{ts " + moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") + "}"


def finished_investigations_query(
    since: datetime,
    until: datetime,
    excluded_types: Sequence[str],
    *,
    after_id: int = 0,
    limit: int = PAGE_SIZE,
    tz: tzinfo = UTC,
) -> str:
    """The ICAT query for one page of finished, non-excluded investigations (keyset on id)."""
    conditions = [
        f"i.endDate >= {jpql_timestamp(since, tz)}",
        f"i.endDate <= {jpql_timestamp(until, tz)}",
    ]
    if excluded_types:
        types = ", ".join(jpql_string(t) for t in excluded_types)
        conditions.append(f"t.name NOT IN ({types})")
    conditions.append(f"i.id > {int(after_id)}")
    return (
        "SELECT i FROM Investigation i JOIN i.type t WHERE "
        + " AND ".join(conditions)
        + f" ORDER BY i.id INCLUDE i.type LIMIT 0, {int(limit)}"
    )


def investigation_query(name: str, visit_id: str) -> str:
    """The ICAT query for one investigation by name and visit id."""
    return (
        "SELECT i FROM Investigation i WHERE "
        f"i.name = {jpql_string(name)} AND i.visitId = {jpql_string(visit_id)} "
        "ORDER BY i.id INCLUDE i.type LIMIT 0, 2"
    )


# ---- python-icat adapter ----------------------------------------------------------------------


def _default_client_factory(url: str) -> Any:
    import icat.client

    return icat.client.Client(url)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "ICAT is unreachable or failing right now"."""
    import icat.exception
    import suds.transport

    return (
        OSError,  # includes urllib.error.URLError, socket timeouts, connection refused
        suds.transport.TransportError,
        icat.exception.ICATInternalError,
    )


class PythonIcatGateway:
    """`IcatGateway` over python-icat, logging in with an authenticator plugin and credentials."""

    def __init__(
        self,
        url: str,
        auth_plugin: str,
        username: str,
        password: str,
        *,
        client_factory: Callable[[str], Any] | None = None,
        server_timezone: tzinfo = UTC,
        page_size: int = PAGE_SIZE,
    ):
        self.url = url
        self.auth_plugin = auth_plugin
        self.username = username
        self._password = password
        self.client_factory = client_factory or _default_client_factory
        self.server_timezone = server_timezone
        self.page_size = page_size
        self._client: Any = None
        self._logged_in = False

    # -- session --------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._client is None:
            try:
                self._client = self.client_factory(self.url)
            except _transient_errors() as exc:
                raise IcatUnavailable(f"cannot reach ICAT at {self.url}: {exc}") from exc
        if not self._logged_in:
            self._login()
        return self._client

    def _login(self) -> None:
        import icat.exception

        try:
            self._client.login(
                self.auth_plugin, {"username": self.username, "password": self._password}
            )
        except icat.exception.ICATSessionError as exc:
            # Wrong credentials: retrying will not help, but a person must see it.
            raise IcatUnavailable(f"ICAT refused the login of {self.username!r}: {exc}") from exc
        except _transient_errors() as exc:
            raise IcatUnavailable(f"ICAT login failed: {exc}") from exc
        self._logged_in = True
        logger.info("logged in to ICAT %s as %s (%s)", self.url, self.username, self.auth_plugin)

    def _search(self, query: str) -> list[Any]:
        import icat.exception

        client = self._connect()
        try:
            try:
                return client.search(query)
            except icat.exception.ICATSessionError:
                # The session expired (or the server restarted): log in again, once.
                logger.info("ICAT session expired; logging in again")
                self._logged_in = False
                self._login()
                return client.search(query)
        except _transient_errors() as exc:
            raise IcatUnavailable(f"ICAT search failed: {exc}") from exc
        except icat.exception.ICATSessionError as exc:
            raise IcatUnavailable(f"ICAT session refused after a new login: {exc}") from exc

    def close(self) -> None:
        if self._client is not None and self._logged_in:
            try:
                self._client.logout()
            except Exception:  # noqa: BLE001 - best effort at the end of a run
                logger.warning("ICAT logout failed", exc_info=True)
        self._logged_in = False

    # -- queries --------------------------------------------------------------------------------
    def finished_investigations(
        self, since: datetime, until: datetime, excluded_types: Sequence[str]
    ) -> list[IcatInvestigation]:
        found: list[IcatInvestigation] = []
        after_id = 0
        while True:
            query = finished_investigations_query(
                since,
                until,
                excluded_types,
                after_id=after_id,
                limit=self.page_size,
                tz=self.server_timezone,
            )
            page = self._search(query)
            found.extend(self._record(entity) for entity in page)
            if len(page) < self.page_size:
                return found
            after_id = int(page[-1].id)

    def find_investigation(self, name: str, visit_id: str) -> IcatInvestigation | None:
        page = self._search(investigation_query(name, visit_id))
        if len(page) > 1:
            logger.warning(
                "ICAT has %d investigations named %r visit %r; checking the first",
                len(page),
                name,
                visit_id,
            )
        return self._record(page[0]) if page else None

    def _record(self, entity: Any) -> IcatInvestigation:
        end = getattr(entity, "endDate", None)
        if isinstance(end, datetime) and end.tzinfo is None:
            end = end.replace(tzinfo=self.server_timezone)
        inv_type = getattr(entity, "type", None)
        return IcatInvestigation(
            name=str(entity.name),
            visit_id=str(entity.visitId),
            doi=getattr(entity, "doi", None),
            end_date=end,
            type_name=getattr(inv_type, "name", None),
        )


def gateway_for(settings: Any, app: Any = None) -> IcatGateway:
    """The ICAT gateway for these settings (or the factory installed on `app.extensions`)."""
    if app is not None and app.extensions.get(GATEWAY_FACTORY_KEY):
        return app.extensions[GATEWAY_FACTORY_KEY](settings)
    return PythonIcatGateway(
        settings.ICAT_SERVER_URL,
        settings.ICAT_AUTH_PLUGIN,
        settings.ICAT_USERNAME,
        settings.ICAT_PASSWORD,
        server_timezone=settings.icat_timezone,
    )
