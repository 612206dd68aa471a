"""Tests for hello-python, run natively against the harness."""

import json

import pytest

from sigil_plugin import HostError, ToolError
from sigil_plugin.testing import Harness, load_app

app = load_app(__file__)


def counts(h: Harness) -> dict:
    return json.loads(h.kv["greetings"]) if h.kv and "greetings" in h.kv else {}


def test_greet_counts_per_name() -> None:
    h = Harness(app.plugin, kv={})
    assert h.call("greet", {"name": "ada"}) == {"greeting": "hello, ada", "times": 1}
    assert h.call("greet", {"name": "ada", "excited": True}) == {"greeting": "hello, ada!", "times": 2}
    assert h.call("greet", {"name": "bob"})["times"] == 1
    assert counts(h) == {"ada": 2, "bob": 1}
    assert h.trace == [("validate_pre", "ok"), ("invoke", "ok"), ("validate_post", "ok")]


def test_blank_name_is_refused_before_anything_is_counted() -> None:
    h = Harness(app.plugin, kv={})
    with pytest.raises(ToolError) as raised:
        h.call("greet", {"name": " "})
    assert raised.value == ToolError.invalid_input("`name` is blank")
    assert h.trace == [("validate_pre", "invalid_input: `name` is blank")]
    assert counts(h) == {}


def test_too_long_greeting_is_rolled_back() -> None:
    h = Harness(app.plugin, kv={"greetings": '{"ada": 1}'}, config={"max_length": 10})
    with pytest.raises(ToolError) as raised:
        h.call("greet", {"name": "ada lovelace"})
    assert raised.value == ToolError.failed("the greeting is longer than max_length (10)")
    assert [step for step, _ in h.trace] == ["validate_pre", "invoke", "validate_post", "rollback"]
    assert counts(h) == {"ada": 1}


def test_without_the_kv_grant_the_call_is_denied() -> None:
    with pytest.raises(HostError) as raised:
        Harness(app.plugin).call("greet", {"name": "ada"})
    assert raised.value.kind == "denied"


def test_schemas() -> None:
    (greet,) = Harness(app.plugin).describe()
    assert greet.input_schema["required"] == ["name"]
    assert greet.input_schema["additionalProperties"] is False
    assert greet.output_schema["required"] == ["greeting", "times"]
    assert (greet.steps.validate_pre, greet.steps.validate_post, greet.steps.rollback) == (True, True, True)
