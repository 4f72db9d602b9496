"""Turn a delivery body into the message callbacks see: JSON, legacy XML or plain text.

Legacy XML is parsed only with defusedxml (entity declarations, external references and network
access are refused, never expanded) and converted to the same dict shape a JSON payload has:
the root element is the envelope, its children become top-level keys, element and attribute names
become snake_case, repeated elements become lists, empty elements become None.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

JSON = "json"
XML = "xml"
TEXT = "text"


@dataclass(frozen=True)
class DecodedPayload:
    """A decoded body: its detected format, its exact text and the decoded value."""

    format: str
    text: str
    data: Any


class PayloadDecodeError(ValueError):
    """The body could not be decoded; `format` and `text` still describe what arrived."""

    def __init__(self, format: str, text: str, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.format = format
        self.text = text
        self.cause = cause


def detect_format(text: str, content_type: str | None = None) -> str:
    """`json`, `xml` or `text`: the body's own first character first, the content type second."""
    head = text.lstrip()[:1]
    if head == "<":
        return XML
    if head in ("{", "["):
        return JSON
    content_type = (content_type or "").lower()
    if "json" in content_type:
        return JSON
    if "xml" in content_type:
        return XML
    return TEXT


def decode_payload(body: bytes | str, content_type: str | None = None) -> DecodedPayload:
    """Decode one body. Raises PayloadDecodeError for bytes that are not what they claim to be."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadDecodeError(TEXT, body.decode("utf-8", "replace"), exc) from exc
    else:
        text = body
    fmt = detect_format(text, content_type)
    try:
        if fmt == JSON:
            data = json.loads(text)
        elif fmt == XML:
            data = xml_to_dict(body if isinstance(body, bytes) else text.encode("utf-8"))
        else:
            data = text
    except (ValueError, ParseError, DefusedXmlException) as exc:
        raise PayloadDecodeError(fmt, text, exc) from exc
    return DecodedPayload(format=fmt, text=text, data=data)


_SEPARATORS = re.compile(r"[\s\-.]+")
_ACRONYM_WORD = re.compile(r"([A-Z]+)([A-Z][a-z])")
_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_UNDERSCORES = re.compile(r"_+")


def to_snake_case(name: str) -> str:
    """`DatasetID` → `dataset_id`, `visit-id` → `visit_id`, `HTTPServer` → `http_server`."""
    name = name.rsplit("}", 1)[-1]  # drop an XML namespace
    name = name.split(":", 1)[-1]
    name = _SEPARATORS.sub("_", name.strip())
    name = _ACRONYM_WORD.sub(r"\1_\2", name)
    name = _LOWER_UPPER.sub(r"\1_\2", name)
    return _UNDERSCORES.sub("_", name).strip("_").lower()


def xml_to_dict(document: bytes | str) -> dict[str, Any]:
    """Parse untrusted XML safely and convert it to a dict (see the module docstring)."""
    root = SafeET.fromstring(document, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    value = _element_value(root)
    if isinstance(value, dict):
        return value
    return {to_snake_case(root.tag): value}


def _element_value(element: Element) -> Any:
    children = list(element)
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return text or None
    result: dict[str, Any] = {to_snake_case(k): v for k, v in element.attrib.items()}
    repeated: set[str] = set()
    for child in children:
        key = to_snake_case(child.tag)
        value = _element_value(child)
        if key in repeated:
            result[key].append(value)
        elif key in result:
            result[key] = [result[key], value]
            repeated.add(key)
        else:
            result[key] = value
    if text:
        result["text"] = text
    return result
