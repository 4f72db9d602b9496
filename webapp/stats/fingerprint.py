"""Error fingerprints: group errors by cause, not by the ids and names inside their text.

`v1:` + sha1 of (message type, callback, exception class, masked text). Masking replaces, in this
order: quoted values, e-mail addresses, UUIDs, paths, the name after an entity word ("dataset
mx_01", "user jdoe"), hex runs, numbers. Bump the version when the masking
changes so old and new groups never merge silently.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass

VERSION = "v1"
MAX_TEXT = 2000

#: Words that may follow an entity name without being a name themselves ("dataset not found").
_NOT_NAMES = (
    "a|an|the|and|or|not|no|is|are|was|were|has|have|had|does|did|with|without|for|from|in|of|"
    "on|to|by|at|as|already|name|names|id|ids|number|exists|exist|missing|found|could|can|cannot|"
    "must|should|will|may|field|object|entry|record|type"
)
#: Entity words of PACER errors whose next word is a name or an id ("Dataset mx_01 exists").
_ENTITY = (
    "dataset|datafile|investigation|proposal|sample|instrument|beamline|visit|user|username|"
    "file|folder|directory|item|session|facility"
)

_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"'(?:[^'\\\n]|\\.){0,500}'|\"(?:[^\"\\\n]|\\.){0,500}\""), "<str>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    # A path, or a URL's path with its query string.
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-~@+]+){2,}[\\/]?(?:\?[^\s'\")]*)?"), "<path>"),
    (
        re.compile(
            rf"(?i)\b((?:{_ENTITY})s?)(\s*[:#]?\s+)(?!(?:{_NOT_NAMES})\b)[^\s,;:()\[\]{{}}<>]+"
        ),
        r"\1\2<name>",
    ),
    (
        re.compile(
            r"\b(?:0x)?[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b|\b(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b"
        ),
        "<hex>",
    ),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]
_EXC_RE = re.compile(
    r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Warning|Fault|NotFound|Timeout|Denied|Invalid|Failure|Failed)?)\s*:\s*(.*)$",
    re.S,
)


@dataclass(frozen=True)
class ErrorCause:
    fingerprint: str
    callback: str | None
    exception_class: str | None
    normalized_text: str
    text: str


def mask(text: str) -> str:
    """The error text with its variable parts masked."""
    out = text[:MAX_TEXT]
    for pattern, replacement in _MASKS:
        out = pattern.sub(replacement, out)
    return out.strip()


#: The repr of an exception, as older producers sent it: InvestigationNotFound('text').
_EXC_REPR_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\((['\"])(.*)\2,?\)\s*$", re.S)


def split_exception(error: str) -> tuple[str | None, str]:
    """("InvestigationNotFound", "Investigation 42 not found") from "InvestigationNotFound: ..."
    or from its repr "InvestigationNotFound('Investigation 42 not found')"."""
    match = _EXC_RE.match(error)
    if match and " " not in match.group(1):
        return match.group(1), match.group(2)
    match = _EXC_REPR_RE.match(error)
    if match:
        return match.group(1), match.group(3)
    return None, error


def first_error(error_message: object) -> tuple[str | None, str] | None:
    """(callback, error text) of the first error of a report, or None without errors.

    Handles the dict form and the legacy string: a repr of a list of (name, exception) tuples.
    """
    if isinstance(error_message, dict):
        for callback, error in error_message.items():
            if error not in (None, ""):
                return str(callback), str(error)
        return None
    if isinstance(error_message, str) and error_message.strip():
        text = error_message.strip()
        if text.startswith("[") and len(text) < 100_000:
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                items = None
            if isinstance(items, list) and items:
                head = items[0]
                if isinstance(head, tuple | list) and len(head) == 2:
                    return str(head[0]), str(head[1])
        legacy = re.match(r"^\[\s*\(\s*'([^']+)'\s*,\s*(.*?)\)\s*[,\]]", text, re.S)
        if legacy:
            return legacy.group(1), legacy.group(2).strip()
        if text in ("[]", "{}", "None"):
            return None
        return None, text
    return None


def fingerprint(message_type: str, error_message: object) -> ErrorCause | None:
    """The cause of the report's first error, or None when it has none."""
    found = first_error(error_message)
    if found is None:
        return None
    callback, error = found
    exception_class, detail = split_exception(error)
    normalized = mask(detail)
    key = "\x1f".join([message_type, callback or "", exception_class or "", normalized])
    digest = hashlib.sha1(key.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()
    return ErrorCause(
        f"{VERSION}:{digest}", callback, exception_class, normalized, error[:MAX_TEXT]
    )
