"""A small JSON Schema validator: the keywords the kit derives, and the common ones authors add.

Covered: `type`, `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`,
`prefixItems`, `minItems`, `maxItems`, `uniqueItems`, `minLength`, `maxLength`, `pattern`,
`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `anyOf`, `oneOf`,
`allOf`, `not`. Other keywords (`format`, `$ref`, ...) are not checked here; the host checks
every input and output against the full schema.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is_type(value: object, name: str) -> bool:
    if name == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return json_type(value) == name


def _pointer(path: tuple[object, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "/"


def _show(value: object) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _equal(a: object, b: object) -> bool:
    # JSON equality: `true` is not `1`, `1` is `1.0`.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def errors_of(value: object, schema: Any, path: tuple[object, ...] = ()) -> list[str]:
    """Every way `value` breaks `schema`, as `"/a/0: message"` strings; empty when it is valid."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{_pointer(path)}: no value is allowed here"]
    out: list[str] = []
    at = _pointer(path)

    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, n) for n in names):
            return [f"{at}: expected {' or '.join(names)}, got {json_type(value)} {_show(value)}"]

    if "const" in schema and not _equal(value, schema["const"]):
        out.append(f"{at}: expected {_show(schema['const'])}, got {_show(value)}")
    if "enum" in schema and not any(_equal(value, v) for v in schema["enum"]):
        choices = ", ".join(_show(v) for v in schema["enum"])
        out.append(f"{at}: expected one of {choices}, got {_show(value)}")

    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{at}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{at}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{at}: does not match pattern {_show(schema['pattern'])}")

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{at}: {value} is less than the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{at}: {value} is more than the maximum {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{at}: {value} is not more than {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            out.append(f"{at}: {value} is not less than {schema['exclusiveMaximum']}")
        if "multipleOf" in schema:
            quotient = value / schema["multipleOf"]
            if not math.isclose(quotient, round(quotient)):
                out.append(f"{at}: {value} is not a multiple of {schema['multipleOf']}")

    if isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        for i, (item, sub) in enumerate(zip(value, prefix)):
            out.extend(errors_of(item, sub, (*path, i)))
        if "items" in schema:
            rest = value[len(prefix):]
            if schema["items"] is False and rest:
                out.append(f"{at}: expected at most {len(prefix)} items, got {len(value)}")
            else:
                for i, item in enumerate(rest, start=len(prefix)):
                    out.extend(errors_of(item, schema["items"], (*path, i)))
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{at}: expected at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{at}: expected at most {schema['maxItems']} items, got {len(value)}")
        if schema.get("uniqueItems"):
            for i, item in enumerate(value):
                if any(_equal(item, other) for other in value[:i]):
                    out.append(f"{at}: item {i} repeats an earlier item")
                    break

    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{at}: missing required property `{name}`")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                out.extend(errors_of(item, properties[name], (*path, name)))
            elif extra is False:
                known = ", ".join(f"`{p}`" for p in properties) or "none"
                out.append(f"{at}: unknown property `{name}` (expected: {known})")
            elif extra is not True:
                out.extend(errors_of(item, extra, (*path, name)))

    for sub in schema.get("allOf", []):
        out.extend(errors_of(value, sub, path))
    if "anyOf" in schema and not any(not errors_of(value, s, path) for s in schema["anyOf"]):
        out.append(f"{at}: {_show(value)} matches none of the allowed forms")
    if "oneOf" in schema:
        matches = sum(1 for s in schema["oneOf"] if not errors_of(value, s, path))
        if matches != 1:
            out.append(f"{at}: {_show(value)} matches {matches} of the forms, expected exactly one")
    if "not" in schema and not errors_of(value, schema["not"], path):
        out.append(f"{at}: {_show(value)} matches a form that is not allowed")
    return out
