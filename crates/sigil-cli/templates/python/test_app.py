"""Unit tests for {{name}}, run natively by pytest: no component is built."""

import pytest

from sigil_plugin import ToolError
from sigil_plugin.testing import Harness, load_app

app = load_app(__file__)  # app.py beside this file


def test_greet() -> None:
    h = Harness(app.plugin)
    assert h.call("greet", {"name": "ada"}) == {"greeting": "hello, ada"}
    assert h.call("greet", {"name": "ada", "excited": True}) == {"greeting": "hello, ada!"}
    assert h.logs == [("info", "greeting ada"), ("info", "greeting ada")]


def test_greet_refuses_a_blank_name() -> None:
    with pytest.raises(ToolError) as raised:
        Harness(app.plugin).call("greet", {"name": "  "})
    assert raised.value.kind == "invalid_input"


def test_input_is_checked_against_the_schema() -> None:
    with pytest.raises(ToolError) as raised:
        Harness(app.plugin).call("greet", {"name": "ada", "shout": True})
    assert raised.value.kind == "invalid_input"
    assert "unknown property `shout`" in raised.value.message
