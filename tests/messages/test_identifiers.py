"""One list of promoted identifiers (models/identifiers.py): the filter, the scope's refusal of
identifier filters, the OpenAPI parameters, the CSV columns, list rows and the report parser all
derive from it, so adding an identifier touches the declaration, the model and a migration only."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from werkzeug.exceptions import Forbidden

from models import Message
from models.identifiers import IDENTIFIERS, PROMOTED_IDENTIFIERS

ROOT = Path(__file__).resolve().parents[2]


def test_every_declared_identifier_is_a_column_filter_parameter_csv_column_and_promoted():
    from webapp.api.openapi import FILTER_PARAMETERS, SUMMARY_SCHEMA
    from webapp.auth.scope import DETAIL_FILTERS, METADATA_FIELDS
    from webapp.ingest.report import promote_identifiers
    from webapp.messages.filters import MessageFilter
    from webapp.messages.presenters import CSV_DETAIL_COLUMNS

    filter_fields = {f.name for f in dataclasses.fields(MessageFilter)}
    parameters = {p["name"]: p for p in FILTER_PARAMETERS}
    for identifier in IDENTIFIERS:
        name = identifier.name
        assert hasattr(Message, name), f"models.Message has no column {name}"
        assert name in filter_fields
        assert parameters[name]["description"] == identifier.description
        assert name in SUMMARY_SCHEMA["properties"]
        assert name in CSV_DETAIL_COLUMNS
        assert name in DETAIL_FILTERS and name not in METADATA_FIELDS
        assert promote_identifiers("any-type", {name: "X1"}, None)[name] == identifier.normalise(
            "X1"
        )
    assert set(promote_identifiers("any-type", {}, None)) == set(PROMOTED_IDENTIFIERS)
    # The CSV's identifier columns are the declaration, in its order.
    start = CSV_DETAIL_COLUMNS.index(PROMOTED_IDENTIFIERS[0])
    assert CSV_DETAIL_COLUMNS[start : start + len(IDENTIFIERS)] == PROMOTED_IDENTIFIERS


def test_identifier_filters_parse_and_apply_from_the_declaration():
    from sqlalchemy import select

    from webapp.messages.filters import MessageFilter

    args = {identifier.name: "Value-1" for identifier in IDENTIFIERS}
    flt = MessageFilter.from_args(args)
    for identifier in IDENTIFIERS:
        assert getattr(flt, identifier.name) == identifier.normalise("Value-1")
        assert (identifier.name, identifier.normalise("Value-1")) in flt.to_args()
    sql = str(flt.apply(select(Message.id)))
    for identifier in IDENTIFIERS:
        assert f"messages.{identifier.name} = " in sql
    assert MessageFilter.from_args(flt.url_args()) == flt


def test_scope_check_filters_refuses_every_identifier_to_metadata_only_users():
    from webapp.auth.scope import ANONYMOUS, DETAIL_FILTERS, admin_scope
    from webapp.messages.filters import MessageFilter

    for name in DETAIL_FILTERS:
        value = "v1:abc" if name == "fingerprint" else "abcd"
        flt = MessageFilter.from_args({name: value})
        with pytest.raises(Forbidden, match=f"Filtering by {name} needs a login"):
            ANONYMOUS.check_filters(flt)
        admin_scope().check_filters(flt)
    # Metadata filters stay open to everyone.
    ANONYMOUS.check_filters(MessageFilter.from_args({"hash": "abcdef", "status": "errored"}))


def test_parser_promotes_fallbacks_and_payload_values_as_declared():
    from webapp.ingest.report import promote_identifiers

    promoted = promote_identifiers(
        "proposal-sync", {"name": "2022097034", "visit_id": "1"}, {"instrument": "BL13"}
    )
    assert promoted["investigation"] == "2022097034"
    assert promoted["instrument"] == "bl13"
    assert promoted["visit_id"] == "1"
    # A list is no usable column value: the next candidate (the fallback key) is taken.
    assert (
        promote_identifiers("proposal-sync", {"investigation": ["a"], "name": "n"}, None)[
            "investigation"
        ]
        == "n"
    )
    assert promote_identifiers("dataset-ingestion", {"name": "n"}, None)["investigation"] is None


FAKE_IDENTIFIER = textwrap.dedent(
    """
    import dataclasses, json

    import models.identifiers as ids

    # What adding an identifier means: the declaration ...
    extra = ids.Identifier("beamline", "Beamline", "Beamline (exact).", lower_case=True)
    ids.IDENTIFIERS = (*ids.IDENTIFIERS, extra)
    ids.PROMOTED_IDENTIFIERS = tuple(i.name for i in ids.IDENTIFIERS)
    ids.BY_NAME = ids.MappingProxyType({i.name: i for i in ids.IDENTIFIERS})

    # ... and the model's column (the migration only matters to a database).
    from sqlalchemy import Text
    from sqlalchemy.orm import mapped_column

    from models import Message

    Message.beamline = mapped_column(Text)

    from sqlalchemy import select

    from webapp.api.openapi import FILTER_PARAMETERS, SUMMARY_SCHEMA
    from webapp.messages.presenters import CSV_DETAIL_COLUMNS
    from webapp.auth.scope import ANONYMOUS, DETAIL_FILTERS, Rule
    from webapp.auth.scope import admin_scope
    from webapp.ingest.report import ParsedReport, promote_identifiers
    from webapp.ingest.writer import MESSAGE_COLUMNS
    from webapp.messages.filters import MessageFilter
    from webapp.messages.presenters import CSV_QUERY_COLUMNS, filter_form
    from webapp.stats.filters import UNSUPPORTED

    flt = MessageFilter.from_args({"beamline": "I03"})
    try:
        ANONYMOUS.check_filters(flt)
        refused = False
    except Exception:
        refused = True
    rule = Rule(identifiers=(("beamline", frozenset({"i03"})),))
    print(json.dumps({
        "filter": flt.beamline,
        "sql": str(flt.apply(select(Message.id))),
        "parameter": [p["description"] for p in FILTER_PARAMETERS if p["name"] == "beamline"],
        "schema": "beamline" in SUMMARY_SCHEMA["properties"],
        "csv": "beamline" in CSV_DETAIL_COLUMNS,
        "detail_filter": "beamline" in DETAIL_FILTERS,
        "refused": refused,
        "promoted": promote_identifiers("x", {"beamline": "I03"}, None)["beamline"],
        "rule_sql": str(rule.clause(Message)),
        "parsed_field": "beamline" in {f.name for f in dataclasses.fields(ParsedReport)},
        "written": "beamline" in MESSAGE_COLUMNS,
        "exported": "beamline" in {c.key for c in CSV_QUERY_COLUMNS},
        "form": [i.label for i in filter_form(admin_scope())["identifiers"]][-1],
        "stats_refuses": "beamline" in UNSUPPORTED,
    }))
    """
)


def test_a_new_identifier_needs_only_the_declaration_and_the_model_column():
    """Adds a fake identifier in a fresh interpreter (declarations are read at import) and checks
    every derived place picks it up."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", FAKE_IDENTIFIER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["filter"] == "i03"
    assert "messages.beamline = " in out["sql"]
    assert out["parameter"] == ["Beamline (exact)."]
    assert out["schema"] and out["csv"] and out["detail_filter"] and out["refused"]
    assert out["promoted"] == "i03"
    # The group rule compares the promoted column (not the jsonb identifiers).
    assert "messages.beamline IN" in out["rule_sql"]
    assert out["parsed_field"] and out["written"] and out["exported"]
    assert out["form"] == "Beamline"
    assert out["stats_refuses"]


@pytest.mark.parametrize("argument", ["instrument", "fingerprint"])
def test_every_area_that_accepts_filters_refuses_detail_filters(app, argument):
    """Scope.check_filters is applied by the bulk actions, /stats and /errors, /stalled too."""
    from webapp.actions.queries import filtered_messages
    from webapp.auth.scope import ANONYMOUS, Rule, Scope, admin_scope
    from webapp.stalled.routes import parse_filter as stalled_filter
    from webapp.stats.filters import parse_filter as stats_filter

    args = {argument: "v1:abc" if argument == "fingerprint" else "bl13"}
    # Acknowledging without details cannot be granted today; the gate does not rely on that.
    no_details = Scope(rules=(Rule(acknowledge=True),), acknowledge=True, restricted=True)
    parsers = [
        lambda scope: filtered_messages(scope, args, "acknowledge"),
        lambda scope: stats_filter(scope, args),
    ]
    if argument == "instrument":  # /stalled has no fingerprint filter
        parsers.append(lambda scope: stalled_filter(scope, args))
    with app.test_request_context("/"):
        for parse in parsers:
            for scope in (ANONYMOUS, no_details):
                with pytest.raises(Forbidden, match=f"Filtering by {argument}"):
                    parse(scope)
            parse(admin_scope())


def test_rollup_identifiers_are_promoted_and_rollup_columns():
    """/stats filters by the identifiers its rollups carry and refuses the other promoted ones."""
    from models.stats import MessageStat
    from webapp.stats.filters import ROLLUP_IDENTIFIERS, UNSUPPORTED

    for name in ROLLUP_IDENTIFIERS:
        assert name in PROMOTED_IDENTIFIERS and hasattr(MessageStat, name)
    assert set(PROMOTED_IDENTIFIERS) - set(ROLLUP_IDENTIFIERS) <= set(UNSUPPORTED)
