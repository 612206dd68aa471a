"""The MCP server over streamable HTTP at a running `sigil serve`'s `/mcp`, driven by the
official MCP Python SDK with a bearer token.

The runner starts the daemon and sets:
  SIGIL_MCP_URL       the endpoint, e.g. http://127.0.0.1:PORT/mcp
  SIGIL_TOKEN         a bearer token whose user may call `text/sha256`
  SIGIL_DENIED_TOKEN  a bearer token whose user the policy denies `tool.text.*`
Each is required: without them these tests fail, saying so.
"""

from __future__ import annotations

import json
import os

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import HELLO_SHA256

MODES = ["legacy", "auto"]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    names = ["SIGIL_MCP_URL", "SIGIL_TOKEN", "SIGIL_DENIED_TOKEN"]
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: these tests need a running `sigil serve`; "
            "tests/mcp/run starts one and sets them (see this file's docstring)",
            pytrace=False,
        )
    return {name: os.environ[name] for name in names}


def client(url: str, http: httpx2.AsyncClient, mode: str) -> Client:
    """An SDK client whose requests go out through `http` (which carries the token)."""
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def bearer(token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@pytest.mark.parametrize("mode", MODES)
def test_lists_tools_and_calls_one(env: dict[str, str], mode: str) -> None:
    async def main() -> None:
        async with bearer(env["SIGIL_TOKEN"]) as http:
            async with client(env["SIGIL_MCP_URL"], http, mode) as mcp:
                assert mcp.server_info is not None
                assert mcp.server_info.name == "sigil"
                tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
                assert "text__sha256" in tools, sorted(tools)
                assert tools["text__sha256"].input_schema["required"] == ["text"]
                assert tools["text__sha256"].output_schema is not None

                result = await mcp.call_tool("text__sha256", {"text": "hello"})
                assert not result.is_error, text_of(result)
                assert result.structured_content == {"sha256": HELLO_SHA256}
                assert json.loads(text_of(result)) == {"sha256": HELLO_SHA256}
                assert (result.meta or {}).get("sigil/call_id")

    anyio.run(main)


@pytest.mark.parametrize("mode", MODES)
def test_a_call_the_policy_denies_comes_back_as_an_error_result(
    env: dict[str, str], mode: str
) -> None:
    async def main() -> None:
        async with bearer(env["SIGIL_DENIED_TOKEN"]) as http:
            async with client(env["SIGIL_MCP_URL"], http, mode) as mcp:
                # Not listed to this caller, and refused when called all the same.
                listed = {tool.name for tool in (await mcp.list_tools()).tools}
                assert listed == {"fs__list_dir", "fs__read_text"}, sorted(listed)
                result = await mcp.call_tool("text__sha256", {"text": "hello"})
                assert result.is_error
                assert text_of(result).startswith("denied: "), text_of(result)
                assert result.structured_content is None
                assert (result.meta or {}).get("sigil/error") == "forbidden"

    anyio.run(main)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no-token", "unknown-token", "not-bearer"],
)
def test_a_request_without_a_valid_token_is_refused(
    env: dict[str, str], headers: dict[str, str]
) -> None:
    async def main() -> httpx2.Response:
        async with httpx2.AsyncClient(timeout=60) as http:
            return await http.post(
                env["SIGIL_MCP_URL"],
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    "MCP-Protocol-Version": "2025-11-25",
                },
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "text__sha256", "arguments": {"text": "hello"}},
                },
            )

    response = anyio.run(main)
    assert response.status_code == 401, response.text
    assert HELLO_SHA256 not in response.text
