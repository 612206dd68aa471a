"""The native harness: host calls served from memory, denied unless granted."""

from __future__ import annotations

import enum
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from sigil_plugin import Call, HostError, HttpResponse, Plugin, ToolError
from sigil_plugin.testing import Harness, HttpRequest, secret_placeholder

plugin = Plugin()


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclass
class Reading:
    value: float
    unit: Unit = Unit.C


@plugin.tool
def convert(reading: Reading, to: Unit, places: int = 1) -> Reading:
    """Convert a temperature."""
    assert isinstance(reading, Reading) and isinstance(reading.value, float) and isinstance(to, Unit)
    c = reading.value if reading.unit is Unit.C else (reading.value - 32) * 5 / 9
    value = c if to is Unit.C else c * 9 / 5 + 32
    return Reading(round(value, places), to)


@plugin.tool
def counter(step: int = 1) -> int:
    """Count calls in the key-value store."""
    n = plugin.host.kv.get_json("count", 0) + step
    plugin.host.kv.set_json("count", n)
    plugin.host.log.debug(f"count is {n}")
    return n


@plugin.tool
def forget(key: str) -> None:
    """Delete a key."""
    plugin.host.kv.delete(key)


@plugin.tool
def settings() -> dict:
    """Show the configuration."""
    return plugin.host.config()


@plugin.tool
def auth(name: str) -> str:
    """Build an authorization header."""
    return f"Bearer {plugin.host.secret_reference(name)}"


@plugin.tool
def who(call: Call) -> dict:
    """Who is calling."""
    return {"id": call.call_id, "user": call.user, "workspace": call.workspace, "tool": call.tool}


@plugin.tool
def weather(city: str, method: Literal["GET", "POST"] = "GET") -> dict:
    """Fetch the weather."""
    url = f"https://api.example.com/weather?city={city}"
    headers = {"Authorization": f"Bearer {plugin.host.secret_reference('token')}"}
    response = plugin.host.http_request(method, url, headers, body="" if method == "GET" else city)
    return {"status": response.status, "body": response.json() if response.ok else response.text()}


def test_inputs_are_converted_to_the_hinted_types_and_outputs_to_json() -> None:
    h = Harness(plugin)
    out = h.call("convert", {"reading": {"value": 212, "unit": "fahrenheit"}, "to": "celsius"})
    assert out == {"value": 100.0, "unit": "celsius"}


def test_kv_is_denied_unless_granted() -> None:
    with pytest.raises(HostError) as raised:
        Harness(plugin).call("counter")
    assert raised.value.kind == "denied"

    h = Harness(plugin, kv={"count": "41"})
    assert h.call("counter") == 42
    assert h.call("counter", {"step": 8}) == 50
    assert h.kv == {"count": b"50"}
    assert h.logs == [("debug", "count is 42"), ("debug", "count is 50")]
    h.call("forget", {"key": "count"})
    h.call("forget", {"key": "never-set"})
    assert h.kv == {}


def test_config_is_a_copy_of_the_given_mapping() -> None:
    assert Harness(plugin).call("settings") == {}
    assert Harness(plugin, config={"units": "metric"}).call("settings") == {"units": "metric"}


def test_secrets_are_references_and_only_granted_ones() -> None:
    h = Harness(plugin, secrets={"token"})
    assert h.call("auth", {"name": "token"}) == f"Bearer {secret_placeholder('token')}"
    with pytest.raises(ToolError) as raised:
        h.call("auth", {"name": "other"})
    assert raised.value == ToolError.denied("secret `other`: not granted")


def test_call_info() -> None:
    h = Harness(plugin, user="ada", workspace="lab")
    assert h.call("who") == {"id": "test-1", "user": "ada", "workspace": "lab", "tool": "who"}
    assert h.call("who", user="bob", call_id="c-9")["user"] == "bob"


def test_http_routes_functions_and_denials() -> None:
    url = "https://api.example.com/weather?city=oslo"
    h = Harness(plugin, secrets={"token"}, http={url: {"temp": -3}, f"POST {url}": (500, "oops")})
    assert h.call("weather", {"city": "oslo"}) == {"status": 200, "body": {"temp": -3}}
    assert h.call("weather", {"city": "oslo", "method": "POST"}) == {"status": 500, "body": "oops"}
    assert h.requests[0] == HttpRequest("GET", url, {"authorization": f"Bearer {secret_placeholder('token')}"}, b"")
    assert h.requests[1].body == b"oslo"
    with pytest.raises(HostError, match="no such route"):
        h.call("weather", {"city": "rome"})

    def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [("content-type", "application/json")], json.dumps({"echo": request.url}).encode())

    assert Harness(plugin, secrets={"token"}, http=handler).call("weather", {"city": "x"})["body"]["echo"].endswith("x")
    with pytest.raises(HostError, match="grants no network"):
        Harness(plugin, secrets={"token"}).call("weather", {"city": "x"})


def test_describe_and_unknown_tools() -> None:
    h = Harness(plugin)
    assert [d.name for d in h.describe()] == ["convert", "counter", "forget", "settings", "auth", "who", "weather"]
    with pytest.raises(ToolError, match="unknown tool `nope`"):
        h.call("nope")


def test_input_may_be_json_text() -> None:
    assert Harness(plugin, kv={}).call("counter", '{"step": 2}') == 2


def test_host_is_bound_only_inside_calls_or_with_blocks() -> None:
    h = Harness(plugin, kv={"a": b"1"})
    with pytest.raises(RuntimeError, match="needs a host"):
        plugin.host.kv.get("a")
    with h:
        assert plugin.host.kv.get("a") == b"1"
    with pytest.raises(RuntimeError, match="needs a host"):
        plugin.host.kv.get("a")


def test_native_tests_never_import_the_component_bindings(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            from sigil_plugin import Plugin
            plugin = Plugin()

            @plugin.tool(description="Echo.")
            def echo(text: str) -> str:
                return text

            Tool = plugin.export()
            """
        )
    )
    check = textwrap.dedent(
        """
        import sys
        import app
        from sigil_plugin.testing import Harness
        assert Harness(app.plugin).call("echo", {"text": "hi"}) == "hi"
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("wit_world", "componentize_py_types", "componentize_py_runtime", "poll_loop"))
        assert not leaked, leaked
        try:
            app.Tool().invoke(None, "{}")
        except RuntimeError as e:
            assert "only works inside a component" in str(e)
        else:
            raise AssertionError("the exported class ran natively")
        """
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
