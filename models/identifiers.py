"""The promoted object identifiers: the one declaration of which identifiers get their own column.

A report's `object_identifiers` is an open-ended mapping (DESIGN §3). The identifiers declared here
are also copied into a column of `messages` with the same name (models/messages.py), and everything
else that names them derives from this tuple:

- the report parser fills the columns from it (webapp/ingest/report.py `promote_identifiers`);
- the message filter has one exact-match argument per identifier (webapp/messages/filters.py), and
  the scope refuses them to metadata-only users (webapp/auth/scope.py `DETAIL_FILTERS`);
- the OpenAPI document lists them as query parameters and summary fields (webapp/api/openapi.py);
- the CSV export has one column per identifier (webapp/messages/presenters.py `CSV_DETAIL_COLUMNS`);
- list rows show them first (webapp/messages/presenters.py), group rules compare the column.

Adding an identifier: declare it here, add its column to `Message`, and add a migration for the
column (and an index if it is filtered on). tests/messages/test_identifiers.py checks the rest
follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Identifier:
    """One promoted identifier: object_identifiers key = column = filter argument = CSV column."""

    name: str
    #: What pages call it (filter labels).
    label: str
    #: The filter argument's description in the OpenAPI document.
    description: str
    #: Stored and compared lower-cased (the filter is then case-insensitive and uses the index).
    lower_case: bool = False
    #: When the identifiers lack `name`: (message type, other key to read) pairs.
    fallback_keys: tuple[tuple[str, str], ...] = ()
    #: When the identifiers lack it: the decoded payload's top-level key of the same name.
    from_payload: bool = False
    #: Shown as a field of the message list's filter form (the others still filter by URL).
    in_filter_form: bool = True

    def normalise(self, value: str | None) -> str | None:
        """`value` as stored in the column and compared by the filter."""
        if value is not None and self.lower_case:
            return value.lower()
        return value

    def candidates(self, message_type: str, identifiers: dict[str, Any], payload: Any) -> list[Any]:
        """Raw values the column may be filled from, best first (the parser takes the first
        usable one): the identifier, its fallback key for this type, the payload's key."""
        found = [identifiers.get(self.name)]
        found += [
            identifiers.get(key) for type_, key in self.fallback_keys if type_ == message_type
        ]
        if self.from_payload and isinstance(payload, dict):
            found.append(payload.get(self.name))
        return found


IDENTIFIERS: tuple[Identifier, ...] = (
    Identifier(
        "instrument",
        "Instrument",
        "Instrument, case-insensitive.",
        lower_case=True,
        from_payload=True,
    ),
    Identifier(
        "investigation",
        "Investigation",
        "Investigation (exact).",
        # proposal-sync names the investigation `name`.
        fallback_keys=(("proposal-sync", "name"),),
    ),
    Identifier("dataset", "Dataset", "Dataset name (exact)."),
    Identifier("dataset_id", "Dataset id", "ICAT dataset id (exact)."),
    Identifier("visit_id", "Visit id", "Visit id (exact).", in_filter_form=False),
)

#: Names of the promoted identifiers, in declaration order (= column order of CSV and API).
PROMOTED_IDENTIFIERS: tuple[str, ...] = tuple(i.name for i in IDENTIFIERS)

BY_NAME: MappingProxyType[str, Identifier] = MappingProxyType({i.name: i for i in IDENTIFIERS})
