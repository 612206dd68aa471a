"""`python -m sigil_plugin`: describe natively, and the build's checks before componentize-py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sigil_plugin.__main__ import _world

APP = textwrap.dedent(
    """
    from sigil_plugin import Plugin
    plugin = Plugin()

    @plugin.tool
    def echo(text: str) -> str:
        \"\"\"Echo the text.\"\"\"
        return text

    Tool = plugin.export()
    """
)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sigil_plugin", *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_describe(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    done = run("describe", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "name": "echo",
            "description": "Echo the text.",
            "input_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": False,
            },
            "output_schema": {"type": "string"},
            "steps": {"validate_pre": False, "validate_post": False, "rollback": False},
        }
    ]


def test_build_needs_an_app_and_wit(tmp_path: Path) -> None:
    done = run("build", str(tmp_path), cwd=tmp_path)
    assert done.returncode != 0 and "no app module `app`" in done.stderr
    (tmp_path / "app.py").write_text(APP)
    done = run("build", str(tmp_path), cwd=tmp_path)
    assert done.returncode != 0 and "no WIT directory" in done.stderr


WORLDS = [
    ({}, "tool-plugin"),
    ({"capabilities": {"request": [{"capability": "kv.read", "reason": "r"}]}}, "tool-plugin"),
    ({"capabilities": {"request": [{"capability": "net.connect:api.example.com:443", "reason": "r"}]}}, "tool-plugin-http"),
]


@pytest.mark.parametrize(("manifest", "world"), WORLDS)
def test_world_follows_network_capabilities(manifest: dict, world: str) -> None:
    assert _world(manifest) == world
