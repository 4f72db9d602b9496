"""Realistic input messages for the demo consumers (used by the traffic generator and tests).

Each builder returns `(body, content_type)`. A share of dataset and user messages is legacy XML,
as older PACER producers still send it; instrument codes arrive in mixed case.
"""

from __future__ import annotations

import json
import random
from xml.sax.saxutils import escape

from .topology import DATASET_INGESTION, INVESTIGATION_OPS, PROPOSAL_SYNC, USER_SYNC

INSTRUMENTS = ("BL13", "bl06", "BL09", "bl11", "BL22", "BL24", "bl29", "BL31")
TECHNIQUES = ("mx", "saxs", "xas", "tomo", "xrd", "pxrd")
FILE_KINDS = (("master.h5", 1_000_000, 5_000_000), ("data_000001.h5", 10**8, 4 * 10**9))
SURNAMES = ("garcia", "martin", "lopez", "fontaine", "rossi", "novak", "kowalski", "smith")
JSON_TYPE = "application/json"
XML_TYPE = "application/xml"


def investigation_number(rng: random.Random) -> str:
    return f"{rng.randint(2019, 2026)}{rng.randint(0, 999999):06d}"


def dataset_payload(
    rng: random.Random,
    *,
    instrument: str | None = None,
    investigation: str | None = None,
    fail_stage: int | None = None,
) -> dict:
    """A stage-1 dataset message as a dict."""
    instrument = instrument or rng.choice(INSTRUMENTS)
    investigation = investigation or investigation_number(rng)
    dataset = f"{rng.choice(TECHNIQUES)}_{rng.randint(1, 99):02d}"
    files = [{"name": FILE_KINDS[0][0], "size": rng.randint(*FILE_KINDS[0][1:])}]
    files += [
        {"name": f"data_{i:06d}.h5", "size": rng.randint(*FILE_KINDS[1][1:])}
        for i in range(1, rng.randint(1, 4))
    ]
    payload = {
        "instrument": instrument,
        "investigation": investigation,
        "dataset": dataset,
        "location": f"/data/{instrument.lower()}/{investigation}/{dataset}",
        "files": files,
    }
    if fail_stage is not None:
        payload["fail_stage"] = fail_stage
    return payload


def dataset_xml(payload: dict) -> str:
    """The same dataset message as legacy XML (CamelCase names, repeated <File> elements)."""
    files = "".join(
        f"<File><Name>{escape(f['name'])}</Name><Size>{f['size']}</Size></File>"
        for f in payload["files"]
    )
    fail = f"<FailStage>{payload['fail_stage']}</FailStage>" if "fail_stage" in payload else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<DatasetIngest>"
        f"<Instrument>{escape(payload['instrument'])}</Instrument>"
        f"<Investigation>{escape(payload['investigation'])}</Investigation>"
        f"<Dataset>{escape(payload['dataset'])}</Dataset>"
        f"<Location>{escape(payload['location'])}</Location>"
        f"{files}{fail}"
        "</DatasetIngest>"
    )


def dataset_message(
    rng: random.Random, *, xml: bool = False, fail_stage: int | None = None
) -> tuple[str, str]:
    payload = dataset_payload(rng, fail_stage=fail_stage)
    if xml:
        return dataset_xml(payload), XML_TYPE
    return json.dumps(payload), JSON_TYPE


def user_sync_message(rng: random.Random, *, xml: bool = False) -> tuple[str, str]:
    profile_id = rng.randint(10_000, 99_999)
    names = [f"{rng.choice(SURNAMES)}{rng.randint(1, 99)}" for _ in range(rng.randint(1, 2))]
    if xml:
        usernames = "".join(f"<Username>{n}</Username>" for n in names)
        return f"<UserSync><ProfileId>{profile_id}</ProfileId>{usernames}</UserSync>", XML_TYPE
    body = {"profile_id": profile_id, "usernames": names, "email": f"{names[0]}@example.org"}
    return json.dumps(body), JSON_TYPE


def proposal_sync_message(rng: random.Random) -> tuple[str, str]:
    body = {
        "name": investigation_number(rng),
        "instrument": rng.choice(INSTRUMENTS),
        "title": f"{rng.choice(TECHNIQUES).upper()} study of sample {rng.randint(1, 500)}",
        "visit": rng.randint(1, 3),
    }
    return json.dumps(body), JSON_TYPE


def investigation_ops_message(rng: random.Random) -> tuple[str, str]:
    name = investigation_number(rng)
    operations = rng.choice([["doi"], ["pss"], ["doi", "pss"], ["close", "doi", "pss"]])
    body = {"name": name, "visit_id": f"{name}-1", "operations": operations}
    return json.dumps(body), JSON_TYPE


#: (message type, weight) of generated traffic.
MIX = ((DATASET_INGESTION, 60), (USER_SYNC, 15), (PROPOSAL_SYNC, 15), (INVESTIGATION_OPS, 10))


def random_message(
    rng: random.Random, *, xml_share: float = 0.2, fail_stage: int | None = None
) -> tuple[str, str, str]:
    """(message type, body, content type) drawn from the traffic mix."""
    kinds, weights = zip(*MIX, strict=True)
    kind = rng.choices(kinds, weights)[0]
    xml = rng.random() < xml_share
    if kind == DATASET_INGESTION:
        return (kind, *dataset_message(rng, xml=xml, fail_stage=fail_stage))
    if kind == USER_SYNC:
        return (kind, *user_sync_message(rng, xml=xml))
    if kind == PROPOSAL_SYNC:
        return (kind, *proposal_sync_message(rng))
    return (kind, *investigation_ops_message(rng))
