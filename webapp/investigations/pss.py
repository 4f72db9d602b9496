"""PaNOSC search API (PSS) client: does the search item of an investigation exist? (DESIGN §9)

`GET {PANOSC_API_URL}{PANOSC_ITEM_PATH}` (default `/items/{name}/{visit_id}`; older PACER versions
create items at `/items/{name}`): 200 = present, 404 = absent. PANOSC_API_URL is PACER's `apiUrl`
(the items service), not its search URL. Any other answer, a
timeout or a network error is *unknown*: the check retries later and never asks PACER to create an
item on it (a creation on a 401 or a 502 would duplicate items).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

logger = logging.getLogger(__name__)


#: PANOSC_ITEM_PATH's default (validated at start-up by webapp.config).
DEFAULT_ITEM_PATH = "/items/{name}/{visit_id}"


class PssState(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PssAnswer:
    """The PSS state of one item; `reason` says why it is unknown."""

    state: PssState
    reason: str | None = None
    #: True when the PSS could not be reached at all (network error, timeout), as opposed to a
    #: server that answered something unexpected.
    unreachable: bool = False

    @property
    def present(self) -> bool | None:
        """True / False, or None when unknown (the value stored in `has_pss_item`)."""
        if self.state is PssState.UNKNOWN:
            return None
        return self.state is PssState.PRESENT


class PssClient:
    """Looks items up on the PaNOSC search API; one `requests.Session` per client."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str = "",
        password: str = "",
        timeout: float = 10,
        session: requests.Session | None = None,
        item_path: str = DEFAULT_ITEM_PATH,
    ):
        self.base_url = base_url.rstrip("/")
        self.item_path = item_path
        self.timeout = timeout
        self.session = session or requests.Session()
        # Basic auth only when both are configured; otherwise no Authorization header at all.
        self.session.auth = (username, password) if username and password else None
        self.session.headers.setdefault("Accept", "application/json")

    def item_url(self, name: str, visit_id: str) -> str:
        """URL of the item; each path segment fully quoted (a `/` or `?` in a name stays data)."""
        path = self.item_path.format(name=quote(name, safe=""), visit_id=quote(visit_id, safe=""))
        return self.base_url + path

    def item_state(self, name: str, visit_id: str) -> PssAnswer:
        """Whether the search item of this investigation exists (never raises for HTTP/network)."""
        url = self.item_url(name, visit_id)
        try:
            response = self.session.get(url, timeout=self.timeout, stream=True)
        except requests.Timeout:
            return PssAnswer(
                PssState.UNKNOWN, f"PSS did not answer within {self.timeout:g} s", True
            )
        except requests.RequestException as exc:
            return PssAnswer(PssState.UNKNOWN, f"PSS unreachable: {_short(exc)}", True)
        with response:
            status = response.status_code
        if status == 200:
            return PssAnswer(PssState.PRESENT)
        if status == 404:
            return PssAnswer(PssState.ABSENT)
        if status in (401, 403):
            reason = f"PSS refused the request (HTTP {status}): check PANOSC_API_USERNAME/PASSWORD"
        else:
            reason = f"PSS answered HTTP {status}"
        logger.warning("PSS lookup of %s/%s: %s", name, visit_id, reason)
        return PssAnswer(PssState.UNKNOWN, reason)

    def close(self) -> None:
        self.session.close()


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def pss_client_for(settings: Any) -> PssClient:
    """The PSS client configured by PANOSC_API_URL / _USERNAME / _PASSWORD / _TIMEOUT."""
    return PssClient(
        settings.PANOSC_API_URL,
        username=settings.PANOSC_API_USERNAME,
        password=settings.PANOSC_API_PASSWORD,
        timeout=settings.PANOSC_API_TIMEOUT,
        item_path=settings.PANOSC_ITEM_PATH,
    )
