"""Form fields of the group rule editor."""

from __future__ import annotations

from typing import Any

from wtforms import SelectMultipleField, TextAreaField, ValidationError


class MessageTypesField(SelectMultipleField):
    """Message types chosen from the known types (set per request in `choices`).

    Values a group already holds stay selectable even when no such message was seen yet.
    """

    def process_data(self, value: Any) -> None:
        self.data = list(value or [])

    def pre_validate(self, form) -> None:
        allowed = {value for value, _label in (self.choices or [])}
        unknown = [v for v in self.data or [] if v not in allowed]
        if unknown:
            raise ValidationError(f"unknown message type(s): {', '.join(unknown)}")


class IdentifierRulesField(TextAreaField):
    """Identifier rules, one per line: `key: value1, value2` (all lines must match).

    Stored as JSON `{"key": ["value1", "value2"]}`; values compare case-insensitively.
    """

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        rules = self.data or {}
        return "\n".join(f"{key}: {', '.join(map(str, values))}" for key, values in rules.items())

    def process_data(self, value: Any) -> None:
        self.data = dict(value or {})

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        rules: dict[str, list[str]] = {}
        for number, line in enumerate(valuelist[0].splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            key, sep, values = line.partition(":")
            key = key.strip()
            items = [v.strip() for v in values.split(",") if v.strip()]
            if not sep or not key or not items:
                self.data = {}
                raise ValueError(
                    f"line {number}: expected `identifier: value, value`, got {line!r}"
                )
            if not key.replace("_", "").replace("-", "").isalnum():
                self.data = {}
                raise ValueError(f"line {number}: {key!r} is not an identifier name")
            rules.setdefault(key, [])
            rules[key].extend(v for v in items if v not in rules[key])
        self.data = rules
