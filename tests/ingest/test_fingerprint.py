"""Error fingerprints on real-looking PACER errors: the same cause shares a group whatever the ids,
names, paths and numbers inside the text; another exception class, callback or message type does
not."""

from __future__ import annotations

import pytest

from webapp.stats.fingerprint import VERSION, fingerprint, first_error, mask, split_exception

MAIN = "callback_func_main_dataset_creation"

#: Each tuple: errors of one cause, as different messages would carry them.
SAME_CAUSE = [
    (
        "InvestigationNotFound: Investigation 2022097034 not found in ICAT",
        "InvestigationNotFound: Investigation 2023100412 not found in ICAT",
        "InvestigationNotFound: Investigation MX-2719 not found in ICAT",
    ),
    (
        "ICATObjectExistsError: Dataset mx_01 already exists in investigation 2022097034 (visit 1)",
        "ICATObjectExistsError: Dataset lysozyme_A already exists in investigation 2022097035 "
        "(visit 2)",
        "ICATObjectExistsError: Dataset 20260331_run7 already exists in investigation ih-ch1650 "
        "(visit 12)",
    ),
    (
        "FileNotFoundError: [Errno 2] No such file or directory: "
        "'/dls/bl13/data/2022/mx22097-34/processed/mx_01.nxs'",
        "FileNotFoundError: [Errno 2] No such file or directory: "
        "'/dls/i03/data/2026/cm33866-1/xraycentring/TestInsulin/ins_4/ins_4_2.nxs'",
    ),
    (
        "OSError: cannot read /data/visitor/ma1234/id30a1/20260331/RAW_DATA/sample/scan0001.h5",
        "OSError: cannot read /data/visitor/hc5678/bm29/20261101/RAW_DATA/other/scan0420.h5",
    ),
    (
        "ICATSessionError: Session id 3f2a9c1e-1d2b-4c5e-9f00-1234567890ab has expired",
        "ICATSessionError: Session id 0c9d8e7f-aaaa-4bbb-8ccc-ddddeeeeffff has expired",
    ),
    (
        "ConnectionError: HTTPSConnectionPool(host='icat.example.org', port=443): Max retries "
        "exceeded with url: /icat/entityManager?sessionId=7f3a2b1c (Caused by "
        "NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f3a2b1c4d90>: "
        "Failed to establish a new connection: [Errno 111] Connection refused'))",
        "ConnectionError: HTTPSConnectionPool(host='icat2.example.org', port=8181): Max retries "
        "exceeded with url: /icat/session (Caused by NewConnectionError('<urllib3.connection."
        "HTTPSConnection object at 0x7f00deadbeef>: Failed to establish a new connection: "
        "[Errno 113] No route to host'))",
    ),
    (
        "UserNotFound: User jdoe@facility.eu has no ICAT account",
        "UserNotFound: User a.smith@example.org has no ICAT account",
    ),
    (
        "TimeoutError: ICAT did not answer within 30 s (attempt 3 of 5)",
        "TimeoutError: ICAT did not answer within 120.5 s (attempt 1 of 5)",
    ),
    (
        "KeyError: 'dataset_id'",
        "KeyError: 'visit_id'",
    ),
]


@pytest.mark.parametrize("errors", SAME_CAUSE, ids=lambda e: e[0].split(":")[0])
def test_errors_differing_only_in_ids_names_paths_and_numbers_share_a_group(errors):
    causes = [fingerprint("dataset-ingestion", {MAIN: e}) for e in errors]
    assert len({c.fingerprint for c in causes}) == 1, [c.normalized_text for c in causes]
    assert causes[0].fingerprint.startswith(f"{VERSION}:")
    assert causes[0].exception_class == errors[0].split(":")[0]
    # The normalized text keeps the words of the cause and none of the variable parts.
    normalized = causes[0].normalized_text
    for variable in ("2022097034", "mx_01", "/dls/", "0x7f", "3f2a9c1e", "jdoe", "30 s"):
        assert variable not in normalized


def test_different_exception_classes_do_not_share_a_group():
    a = fingerprint("dataset-ingestion", {MAIN: "InvestigationNotFound: Investigation 1 missing"})
    b = fingerprint("dataset-ingestion", {MAIN: "ICATSessionError: Investigation 1 missing"})
    assert a.fingerprint != b.fingerprint


def test_different_callbacks_do_not_share_a_group():
    error = "ICATServerError: Internal error while creating datafiles"
    a = fingerprint("dataset-ingestion", {MAIN: error})
    b = fingerprint("dataset-ingestion", {"callback_func_register_datafiles": error})
    assert a.fingerprint != b.fingerprint
    assert (a.callback, b.callback) == (MAIN, "callback_func_register_datafiles")


def test_different_message_types_do_not_share_a_group():
    error = {MAIN: "ICATServerError: Internal error"}
    assert (
        fingerprint("dataset-ingestion", error).fingerprint
        != fingerprint("internal-dataset-ingestion", error).fingerprint
    )


def test_different_texts_of_one_class_do_not_share_a_group():
    a = fingerprint("user-sync", {"callback_func_sync": "ValueError: email address is empty"})
    b = fingerprint("user-sync", {"callback_func_sync": "ValueError: unknown facility code"})
    assert a.fingerprint != b.fingerprint


def test_the_first_error_of_several_callbacks_is_the_cause():
    cause = fingerprint(
        "dataset-ingestion",
        {
            "callback_func_a_ok": "",
            MAIN: "InvestigationNotFound: Investigation 7 not found",
            "callback_func_z_later": "ValueError: skipped",
        },
    )
    assert cause.callback == MAIN and cause.exception_class == "InvestigationNotFound"


def test_legacy_string_errors_group_with_the_dict_form():
    legacy = (
        "[('callback_func_main_dataset_creation', "
        "InvestigationNotFound('Investigation 2022097034 not found in ICAT'))]"
    )
    modern = {MAIN: "InvestigationNotFound: Investigation 2023000001 not found in ICAT"}
    assert first_error(legacy) == (
        MAIN,
        "InvestigationNotFound('Investigation 2022097034 not found in ICAT')",
    )
    assert (
        fingerprint("dataset-ingestion", legacy).fingerprint
        == fingerprint("dataset-ingestion", modern).fingerprint
    )


@pytest.mark.parametrize("empty", [{}, {"cb": ""}, {"cb": None}, "", "[]", "{}", "None", None])
def test_no_error_no_fingerprint(empty):
    assert fingerprint("dataset-ingestion", empty) is None


def test_text_without_exception_class_still_groups():
    a = fingerprint("unknown", "something broke on host pacer-07 after 12 retries")
    b = fingerprint("unknown", "something broke on host pacer-11 after 3 retries")
    assert a.exception_class is None and a.fingerprint == b.fingerprint


def test_masking_words_that_follow_entity_words_are_kept_when_they_are_not_names():
    assert mask("Dataset not found") == "Dataset not found"
    assert mask("Investigation has no end date") == "Investigation has no end date"
    assert mask("User jdoe not found") == "User <name> not found"


def test_split_exception_forms():
    assert split_exception("ICATError: boom") == ("ICATError", "boom")
    assert split_exception("icat.exception.ICATNoObjectError: x") == (
        "icat.exception.ICATNoObjectError",
        "x",
    )
    assert split_exception("ICATError('boom')") == ("ICATError", "boom")
    assert split_exception("a sentence: with a colon") == (None, "a sentence: with a colon")


def test_huge_and_hostile_texts_are_bounded():
    cause = fingerprint("x", {"cb": "E: " + "'" * 200_000 + "/a" * 100_000})
    assert cause is not None and len(cause.text) <= 2000
