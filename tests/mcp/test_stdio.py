"""`sigil mcp` on stdio, driven by the official MCP Python SDK as a client would: the SDK starts
the binary as a subprocess with its own data directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from conftest import BUILTIN_TOOLS, HELLO_SHA256, audit_records, sigil_bin

# Both protocol eras: the initialize handshake, and the SDK's default (discover first, the
# newest revision both sides speak).
MODES = ["legacy", "auto"]


def server(home: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=str(sigil_bin()), args=["--home", str(home), "mcp", *args]
    )


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@pytest.mark.parametrize("mode", MODES)
def test_lists_the_builtin_tools_with_their_schemas(home: Path, mode: str) -> None:
    async def main() -> None:
        async with Client(server(home), mode=mode) as client:
            assert client.server_info is not None
            assert client.server_info.name == "sigil"
            assert "Sigil" in (client.instructions or "")
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            # Only what the caller may call: the local user is denied `text/stats`.
            assert set(tools) == BUILTIN_TOOLS - {"text__stats"}
            sha = tools["text__sha256"]
            assert sha.description == "The SHA-256 digest of a text's UTF-8 bytes, in hex."
            assert sha.input_schema["type"] == "object"
            assert sha.input_schema["required"] == ["text"]
            assert sha.output_schema is not None
            assert sha.output_schema["required"] == ["sha256"]
            assert tools["fs__read_text"].input_schema["required"] == ["path"]

    anyio.run(main)
    # Listing is not an action: nothing was recorded.
    assert audit_records(home) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_call_returns_the_tools_result_and_is_audited(home: Path, mode: str) -> None:
    async def main() -> dict:
        async with Client(server(home), mode=mode) as client:
            result = await client.call_tool("text__sha256", {"text": "hello"})
            assert not result.is_error, text_of(result)
            assert result.structured_content == {"sha256": HELLO_SHA256}
            assert json.loads(text_of(result)) == {"sha256": HELLO_SHA256}
            return result.meta or {}

    meta = anyio.run(main)
    call_id = meta["sigil/call_id"]
    records = audit_records(home, "--call", call_id)
    assert [(r["kind"], r["decision"], r["outcome"]) for r in records] == [
        ("decision", "allow", None),
        ("outcome", None, "ok"),
    ]
    for record in records:
        assert record["actor"]["user"] == "local"
        assert record["actor"]["channel"] == "mcp"


@pytest.mark.parametrize("mode", MODES)
def test_a_call_the_policy_denies_comes_back_as_an_error_result(home: Path, mode: str) -> None:
    async def main() -> None:
        async with Client(server(home), mode=mode) as client:
            result = await client.call_tool("text__stats", {"text": "a b"})
            assert result.is_error
            assert text_of(result).startswith("denied: "), text_of(result)
            assert "tool.text.stats" in text_of(result)
            assert (result.meta or {}).get("sigil/error") == "forbidden"

    anyio.run(main)
    denies = audit_records(home, "--user", "local", "--decision", "deny")
    assert [r["capability"] for r in denies] == ["tool.text.stats"]
    assert denies[0]["actor"]["channel"] == "mcp"


def test_the_user_flag_chooses_who_the_calls_run_as(home: Path) -> None:
    async def main() -> None:
        async with Client(server(home, "--user", "mallory")) as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
            assert listed == {"fs__list_dir", "fs__read_text"}
            result = await client.call_tool("text__sha256", {"text": "hello"})
            assert result.is_error
            assert "tool.text.*" in text_of(result)

    anyio.run(main)
    denies = audit_records(home, "--user", "mallory", "--decision", "deny")
    assert [r["capability"] for r in denies] == ["tool.text.sha256"]


def test_arguments_that_break_the_schema_are_an_error_result(home: Path) -> None:
    async def main() -> None:
        async with Client(server(home)) as client:
            result = await client.call_tool("text__sha256", {"text": 42})
            assert result.is_error
            assert text_of(result).startswith("invalid arguments for `text/sha256`"), text_of(result)

    anyio.run(main)


@pytest.mark.parametrize("name", ["text__nope", "text/sha256", "nope__sha256"])
def test_an_unknown_tool_is_a_protocol_error(home: Path, name: str) -> None:
    async def main() -> None:
        async with Client(server(home), mode="legacy") as client:
            with pytest.raises(MCPError) as raised:
                await client.call_tool(name, {"text": "hello"})
            assert raised.value.code == -32602
            assert "unknown tool" in raised.value.message

    anyio.run(main)
    assert audit_records(home) == []


def test_stdout_carries_only_the_protocol(home: Path) -> None:
    """With every log level on, standard output still holds only JSON-RPC messages: the
    diagnostics go to standard error."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "text__sha256", "arguments": {"text": "hello"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "text__stats", "arguments": {"text": "hello"}},
        },
    ]
    stdin = "".join(json.dumps(m) + "\n" for m in messages)
    done = subprocess.run(
        [str(sigil_bin()), "-vv", "--home", str(home), "mcp"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={"SIGIL_LOG": "trace", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    replies = [json.loads(line) for line in lines]  # every line is one JSON document
    assert all(reply.get("jsonrpc") == "2.0" for reply in replies), done.stdout
    by_id = {reply["id"]: reply for reply in replies}
    assert sorted(by_id) == [1, 2, 3, 4], done.stdout
    assert by_id[1]["result"]["serverInfo"]["name"] == "sigil"
    assert {t["name"] for t in by_id[2]["result"]["tools"]} == BUILTIN_TOOLS - {"text__stats"}
    assert by_id[3]["result"]["structuredContent"] == {"sha256": HELLO_SHA256}
    assert by_id[4]["result"]["isError"] is True
    # The diagnostics did happen, on standard error.
    assert "serving mcp on stdio" in done.stderr
    assert "DEBUG" in done.stderr or "TRACE" in done.stderr


def run_raw(home: Path, messages: list[dict]) -> subprocess.CompletedProcess:
    """Runs `sigil mcp` with `messages` as its whole standard input."""
    return subprocess.run(
        [str(sigil_bin()), "--home", str(home), "mcp"],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_client_that_leaves_before_any_request_ends_the_server_cleanly(home: Path) -> None:
    done = run_raw(home, [])
    assert (done.returncode, done.stdout) == (0, ""), done.stderr

    # A 2026-07-28 client probing the server, then leaving.
    discover = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    done = run_raw(home, [discover])
    assert done.returncode == 0, done.stderr
    [reply] = [json.loads(line) for line in done.stdout.splitlines()]
    assert reply["id"] == 1
    assert reply["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "sigil"
    assert "2026-07-28" in reply["result"]["supportedVersions"]
