"""Pydantic helpers for payload models that accept both JSON and legacy XML payloads.

XML has no lists and no types: one `<file>` arrives as a dict, two as a list, an empty element as
None, numbers as strings. `PayloadModel` coerces the strings (pydantic lax mode) and `XmlList`
turns "one or many" into a list, so one model validates both shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

T = TypeVar("T")


def as_list(value: Any) -> Any:
    """None → [], a list stays, a wrapper `{"item": [...]}` is unwrapped, anything else → [it]."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (inner,) = value.values()
        if isinstance(inner, list):
            return inner
    return [value]


#: A list field that also accepts the single-element and wrapped shapes XML produces.
XmlList = Annotated[list[T], BeforeValidator(as_list)]


class PayloadModel(BaseModel):
    """Base for payload models: unknown keys are ignored, surrounding whitespace stripped."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)
