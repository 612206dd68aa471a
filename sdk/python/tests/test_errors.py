"""How failures reach the host: `ToolError` kinds pass through, anything else is `failed`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sigil_plugin import Call, HostError, Plugin, ToolError
from sigil_plugin.testing import Harness

plugin = Plugin()


@plugin.tool
def fail(how: str) -> Any:
    """Fail in the way asked."""
    if how == "invalid":
        raise ToolError.invalid_input("count must be even")
    if how == "failed":
        raise ToolError.failed("upstream answered 503")
    if how == "denied":
        raise ToolError.denied("kv.write:x")
    if how == "plain":
        raise ToolError("plain message")
    if how == "value":
        raise ValueError("bad value")
    if how == "empty":
        raise KeyError
    if how == "host":
        return plugin.host.kv.get("k")
    if how == "not json":
        return object()
    if how == "nan":
        return float("nan")
    return "fine"


MAPPING: list[tuple[str, ToolError]] = [
    ("invalid", ToolError("count must be even", "invalid_input")),
    ("failed", ToolError("upstream answered 503", "failed")),
    ("denied", ToolError("kv.write:x", "denied")),
    ("plain", ToolError("plain message", "failed")),
    ("value", ToolError("ValueError: bad value", "failed")),
    ("empty", ToolError("KeyError", "failed")),
    ("host", ToolError("kv.get `k`: denied: the harness grants no key-value access (pass kv={})", "denied")),
    ("not json", ToolError("tool `fail` returned a value that is not JSON: a value of type `object` is not JSON", "failed")),
    ("nan", ToolError("tool `fail` returned a value that is not JSON: Out of range float values are not JSON compliant", "failed")),
]


@pytest.mark.parametrize(("how", "error"), MAPPING, ids=[h for h, _ in MAPPING])
def test_error_mapping(how: str, error: ToolError) -> None:
    with pytest.raises(ToolError) as raised:
        Harness(plugin).call("fail", {"how": how})
    assert (raised.value.kind, raised.value.message) == (error.kind, error.message)


def test_host_errors_are_denied_tool_errors() -> None:
    assert issubclass(HostError, ToolError)
    assert HostError("no").kind == "denied"


def test_unexpected_exceptions_are_logged_with_their_traceback() -> None:
    h = Harness(plugin)
    with pytest.raises(ToolError):
        h.call("fail", {"how": "value"})
    level, message = h.logs[-1]
    assert level == "error"
    assert message.startswith("tool `fail` invoke raised:\nTraceback")
    assert message.endswith("ValueError: bad value")


DISPATCH: list[tuple[str, str, str, ToolError]] = [
    ("unknown tool", "nope", "{}", ToolError.failed("unknown tool `nope` (this plugin has: `fail`)")),
    ("input not json", "fail", "{", ToolError.invalid_input("input is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")),
    ("input not an object", "fail", "[]", ToolError.invalid_input("/: expected object, got array []")),
    ("missing property", "fail", "{}", ToolError.invalid_input("/: missing required property `how`")),
]


@pytest.mark.parametrize(
    ("tool", "input_json", "error"), [(t, i, e) for _, t, i, e in DISPATCH], ids=[n for n, _, _, _ in DISPATCH]
)
def test_dispatch_checks_input_itself(tool: str, input_json: str, error: ToolError) -> None:
    # What the component does when a host hands it something the schema does not allow.
    with pytest.raises(ToolError) as raised:
        plugin._invoke(Call(call_id="1", tool=tool), input_json)
    assert raised.value == error


def test_dispatch_returns_compact_json() -> None:
    assert plugin._invoke(Call(call_id="1", tool="fail"), json.dumps({"how": "ok"})) == '"fine"'


def test_tool_error_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown tool error kind `oops`"):
        ToolError("x", "oops")  # type: ignore[arg-type]
    assert repr(ToolError.invalid_input("x")) == "ToolError.invalid_input('x')"
