"""Tests for pipeline-process-python: every path through the pipeline, natively against the
harness and as a process over gRPC. The plugin writes into a temporary directory that stands in
for the mounted /data/notes."""

import json
from pathlib import Path

import pytest

from sigil_plugin import ToolError
from sigil_plugin.process.testing import Harness, PluginProcess, load_app

HERE = Path(__file__).resolve().parent
app = load_app(__file__, "main")


def harness(directory: Path, **config: object) -> Harness:
    return Harness(app.plugin, config={"directory": str(directory), **config})


def files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir())}


def steps(trace: list[tuple[str, str]]) -> list[str]:
    return [step for step, _ in trace]


def test_writes_a_new_file(tmp_path: Path) -> None:
    h = harness(tmp_path)
    out = h.call("write_file", {"name": "hello.txt", "content": "hi"})
    assert out["path"] == str(tmp_path / "hello.txt") and out["bytes"] == 2
    assert files(tmp_path) == {"hello.txt": "hi"}
    assert h.trace == [("validate_pre", "ok"), ("invoke", "ok"), ("validate_post", "ok")]


def test_never_replaces_a_file(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("precious")
    h = harness(tmp_path)
    with pytest.raises(ToolError) as raised:
        h.call("write_file", {"name": "hello.txt", "content": "overwritten"})
    assert raised.value.kind == "invalid_input"
    assert steps(h.trace) == ["validate_pre"]
    assert files(tmp_path) == {"hello.txt": "precious"}


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", ".hidden", "..", ""])
def test_names_that_leave_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    h = harness(tmp_path)
    with pytest.raises(ToolError) as raised:
        h.call("write_file", {"name": name, "content": "x"})
    assert raised.value.kind == "invalid_input"
    assert files(tmp_path) == {}


def test_a_failing_invoke_is_rolled_back(tmp_path: Path) -> None:
    (tmp_path / "existing.txt").write_text("12345")
    h = harness(tmp_path, quota_bytes=8)  # the new file fits alone, not with the existing one
    with pytest.raises(ToolError) as raised:
        h.call("write_file", {"name": "new.txt", "content": "6789"})
    assert raised.value == ToolError.failed(f"{tmp_path} now holds 9 bytes, over the quota of 8")
    assert steps(h.trace) == ["validate_pre", "invoke", "rollback"]
    assert h.trace[-1] == ("rollback", "ok")
    assert files(tmp_path) == {"existing.txt": "12345"}
    assert h.logs[-1] == ("info", f"rollback: deleted {tmp_path / 'new.txt'}")


def test_a_failing_validate_post_is_rolled_back(tmp_path: Path) -> None:
    h = harness(tmp_path)
    with pytest.raises(ToolError) as raised:
        h.call("write_file", {"name": "data.json", "content": "{not json"})
    assert raised.value.kind == "failed" and "is not valid JSON" in raised.value.message
    assert steps(h.trace) == ["validate_pre", "invoke", "validate_post", "rollback"]
    assert h.trace[-1] == ("rollback", "ok")
    assert files(tmp_path) == {}


def test_rollback_leaves_a_file_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("someone else's")
    # The step alone, as the host calls it: rollback of a call whose invoke failed.
    with harness(tmp_path), pytest.raises(ToolError) as raised:
        app.plugin._rollback(app.Call("c1", "write_file"), json.dumps({"name": "hello.txt", "content": "mine"}), None)
    assert raised.value.kind == "failed" and "left it in place" in raised.value.message
    assert files(tmp_path) == {"hello.txt": "someone else's"}


def test_blast_radius_is_declared() -> None:
    import tomllib

    manifest = tomllib.loads((HERE / "plugin.toml").read_text())
    assert manifest["actions"]["write_file"] == {"scope": "host", "mutates_state": True, "reversible": True}
    (d,) = Harness(app.plugin).describe()
    assert (d.steps.validate_pre, d.steps.validate_post, d.steps.rollback) == (True, True, True)


# --- the same paths over gRPC, the plugin running as a process -----------------------------


def plugin_logs(p: PluginProcess) -> list[str]:
    return [message.split(":")[0] for _, _, message in p.host.logs]


def test_process_success(tmp_path: Path) -> None:
    with PluginProcess(HERE, config={"directory": str(tmp_path)}) as p:
        out = p.call("write_file", {"name": "hello.txt", "content": "hi"})
        assert out["sha256"] == "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
        assert p.trace == [("validate_pre", "ok"), ("invoke", "ok"), ("validate_post", "ok")]
        assert plugin_logs(p) == ["validate_pre", "invoke", "validate_post"]
        # Every step of one call carries the same call id to the host.
        assert {call_id for _, call_id in p.host.calls} == {"call-1"}
    assert files(tmp_path) == {"hello.txt": "hi"}


def test_process_failing_invoke_calls_rollback(tmp_path: Path) -> None:
    (tmp_path / "existing.txt").write_text("12345")
    with PluginProcess(HERE, config={"directory": str(tmp_path), "quota_bytes": 8}) as p:
        with pytest.raises(ToolError) as raised:
            p.call("write_file", {"name": "new.txt", "content": "6789"})
        assert raised.value.kind == "failed"
        assert steps(p.trace) == ["validate_pre", "invoke", "rollback"]
        # What the plugin itself did, in order, as it told the host.
        assert plugin_logs(p) == ["validate_pre", "invoke", "rollback"]
    assert files(tmp_path) == {"existing.txt": "12345"}


def test_process_failing_validate_post_calls_rollback(tmp_path: Path) -> None:
    with PluginProcess(HERE, config={"directory": str(tmp_path)}) as p:
        with pytest.raises(ToolError) as raised:
            p.call("write_file", {"name": "data.json", "content": "{not json"})
        assert "is not valid JSON" in raised.value.message
        assert steps(p.trace) == ["validate_pre", "invoke", "validate_post", "rollback"]
        assert plugin_logs(p) == ["validate_pre", "invoke", "rollback"]
    assert files(tmp_path) == {}
