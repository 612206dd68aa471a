"""JSON Schemas from Python type hints, and the matching conversion of JSON values.

Supported: `str`, `int`, `float`, `bool`, `None`, `list[T]`, `tuple[T, ...]`, `tuple[A, B]`,
`dict` and `dict[str, T]`, `Optional[T]` and other unions, `Literal[...]`, `enum.Enum`
subclasses, `TypedDict` and dataclasses whose fields are supported, `Any`, and
`Annotated[T, ...]` where a string adds a description and a dict is merged into the schema
(`Annotated[int, {"minimum": 1}]`). Anything else is a `SchemaError` when the tool is defined,
never a surprise at call time.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import json
import types
import typing
from typing import Any

from ._errors import SchemaError

JsonSchema = dict[str, Any]

_NONE = type(None)
_PRIMITIVES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_LIST_ORIGINS = (list, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_DICT_ORIGINS = (dict, collections.abc.Mapping)


def is_typeddict(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _is_union(origin: object) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _json_default(value: object) -> tuple[bool, object]:
    """The JSON form of a default value, if it has one."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return False, None


def schema_of(tp: object, where: str = "value", _seen: tuple[object, ...] = ()) -> JsonSchema:
    """The JSON Schema of values of type `tp`. `where` names the value in error messages."""
    if tp is Any or tp is inspect.Parameter.empty or tp is object:
        return {}
    if tp is None or tp is _NONE:
        return {"type": "null"}
    if isinstance(tp, type) and tp in _PRIMITIVES:  # hints such as `Annotated[int, {...}]` are unhashable
        return {"type": _PRIMITIVES[tp]}

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if origin is typing.Annotated:
        schema = dict(schema_of(args[0], where, _seen))
        for meta in args[1:]:
            if isinstance(meta, str):
                schema["description"] = meta
            elif isinstance(meta, dict):
                schema.update(meta)
        return schema
    if origin is typing.Literal:
        values = [v.value if isinstance(v, enum.Enum) else v for v in args]
        return _enum_schema(values, where)
    if _is_union(origin):
        return _union_schema(args, where, _seen)
    if origin in _LIST_ORIGINS or tp in (list, collections.abc.Sequence):
        if not args:
            return {"type": "array"}
        return {"type": "array", "items": schema_of(args[0], f"{where}[]", _seen)}
    if origin is tuple or tp is tuple:
        return _tuple_schema(args, where, _seen)
    if origin in _DICT_ORIGINS or tp is dict:
        if not args:
            return {"type": "object"}
        if args[0] is not str:
            raise SchemaError(f"{where}: JSON object keys are strings, not `{_name(args[0])}`")
        value = schema_of(args[1], f"{where}{{}}", _seen)
        return {"type": "object"} if value == {} else {"type": "object", "additionalProperties": value}

    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum_schema([m.value for m in tp], where)
        if tp in _seen:
            raise SchemaError(f"{where}: `{tp.__name__}` refers to itself; recursive types are not supported")
        if is_typeddict(tp):
            return _typeddict_schema(tp, where, (*_seen, tp))
        if dataclasses.is_dataclass(tp):
            return _dataclass_schema(tp, where, (*_seen, tp))
    raise SchemaError(f"{where}: cannot describe type `{_name(tp)}` as JSON Schema")


def _name(tp: object) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _enum_schema(values: list[object], where: str) -> JsonSchema:
    for v in values:
        if not isinstance(v, (str, int, float, bool)) and v is not None:
            raise SchemaError(f"{where}: enumerated value {v!r} is not a JSON scalar")
    kinds = {_PRIMITIVES.get(type(v), "null") for v in values}
    schema: JsonSchema = {}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    schema["enum"] = values
    return schema


def _union_schema(args: tuple[object, ...], where: str, seen: tuple[object, ...]) -> JsonSchema:
    nullable = _NONE in args
    rest = [a for a in args if a is not _NONE]
    arms = [schema_of(a, where, seen) for a in rest]
    if len(arms) == 1:
        only = arms[0]
        if not nullable or only == {}:
            return only
        # `Optional[str]` reads best as `{"type": ["string", "null"]}`; an enum needs null added.
        if isinstance(only.get("type"), str) and not (only.keys() & {"const", "anyOf", "oneOf", "allOf"}):
            widened = {**only, "type": [only["type"], "null"]}
            if "enum" in only:
                widened["enum"] = [*only["enum"], None]
            return widened
    if nullable:
        arms.append({"type": "null"})
    return {"anyOf": arms}


def _tuple_schema(args: tuple[object, ...], where: str, seen: tuple[object, ...]) -> JsonSchema:
    if not args:
        return {"type": "array"}
    if len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": schema_of(args[0], f"{where}[]", seen)}
    items = [schema_of(a, f"{where}[{i}]", seen) for i, a in enumerate(args)]
    return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)}


def object_schema(
    fields: list[tuple[str, object, bool, object]], where: str, seen: tuple[object, ...]
) -> JsonSchema:
    """An object schema from `(name, type, required, default)` fields; `default` may be `empty`."""
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    for name, tp, is_required, default in fields:
        prop = dict(schema_of(tp, f"{where}.{name}" if where else name, seen))
        if is_required:
            required.append(name)
        elif default is not inspect.Parameter.empty:
            has_json, value = _json_default(default)
            if has_json and "default" not in prop:
                from ._validate import errors_of  # local: the validator depends on nothing here

                if not errors_of(value, prop):
                    prop["default"] = value
        properties[name] = prop
    schema: JsonSchema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _typeddict_schema(tp: type, where: str, seen: tuple[object, ...]) -> JsonSchema:
    hints = typing.get_type_hints(tp, include_extras=True)
    fields: list[tuple[str, object, bool, object]] = [
        (name, _strip_required(hint), _typeddict_requires(tp, name, hint), inspect.Parameter.empty)
        for name, hint in hints.items()
    ]
    schema = object_schema(fields, where or tp.__name__, seen)
    if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "("):
        schema = {"description": inspect.cleandoc(tp.__doc__), **schema}
    return schema


def _typeddict_requires(tp: type, name: str, hint: object) -> bool:
    # `__required_keys__` misses `NotRequired[...]` written as a string annotation (PEP 563)
    # before Python 3.12, so the resolved hint has the last word.
    origin = typing.get_origin(hint)
    if origin is typing.NotRequired:
        return False
    if origin is typing.Required:
        return True
    return name in tp.__required_keys__  # type: ignore[attr-defined]


def _strip_required(tp: object) -> object:
    """`Required[T]` and `NotRequired[T]` only matter through `__required_keys__`."""
    origin = typing.get_origin(tp)
    if origin is typing.Required or origin is typing.NotRequired:
        return typing.get_args(tp)[0]
    return tp


def _dataclass_schema(tp: type, where: str, seen: tuple[object, ...]) -> JsonSchema:
    hints = typing.get_type_hints(tp, include_extras=True)
    fields: list[tuple[str, object, bool, object]] = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        fields.append((f.name, hints.get(f.name, Any), not has_default, default))
    schema = object_schema(fields, where or tp.__name__, seen)
    doc = tp.__doc__ or ""
    # A dataclass without a docstring gets its signature as `__doc__`; that is not a description.
    if doc and not doc.startswith(tp.__name__ + "("):
        schema = {"description": inspect.cleandoc(doc), **schema}
    return schema


# ---------------------------------------------------------------------------------------------
# From validated JSON values to the Python values the hints ask for.


def convert(value: object, tp: object) -> object:
    """Turn a JSON value that matches `schema_of(tp)` into a value of type `tp`.

    Dataclasses are built, enums looked up, tuples made and integers widened to floats; the
    value is assumed valid, so anything unexpected is passed through unchanged.
    """
    if tp is Any or tp is inspect.Parameter.empty or tp is object or value is None:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return convert(value, args[0])
    if _is_union(origin):
        from ._validate import errors_of

        for arm in args:
            if arm is not _NONE and not errors_of(value, schema_of(arm, "")):
                return convert(value, arm)
        return value
    if isinstance(value, list):
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(convert(v, args[0]) for v in value)
            return tuple(convert(v, a) for v, a in zip(value, args))
        if origin is tuple or tp is tuple:
            return tuple(value)
        if origin in _LIST_ORIGINS and args:
            return [convert(v, args[0]) for v in value]
        return value
    if isinstance(value, dict):
        if origin in _DICT_ORIGINS and len(args) == 2:
            return {k: convert(v, args[1]) for k, v in value.items()}
        if isinstance(tp, type) and is_typeddict(tp):
            hints = typing.get_type_hints(tp)
            return {k: convert(v, _strip_required(hints.get(k, Any))) for k, v in value.items()}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            return tp(**{k: convert(v, hints.get(k, Any)) for k, v in value.items()})
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    return value


def to_json_value(value: object) -> object:
    """`json.dumps` fallback: dataclasses become objects, enums their values, tuples and sets lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"a value of type `{type(value).__name__}` is not JSON")
