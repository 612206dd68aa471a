"""Tests for {{name}}: the tools natively against the harness, then the whole plugin as a
process over gRPC, the way Sigil runs it (minus the sandbox)."""

from pathlib import Path

import pytest

from sigil_plugin import ToolError
from sigil_plugin.process.testing import Harness, PluginProcess, load_app

HERE = Path(__file__).resolve().parent
app = load_app(__file__, "main")  # main.py beside this file


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


def test_as_a_process_over_grpc() -> None:
    with PluginProcess(HERE) as p:
        assert [d.name for d in p.describe()] == ["greet"]
        assert p.call("greet", {"name": "ada"}) == {"greeting": "hello, ada"}
        assert [(level, message) for _, level, message in p.host.logs] == [
            ("info", "greeting ada"),
        ]
        assert p.shutdown() == 0
