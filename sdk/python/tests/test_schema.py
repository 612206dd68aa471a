"""Schema derivation from type hints: tables of hints and the schemas they must give."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

import pytest

from sigil_plugin import Plugin, SchemaError, schema_of


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Movie(TypedDict):
    """A film."""

    title: str
    year: NotRequired[int]


@dataclass
class Point:
    x: float
    y: float = 0.0
    tags: list[str] = field(default_factory=list)


@dataclass
class Node:
    child: Optional["Node"] = None


TYPES: list[tuple[str, object, dict[str, Any]]] = [
    ("str", str, {"type": "string"}),
    ("int", int, {"type": "integer"}),
    ("float", float, {"type": "number"}),
    ("bool", bool, {"type": "boolean"}),
    ("none", None, {"type": "null"}),
    ("any", Any, {}),
    ("bare list", list, {"type": "array"}),
    ("list of str", list[str], {"type": "array", "items": {"type": "string"}}),
    ("nested list", list[list[int]], {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}),
    ("bare dict", dict, {"type": "object"}),
    ("dict of any", dict[str, Any], {"type": "object"}),
    ("dict of int", dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
    ("homogeneous tuple", tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
    (
        "pair",
        tuple[str, int],
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False, "minItems": 2},
    ),
    ("optional str", Optional[str], {"type": ["string", "null"]}),
    ("pipe optional", int | None, {"type": ["integer", "null"]}),
    ("optional list", Optional[list[int]], {"type": ["array", "null"], "items": {"type": "integer"}}),
    ("union", Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    (
        "optional union",
        int | str | None,
        {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
    ),
    ("literal str", Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
    ("literal int", Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
    ("literal mixed", Literal["a", 1], {"enum": ["a", 1]}),
    ("optional literal", Optional[Literal["a"]], {"type": ["string", "null"], "enum": ["a", None]}),
    ("enum", Color, {"type": "string", "enum": ["red", "green"]}),
    ("annotated description", Annotated[str, "A name."], {"type": "string", "description": "A name."}),
    ("annotated keywords", Annotated[int, {"minimum": 1}], {"type": "integer", "minimum": 1}),
    (
        "typeddict",
        Movie,
        {
            "description": "A film.",
            "type": "object",
            "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
            "required": ["title"],
            "additionalProperties": False,
        },
    ),
    (
        "dataclass",
        Point,
        {
            "type": "object",
            "properties": {
                "x": {"type": "number"},
                "y": {"type": "number", "default": 0.0},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["x"],
            "additionalProperties": False,
        },
    ),
    (
        "list of dataclass",
        list[Point],
        {"type": "array", "items": schema_of(Point)},
    ),
]


@pytest.mark.parametrize(("hint", "expected"), [(t, s) for _, t, s in TYPES], ids=[n for n, _, _ in TYPES])
def test_schema_of(hint: object, expected: dict[str, Any]) -> None:
    assert schema_of(hint) == expected


class Opaque:
    pass


REFUSED: list[tuple[str, object, str]] = [
    ("bytes", bytes, "cannot describe type `bytes`"),
    ("custom class", Opaque, "cannot describe type `Opaque`"),
    ("int keys", dict[int, str], "keys are strings, not `int`"),
    ("set", set[int], "cannot describe type"),
    ("recursive", Node, "recursive types are not supported"),
    ("object literal", Literal[b"x"], "is not a JSON scalar"),
]


@pytest.mark.parametrize(("hint", "message"), [(t, m) for _, t, m in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_schema_of_refuses(hint: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        schema_of(hint)


def _input_schema(fn: Any) -> dict[str, Any]:
    plugin = Plugin()
    plugin.tool(fn)
    return plugin.descriptors()[0].input_schema


def test_parameters_with_defaults_are_optional_and_unknown_properties_refused() -> None:
    def greet(name: str, excited: bool = False, times: int = 1, nick: Optional[str] = None) -> dict:
        """Greet."""

    assert _input_schema(greet) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "excited": {"type": "boolean", "default": False},
            "times": {"type": "integer", "default": 1},
            "nick": {"type": ["string", "null"], "default": None},
        },
        "required": ["name"],
        "additionalProperties": False,
    }


def test_default_that_breaks_the_schema_is_left_out() -> None:
    def f(tags: list[str] = None) -> None:  # type: ignore[assignment]
        """F."""

    assert _input_schema(f)["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}


def test_docstring_args_describe_parameters() -> None:
    def search(query: str, limit: int = 10) -> list[str]:
        """Search the index.

        Results are ranked.

        Args:
            query: What to look for,
                in plain words.
            limit (int): Most results.

        Returns:
            Matching titles.
        """

    plugin = Plugin()
    plugin.tool(search)
    d = plugin.descriptors()[0]
    assert d.description == "Search the index.\n\nResults are ranked."
    assert d.input_schema["properties"]["query"] == {"type": "string", "description": "What to look for, in plain words."}
    assert d.input_schema["properties"]["limit"]["description"] == "Most results."
    assert d.output_schema == {"type": "array", "items": {"type": "string"}}


def test_string_annotations_resolve() -> None:
    # This module uses `from __future__ import annotations`: every hint here is a string.
    def f(p: Point, c: Color = Color.RED) -> Movie:
        """F."""

    schema = _input_schema(f)
    assert schema["properties"]["p"] == schema_of(Point)
    assert schema["properties"]["c"] == {"type": "string", "enum": ["red", "green"], "default": "red"}


OUTPUTS: list[tuple[str, dict[str, Any], Any]] = [
    ("no annotation", {}, None),
    ("any", {"return": Any}, None),
    ("dict", {"return": dict}, {"type": "object"}),
    ("none", {"return": None}, {"type": "null"}),
    ("typeddict", {"return": Movie}, schema_of(Movie)),
]


@pytest.mark.parametrize(("annotations", "expected"), [(a, e) for _, a, e in OUTPUTS], ids=[n for n, _, _ in OUTPUTS])
def test_output_schema_from_return_annotation(annotations: dict[str, Any], expected: Any) -> None:
    def f():  # type: ignore[no-untyped-def]
        """F."""

    f.__annotations__ = dict(annotations)
    plugin = Plugin()
    plugin.tool(f)
    assert plugin.descriptors()[0].output_schema == expected


def test_output_schema_can_be_given_or_dropped() -> None:
    plugin = Plugin()

    @plugin.tool(output_schema={"type": "object", "required": ["n"]})
    def given() -> dict:
        """Given."""

    @plugin.tool(output_schema=None)
    def dropped() -> dict:
        """Dropped."""

    assert [d.output_schema for d in plugin.descriptors()] == [{"type": "object", "required": ["n"]}, None]


DECLARATION_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("bad name", {"name": "Greet"}, "tool name `Greet`"),
    ("empty name", {"name": ""}, "tool name ``"),
    ("no description", {"description": "  "}, "needs a description"),
]


@pytest.mark.parametrize(("kwargs", "message"), [(k, m) for _, k, m in DECLARATION_ERRORS], ids=[n for n, _, _ in DECLARATION_ERRORS])
def test_declaration_errors(kwargs: dict[str, Any], message: str) -> None:
    plugin = Plugin()
    with pytest.raises(SchemaError, match=message):

        @plugin.tool(**kwargs)
        def greet(name: str) -> None:
            pass


def test_signature_errors_name_the_tool_and_parameter() -> None:
    plugin = Plugin()
    with pytest.raises(SchemaError, match=r"tool `f`: payload: cannot describe type `bytes`"):

        @plugin.tool(description="F.")
        def f(payload: bytes) -> None:
            pass

    with pytest.raises(SchemaError, match=r"tool `g`: parameter `rest` must be a plain named parameter"):

        @plugin.tool(description="G.")
        def g(**rest: Any) -> None:
            pass

    with pytest.raises(SchemaError, match=r"tool `h`: result: cannot describe type `Opaque`"):

        @plugin.tool(description="H.")
        def h() -> Opaque:
            return Opaque()


def test_tool_declared_twice() -> None:
    plugin = Plugin()

    @plugin.tool(description="A.")
    def a() -> None:
        pass

    with pytest.raises(SchemaError, match="declared twice"):
        plugin.tool(a)


def test_async_tools_are_refused() -> None:
    plugin = Plugin()
    with pytest.raises(SchemaError, match="async tools are not supported"):

        @plugin.tool(description="A.")
        async def a() -> None:
            pass


CONVERSIONS: list[tuple[str, object, Any, Any]] = [
    ("int widened to float", float, 3, 3.0),
    ("integral float narrowed to int", int, 3.0, 3),
    ("enum", Color, "red", Color.RED),
    ("dataclass with default", Point, {"x": 1}, Point(1.0)),
    ("optional dataclass", Optional[Point], {"x": 1, "y": 2}, Point(1.0, 2.0)),
    ("optional none", Optional[Point], None, None),
    ("list of dataclass", list[Point], [{"x": 1}], [Point(1.0)]),
    ("dict of dataclass", dict[str, Point], {"a": {"x": 1}}, {"a": Point(1.0)}),
    ("tuple", tuple[str, float], ["a", 1], ("a", 1.0)),
    ("homogeneous tuple", tuple[Color, ...], ["red", "green"], (Color.RED, Color.GREEN)),
    ("typeddict stays a dict", Movie, {"title": "x", "year": 1999}, {"title": "x", "year": 1999}),
    ("union picks the matching arm", Union[int, Point], {"x": 2}, Point(2.0)),
    ("annotated", Annotated[float, "n"], 2, 2.0),
    ("any passes through", Any, {"a": 1}, {"a": 1}),
]


@pytest.mark.parametrize(
    ("hint", "value", "expected"), [(h, v, e) for _, h, v, e in CONVERSIONS], ids=[n for n, _, _, _ in CONVERSIONS]
)
def test_convert(hint: object, value: Any, expected: Any) -> None:
    from sigil_plugin._schema import convert

    result = convert(value, hint)
    assert result == expected
    assert type(result) is type(expected)
