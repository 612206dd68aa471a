"""The kit's JSON Schema validator, used on input in the component and by the harness."""

from __future__ import annotations

from typing import Any

import pytest

from sigil_plugin._validate import errors_of

OBJECT = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["name"],
    "additionalProperties": False,
}

VALID: list[tuple[str, Any, Any]] = [
    ("anything", {}, [1, "x"]),
    ("true schema", True, None),
    ("string", {"type": "string"}, "x"),
    ("integer", {"type": "integer"}, 3),
    ("integral float is an integer", {"type": "integer"}, 3.0),
    ("integer is a number", {"type": "number"}, 3),
    ("nullable", {"type": ["string", "null"]}, None),
    ("enum", {"enum": ["a", 1]}, 1),
    ("const", {"const": {"a": [1]}}, {"a": [1.0]}),
    ("object", OBJECT, {"name": "ada", "n": 2}),
    ("optional property left out", OBJECT, {"name": "ada"}),
    ("open object", {"type": "object", "additionalProperties": {"type": "integer"}}, {"a": 1}),
    ("array", {"type": "array", "items": {"type": "integer"}}, [1, 2]),
    ("tuple", {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False}, ["a", 1]),
    ("bounds", {"minimum": 1, "maximum": 3, "multipleOf": 0.5}, 2.5),
    ("strings", {"minLength": 2, "maxLength": 3, "pattern": "^a"}, "ab"),
    ("anyOf", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "x"),
    ("oneOf", {"oneOf": [{"type": "integer"}, {"type": "string"}]}, 1),
    ("allOf", {"allOf": [{"type": "integer"}, {"minimum": 0}]}, 1),
    ("not", {"not": {"type": "null"}}, 1),
    ("unique", {"uniqueItems": True}, [1, True]),
    ("unchecked keyword", {"type": "string", "format": "email"}, "not an email"),
]


@pytest.mark.parametrize(("schema", "value"), [(s, v) for _, s, v in VALID], ids=[n for n, _, _ in VALID])
def test_valid(schema: Any, value: Any) -> None:
    assert errors_of(value, schema) == []


INVALID: list[tuple[str, Any, Any, list[str]]] = [
    ("false schema", False, 1, ["/: no value is allowed here"]),
    ("wrong type", {"type": "string"}, 3, ["/: expected string, got integer 3"]),
    ("bool is not an integer", {"type": "integer"}, True, ["/: expected integer, got boolean true"]),
    ("fractional float", {"type": "integer"}, 1.5, ["/: expected integer, got number 1.5"]),
    ("not nullable", {"type": "string"}, None, ["/: expected string, got null null"]),
    ("enum", {"enum": ["a", "b"]}, "c", ['/: expected one of "a", "b", got "c"']),
    ("bool is not 1 in enum", {"enum": [1]}, True, ["/: expected one of 1, got true"]),
    ("const", {"const": 1}, 2, ["/: expected 1, got 2"]),
    ("missing property", OBJECT, {}, ["/: missing required property `name`"]),
    ("unknown property", OBJECT, {"name": "a", "x": 1}, ["/: unknown property `x` (expected: `name`, `n`)"]),
    ("nested", OBJECT, {"name": 1, "n": "2"}, ["/name: expected string, got integer 1", '/n: expected integer, got string "2"']),
    ("array item", {"items": {"type": "integer"}}, [1, "x"], ['/1: expected integer, got string "x"']),
    ("too many tuple items", {"prefixItems": [{}], "items": False}, [1, 2], ["/: expected at most 1 items, got 2"]),
    ("min items", {"minItems": 2}, [1], ["/: expected at least 2 items, got 1"]),
    ("minimum", {"minimum": 1}, 0, ["/: 0 is less than the minimum 1"]),
    ("exclusive maximum", {"exclusiveMaximum": 1}, 1, ["/: 1 is not less than 1"]),
    ("pattern", {"pattern": "^a"}, "b", ['/: does not match pattern "^a"']),
    ("max length", {"maxLength": 1}, "ab", ["/: longer than 1 characters"]),
    ("anyOf", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, "x", ['/: "x" matches none of the allowed forms']),
    ("oneOf twice", {"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, ["/: 1 matches 2 of the forms, expected exactly one"]),
    ("not", {"not": {"type": "integer"}}, 1, ["/: 1 matches a form that is not allowed"]),
    ("unique", {"uniqueItems": True}, [1, 1.0], ["/: item 1 repeats an earlier item"]),
    ("pointer escapes", {"properties": {"a/b": {"type": "string"}}}, {"a/b": 1}, ["/a~1b: expected string, got integer 1"]),
]


@pytest.mark.parametrize(
    ("schema", "value", "errors"), [(s, v, e) for _, s, v, e in INVALID], ids=[n for n, _, _, _ in INVALID]
)
def test_invalid(schema: Any, value: Any, errors: list[str]) -> None:
    assert errors_of(value, schema) == errors
