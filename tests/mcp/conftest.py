"""Shared helpers for the MCP tests: where the `sigil` binary is, and a data directory with a
policy the tests know."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

BUILTIN_TOOLS = {"fs__list_dir", "fs__read_text", "text__sha256", "text__stats"}

# The local user may call everything except `text/stats`; mallory may call no `text` tool.
CONFIG = """
[defaults]
user = "local"
workspace = "default"

[workspaces.default]
allow = ["*"]

[users.local]
permissions = ["*"]
deny = ["tool.text.stats"]

[users.mallory]
permissions = ["*"]
deny = ["tool.text.*"]
"""


def sigil_bin() -> Path:
    """The `sigil` binary under test: $SIGIL_BIN, else target/debug/sigil."""
    path = Path(os.environ.get("SIGIL_BIN") or ROOT / "target" / "debug" / "sigil")
    if not path.is_file():
        pytest.fail(
            f"sigil binary not found at {path}: build it with `cargo build -p sigil-cli` "
            "or point SIGIL_BIN at it (tests/mcp/run does both)",
            pytrace=False,
        )
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data directory with CONFIG as its sigil.toml."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "sigil.toml").write_text(CONFIG)
    return home


def audit_records(home: Path, *args: str) -> list[dict]:
    """`sigil audit list --json` for `home`, filtered by `args`."""
    out = subprocess.run(
        [str(sigil_bin()), "--home", str(home), "audit", "list", "--json", "--limit", "1000", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]
