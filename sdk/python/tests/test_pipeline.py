"""The execution pipeline, run by the harness in the host's order:
input schema → validate_pre → invoke → output schema → validate_post, and rollback when the
call fails after the tool started."""

from __future__ import annotations

from typing import Any

import pytest

from sigil_plugin import Call, Plugin, SchemaError, ToolError
from sigil_plugin.testing import Harness


def make_plugin(fail: str | None = None) -> tuple[Plugin, list[str]]:
    """A tool with every step; `fail` names the step that raises."""
    plugin = Plugin()
    ran: list[str] = []

    def step(name: str) -> None:
        ran.append(name)
        if fail == name:
            raise ToolError.failed(f"{name} failed")

    @plugin.tool
    def move(src: str, dst: str = "/tmp") -> dict:
        """Move a file."""
        step("invoke")
        return {"moved": src, "to": dst}

    @plugin.validate_pre(move)
    def pre(src: str) -> None:
        step("validate_pre")

    @plugin.validate_post("move")
    def post(output: dict, dst: str) -> None:
        step("validate_post")

    @plugin.rollback("move")
    def undo(output: dict | None, **input: Any) -> None:
        step("rollback")
        ran.append(f"rollback saw output={output} input={input}")

    return plugin, ran


CASES: list[tuple[str | None, list[tuple[str, str]]]] = [
    (None, [("validate_pre", "ok"), ("invoke", "ok"), ("validate_post", "ok")]),
    ("validate_pre", [("validate_pre", "failed: validate_pre failed")]),
    ("invoke", [("validate_pre", "ok"), ("invoke", "failed: invoke failed"), ("rollback", "ok")]),
    (
        "validate_post",
        [("validate_pre", "ok"), ("invoke", "ok"), ("validate_post", "failed: validate_post failed"), ("rollback", "ok")],
    ),
]


@pytest.mark.parametrize(("fail", "trace"), CASES, ids=[str(f) for f, _ in CASES])
def test_pipeline_order(fail: str | None, trace: list[tuple[str, str]]) -> None:
    plugin, _ = make_plugin(fail)
    h = Harness(plugin)
    if fail is None:
        assert h.call("move", {"src": "/a"}) == {"moved": "/a", "to": "/tmp"}
    else:
        with pytest.raises(ToolError) as raised:
            h.call("move", {"src": "/a"})
        assert raised.value == ToolError.failed(f"{fail} failed")
    assert h.trace == trace


def test_rollback_gets_the_output_only_when_the_tool_succeeded() -> None:
    plugin, ran = make_plugin("invoke")
    with pytest.raises(ToolError):
        Harness(plugin).call("move", {"src": "/a"})
    assert ran[-1] == "rollback saw output=None input={'src': '/a', 'dst': '/tmp'}"

    plugin, ran = make_plugin("validate_post")
    with pytest.raises(ToolError):
        Harness(plugin).call("move", {"src": "/a", "dst": "/b"})
    assert ran[-1] == "rollback saw output={'moved': '/a', 'to': '/b'} input={'src': '/a', 'dst': '/b'}"


def test_invalid_input_stops_before_any_step() -> None:
    plugin, ran = make_plugin()
    h = Harness(plugin)
    with pytest.raises(ToolError) as raised:
        h.call("move", {"src": 1})
    assert raised.value.kind == "invalid_input"
    assert raised.value.message == "input does not match the schema of `move`: /src: expected string, got integer 1"
    assert ran == []
    assert h.trace == [("input_schema", f"invalid_input: {raised.value.message}")]


def test_output_that_breaks_the_output_schema_fails_and_rolls_back() -> None:
    plugin = Plugin()

    @plugin.tool(output_schema={"type": "object", "required": ["id"]})
    def create() -> dict:
        """Create."""
        return {"name": "x"}

    @plugin.rollback(create)
    def undo(output: dict | None) -> None:
        pass

    h = Harness(plugin)
    with pytest.raises(ToolError) as raised:
        h.call("create")
    assert raised.value == ToolError.failed("output does not match the output schema of `create`: /: missing required property `id`")
    assert [step for step, _ in h.trace] == ["invoke", "output_schema", "rollback"]


def test_a_failed_rollback_keeps_the_original_error_and_notes_the_rollback() -> None:
    plugin = Plugin()

    @plugin.tool
    def pay(amount: int) -> None:
        """Pay."""
        raise ToolError.failed("card declined")

    @plugin.rollback(pay)
    def refund(amount: int) -> None:
        raise RuntimeError("bank offline")

    h = Harness(plugin)
    with pytest.raises(ToolError) as raised:
        h.call("pay", {"amount": 3})
    assert raised.value == ToolError.failed("card declined")
    assert raised.value.__notes__ == ["rollback failed too: failed: RuntimeError: bank offline"]
    assert h.trace == [("invoke", "failed: card declined"), ("rollback", "failed: RuntimeError: bank offline")]


def test_steps_flags_follow_the_declared_steps() -> None:
    plugin, _ = make_plugin()

    @plugin.tool
    def plain() -> None:
        """Plain."""

    @plugin.rollback(plain)
    def undo_plain() -> None:
        pass

    flags = {d.name: (d.steps.validate_pre, d.steps.validate_post, d.steps.rollback) for d in plugin.descriptors()}
    assert flags == {"move": (True, True, True), "plain": (False, False, True)}


def test_steps_receive_defaults_and_call_info() -> None:
    plugin = Plugin()
    seen: dict[str, Any] = {}

    @plugin.tool
    def send(to: str, urgent: bool = False) -> str:
        """Send."""
        return "sent"

    @plugin.validate_pre(send)
    def check(urgent: bool, call: Call) -> None:
        seen.update(urgent=urgent, user=call.user, tool=call.tool)

    Harness(plugin, user="ada").call("send", {"to": "bob"})
    assert seen == {"urgent": False, "user": "ada", "tool": "send"}


def test_a_step_the_host_calls_for_a_tool_without_it_is_a_no_op() -> None:
    plugin = Plugin()

    @plugin.tool
    def plain() -> None:
        """Plain."""

    call = Call(call_id="1", tool="plain")
    assert plugin._validate_pre(call, "{}") is None
    assert plugin._rollback(call, "{}", None) is None


STEP_ERRORS: list[tuple[str, str, str]] = [
    ("unknown tool", "ghost", "validate_pre step for unknown tool `ghost` (tools: `t`)"),
    ("unknown parameter", "t", "validate_pre step `step` of tool `t` takes `nope`, which the step is not given (it may take: `x`)"),
]


@pytest.mark.parametrize(("tool", "message"), [(t, m) for _, t, m in STEP_ERRORS], ids=[n for n, _, _ in STEP_ERRORS])
def test_step_declaration_errors(tool: str, message: str) -> None:
    plugin = Plugin()

    @plugin.tool
    def t(x: int) -> None:
        """T."""

    @plugin.validate_pre(tool)
    def step(nope: int) -> None:
        pass

    with pytest.raises(SchemaError) as raised:
        plugin.check()
    assert str(raised.value) == message
    with pytest.raises(SchemaError):
        Harness(plugin)


def test_two_steps_of_a_kind_and_output_clash_are_refused() -> None:
    plugin = Plugin()

    @plugin.tool
    def t(output: str) -> None:
        """T."""

    @plugin.validate_pre(t)
    def one() -> None:
        pass

    with pytest.raises(SchemaError, match="two validate_pre steps"):
        plugin.validate_pre(t)(one)
    with pytest.raises(SchemaError, match="clashes with the rollback step's `output`"):
        plugin.rollback(t)(one)
    with pytest.raises(SchemaError, match="is not a tool of this plugin"):
        plugin.rollback(one)
