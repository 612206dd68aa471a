"""Tests for hello-process-python: the tools natively against the harness, then the whole
plugin as a process over gRPC, the way Sigil runs it (minus the sandbox)."""

import json
from pathlib import Path

import pytest

from sigil_plugin import HostError, ToolError
from sigil_plugin.process.testing import Harness, PluginProcess, load_app

HERE = Path(__file__).resolve().parent
app = load_app(__file__, "main")


def test_greet_counts_per_name() -> None:
    h = Harness(app.plugin, kv={})
    assert h.call("greet", {"name": "ada"}) == {"greeting": "hello, ada", "times": 1}
    assert h.call("greet", {"name": "ada", "excited": True}) == {"greeting": "hello, ada!", "times": 2}
    assert h.call("greet", {"name": "bob"}, user="carol")["times"] == 1
    assert json.loads(h.kv["greetings"]) == {"ada": 2, "bob": 1}
    assert h.logs[-1] == ("info", "greeting bob for carol (time 1)")


def test_salutation_comes_from_config() -> None:
    h = Harness(app.plugin, kv={}, config={"salutation": "ahoy"})
    assert h.call("greet", {"name": "ada"})["greeting"] == "ahoy, ada"


def test_blank_name_is_invalid_input() -> None:
    with pytest.raises(ToolError) as raised:
        Harness(app.plugin, kv={}).call("greet", {"name": "  "})
    assert raised.value == ToolError.invalid_input("`name` is blank")


def test_without_the_kv_grant_the_call_is_denied() -> None:
    with pytest.raises(HostError) as raised:
        Harness(app.plugin).call("greet", {"name": "ada"})
    assert raised.value.kind == "denied"


def test_forget() -> None:
    h = Harness(app.plugin, kv={"greetings": '{"ada": 3}'})
    assert h.call("forget", {"name": "ada"}) is True
    assert h.call("forget", {"name": "ada"}) is False
    assert json.loads(h.kv["greetings"]) == {}


def test_as_a_process_over_grpc() -> None:
    with PluginProcess(HERE, kv={}, config={"salutation": "hi"}) as p:
        assert [d.name for d in p.describe()] == ["greet", "forget"]
        assert p.call("greet", {"name": "ada"}) == {"greeting": "hi, ada", "times": 1}
        assert p.call("greet", {"name": "ada", "excited": True}) == {"greeting": "hi, ada!", "times": 2}
        assert json.loads(p.host.kv["greetings"]) == {"ada": 2}
        assert [(level, message) for _, level, message in p.host.logs] == [
            ("info", "greeting ada (time 1)"),
            ("info", "greeting ada (time 2)"),
        ]
        with pytest.raises(ToolError) as raised:
            p.call("greet", {"name": "ada", "loud": True})
        assert raised.value.kind == "invalid_input"
        assert p.shutdown() == 0
        assert p.stdout == b""


def test_as_a_process_without_the_kv_grant() -> None:
    with PluginProcess(HERE) as p:
        with pytest.raises(ToolError) as raised:
            p.call("greet", {"name": "ada"})
    assert raised.value.kind == "denied"
    assert "kv.read:greetings" in raised.value.message
