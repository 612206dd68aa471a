"""The `sigil plugin new --lang python` template: rendered with a plugin id, its own tests pass
and its manifest is what the wasm tier expects."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[3] / "crates" / "sigil-cli" / "templates" / "python"
FILES = ["plugin.toml", "app.py", "test_app.py", "README.md", ".gitignore"]


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    out = tmp_path / "my-tool"
    out.mkdir()
    for name in FILES:
        (out / name).write_text((TEMPLATE / name).read_text().replace("{{name}}", "my-tool"))
    return out


def test_template_has_only_the_name_placeholder() -> None:
    for name in FILES:
        text = (TEMPLATE / name).read_text()
        assert "{{" not in text.replace("{{name}}", ""), name


def test_manifest(rendered: Path) -> None:
    manifest = tomllib.loads((rendered / "plugin.toml").read_text())
    assert manifest["id"] == "my-tool"
    assert manifest["kinds"] == ["tool"]
    assert manifest["engine"] == ">=0.1"
    assert manifest["execution"]["tier"] == "wasm"
    assert manifest["execution"]["entry"] == "plugin.wasm"
    assert set(manifest["actions"]) == {"greet"}


def test_rendered_tests_pass(rendered: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=rendered, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
