"""The process tier: a plugin started as a real process, driven over real gRPC on Unix sockets
by a test host that also serves the `Host` service. No sandbox here; the Rust host's tests run
plugins under bubblewrap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sigil_plugin import ToolError, _codegen
from sigil_plugin.process import PROTOCOL_VERSION
from sigil_plugin.process._proto import plugin_pb2, types_pb2
from sigil_plugin.process.testing import KIT_PATH, PATIENCE, Harness, PluginProcess, load_app, secret_placeholder

APP = Path(__file__).resolve().parent / "apps" / "process"


@pytest.fixture
def proc() -> Iterator[PluginProcess]:
    p = PluginProcess(
        APP,
        plugin_id="process-test",
        kv={},
        config={"colour": "blue"},
        secrets={"token"},
        http={"https://api.example.com/ok": {"fine": True}},
    )
    with p:
        yield p


# --- the stubs --------------------------------------------------------------------------------


def test_checked_in_stubs_match_the_protocol() -> None:
    assert _codegen.check(_codegen.default_proto_root()) == []


def test_a_stale_stub_is_caught(tmp_path: Path) -> None:
    for stub in _codegen.PROTO_PACKAGE_DIR.glob("*_pb2*.py"):
        (tmp_path / stub.name).write_text(stub.read_text())
    stale = tmp_path / "host_pb2.py"
    stale.write_text(stale.read_text().replace("sigil.plugin.v1", "sigil.plugin.v0", 1))
    problems = _codegen.check(_codegen.default_proto_root(), tmp_path)
    assert len(problems) == 1 and "host_pb2.py" in problems[0]


def test_the_stubs_import_nothing_outside_the_kit() -> None:
    for stub in _codegen.PROTO_PACKAGE_DIR.glob("*_pb2*.py"):
        assert "from sigil.plugin" not in stub.read_text(), stub


# --- lifecycle ---------------------------------------------------------------------------------


def test_init_health_shutdown() -> None:
    p = PluginProcess(APP)
    try:
        p.start()
        assert p.health() == ("STATUS_SERVING", "waiting for Init")
        assert p.init() == PROTOCOL_VERSION == "1.0.0"
        assert p.health() == ("STATUS_SERVING", "")
        assert p.shutdown(drain_timeout_ms=1000) == 0
        assert not os.path.exists(p.socket_path)
    finally:
        p.close()


def test_calls_before_init_are_refused() -> None:
    p = PluginProcess(APP)
    try:
        p.start()
        with pytest.raises(grpc.RpcError) as raised:
            p.invoke("echo", {"text": "x"})
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Init has not been called" in raised.value.details()
    finally:
        p.close()


def test_another_major_protocol_version_is_refused() -> None:
    p = PluginProcess(APP)
    try:
        p.start()
        with pytest.raises(grpc.RpcError) as raised:
            p.init("2.0.0")
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "`2.0.0`" in raised.value.details()
        assert p.init("1.4.2") == "1.0.0"  # a minor difference is fine
    finally:
        p.close()


def test_a_request_without_call_id_is_refused(proc: PluginProcess) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        proc.tool.Invoke(plugin_pb2.InvokeRequest(call=types_pb2.CallInfo(tool="echo"), input="{}"), timeout=PATIENCE)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_shutdown_drains_the_call_in_flight(proc: PluginProcess, tmp_path: Path) -> None:
    release = tmp_path / "release"
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(proc.invoke("wait_for", {"path": str(release)})))
    caller.start()
    while not any(message == "waiting" for _, _, message in list(proc.host.logs)):
        assert caller.is_alive() and proc.process.poll() is None
        time.sleep(0.01)  # polling for the log line; no duration is asserted

    proc.lifecycle.Shutdown(plugin_pb2.ShutdownRequest(drain_timeout_ms=600_000), timeout=PATIENCE)
    assert proc.health() == ("STATUS_NOT_SERVING", "draining")
    with pytest.raises(grpc.RpcError) as raised:
        proc.invoke("echo", {"text": "too late"})
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    release.write_text("done")
    caller.join(PATIENCE)
    assert result == ["done"]
    assert proc.process.wait(timeout=PATIENCE) == 0


def test_a_call_that_outlives_the_drain_timeout_does_not_keep_the_process(proc: PluginProcess, tmp_path: Path) -> None:
    never = tmp_path / "never"
    errors: list[grpc.StatusCode] = []

    def run() -> None:
        try:
            proc.invoke("wait_for", {"path": str(never)})
        except grpc.RpcError as e:
            errors.append(e.code())

    caller = threading.Thread(target=run)
    caller.start()
    while not any(message == "waiting" for _, _, message in list(proc.host.logs)):
        assert caller.is_alive() and proc.process.poll() is None
        time.sleep(0.01)  # polling for the log line; no duration is asserted
    proc.lifecycle.Shutdown(plugin_pb2.ShutdownRequest(drain_timeout_ms=0), timeout=PATIENCE)
    assert proc.process.wait(timeout=PATIENCE) == 0
    caller.join(PATIENCE)
    assert len(errors) == 1 and errors[0] in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert b"abandoned after the drain timeout" in proc.stderr


def test_sigterm_stops_the_plugin(proc: PluginProcess) -> None:
    proc.process.send_signal(signal.SIGTERM)
    assert proc.process.wait(timeout=PATIENCE) == 0


def test_without_a_socket_the_plugin_exits_with_a_message_on_stderr() -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(KIT_PATH)}
    done = subprocess.run([sys.executable, "main.py"], cwd=APP, env=env, capture_output=True, timeout=PATIENCE)
    assert done.returncode == 1
    assert b"SIGIL_PLUGIN_SOCKET is not set" in done.stderr
    assert b"SIGIL_PLUGIN_SOCKET" not in done.stdout


def test_an_unusable_socket_path_is_reported() -> None:
    p = PluginProcess(APP, env={"SIGIL_PLUGIN_SOCKET": "/nonexistent/dir/plugin.sock"})
    try:
        with pytest.raises(RuntimeError) as raised:
            p.start()
        assert "/nonexistent/dir" in str(raised.value)
    finally:
        p.close()


# --- the tool contract -------------------------------------------------------------------------


def test_describe_matches_the_native_descriptors(proc: PluginProcess) -> None:
    native = Harness(load_app(APP / "main.py", "main").plugin).describe()
    assert proc.describe() == native
    staged = proc.descriptor("staged")
    assert (staged.steps.validate_pre, staged.steps.validate_post, staged.steps.rollback) == (True, True, True)


def test_invoke_carries_who_is_calling(proc: PluginProcess) -> None:
    reply = proc.tool.Invoke(
        plugin_pb2.InvokeRequest(
            call=types_pb2.CallInfo(call_id="c-42", tool="echo", user="ada", workspace="lab"),
            input=json.dumps({"text": "hi"}),
        ),
        timeout=PATIENCE,
    )
    assert json.loads(reply.output) == {"text": "hi", "call_id": "c-42", "tool": "echo", "user": "ada", "workspace": "lab"}


def test_stdout_is_never_part_of_the_protocol(proc: PluginProcess) -> None:
    assert proc.call("echo", {"text": "still works"})["text"] == "still works"
    assert proc.call("crash", {"how": "none"}) == "fine"
    assert proc.shutdown() == 0
    assert proc.stdout.startswith(b"PRI * HTTP/2.0\r\n")
    assert bytes(range(256)) in proc.stdout
    assert proc.stdout.count(b"junk from a tool") == 2


def test_every_host_call_carries_the_call_id(proc: PluginProcess) -> None:
    out = proc.call("host_calls", {"key": "k", "secret": "token", "url": "https://api.example.com/ok"})
    assert out == {
        "kv_after_set": "0076616c7565",
        "kv_after_delete": None,
        "config": {"colour": "blue"},
        "secret": secret_placeholder("token"),
        "http": {"status": 200, "body": '{"fine": true}', "type": "application/json"},
    }
    assert proc.host.calls == [
        ("Log", "call-1"),
        ("KvSet", "call-1"),
        ("KvGet", "call-1"),
        ("KvDelete", "call-1"),
        ("KvGet", "call-1"),
        ("ConfigGet", "call-1"),
        ("SecretReference", "call-1"),
        ("HttpSend", "call-1"),
    ]
    assert proc.host.logs == [("call-1", "warn", "using the host")]
    (request,) = proc.host.requests
    assert request.headers["authorization"] == f"Bearer {secret_placeholder('token')}"


def test_refused_host_calls_are_host_errors(proc: PluginProcess) -> None:
    out = proc.call("host_calls", {"key": "k", "secret": "other", "url": "https://evil.example.com/"})
    assert out["secret_error"] == "secret `other`: denied: `secret.use:other` is not granted"
    assert out["http_error"] == "http GET https://evil.example.com/: denied: GET https://evil.example.com/: not a granted destination"


def test_without_kv_grant_the_tool_fails_denied() -> None:
    with PluginProcess(APP) as p:
        with pytest.raises(ToolError) as raised:
            p.call("host_calls", {"key": "k", "secret": "token", "url": "https://api.example.com/ok"})
    assert raised.value == ToolError.denied("kv.set `k`: denied: `kv.write:k` is not granted")


def test_a_host_call_from_another_thread_has_no_call(proc: PluginProcess) -> None:
    message = proc.call("from_a_thread")
    assert message.startswith("kv.get `k`: no tool call is running in this thread")
    assert proc.host.calls == []  # refused in the plugin, never sent


def test_concurrent_calls_keep_their_own_call_ids(proc: PluginProcess) -> None:
    results: dict[str, object] = {}

    def run(call_id: str) -> None:
        results[call_id] = proc.invoke("rendezvous", {}, call_id=call_id)

    threads = [threading.Thread(target=run, args=(c,)) for c in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert results == {"a": "a", "b": "b"}
    for call_id in ("a", "b"):
        assert [m for c, _, m in proc.host.logs if c == call_id] == [f"waiting as {call_id}", f"released as {call_id}"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("value_error", ToolError.failed("ValueError: bad value")),
        ("exit", ToolError.failed("invoke raised SystemExit: 7")),
        ("tool_error", ToolError.invalid_input("no thanks")),
    ],
)
def test_tool_faults_are_errors_and_the_plugin_keeps_serving(proc: PluginProcess, how: str, expected: ToolError) -> None:
    with pytest.raises(ToolError) as raised:
        proc.call("crash", {"how": how})
    assert raised.value == expected
    assert proc.call("echo", {"text": "alive"})["text"] == "alive"
    if how == "value_error":
        ((_, level, message),) = proc.host.logs
        assert level == "error" and "Traceback" in message and "bad value" in message


def test_input_is_checked_against_the_schema_in_the_plugin_too(proc: PluginProcess) -> None:
    with pytest.raises(ToolError) as raised:
        proc.invoke("echo", {"text": 5})
    assert raised.value.kind == "invalid_input" and "/text: expected string" in raised.value.message


def test_an_unknown_tool_is_an_error(proc: PluginProcess) -> None:
    with pytest.raises(ToolError) as raised:
        proc.invoke("nope", {})
    assert raised.value.kind == "failed" and "unknown tool `nope`" in raised.value.message


# --- the execution pipeline --------------------------------------------------------------------


def steps(p: PluginProcess) -> list[str]:
    return [step for step, _ in p.trace]


def plugin_side(p: PluginProcess) -> list[str]:
    return [message for _, _, message in p.host.logs]


def test_pipeline_success(proc: PluginProcess) -> None:
    assert proc.call("staged", {"mode": "ok"}) == {"mode": "ok"}
    assert steps(proc) == ["validate_pre", "invoke", "validate_post"]
    assert plugin_side(proc) == ["validate_pre", "invoke", "validate_post ok"]


def test_pipeline_failing_validate_pre_runs_nothing_else(proc: PluginProcess) -> None:
    with pytest.raises(ToolError):
        proc.call("staged", {"mode": "fail_pre"})
    assert steps(proc) == ["validate_pre"]
    assert plugin_side(proc) == ["validate_pre"]


def test_pipeline_failing_invoke_is_rolled_back(proc: PluginProcess) -> None:
    with pytest.raises(ToolError) as raised:
        proc.call("staged", {"mode": "fail_invoke"})
    assert raised.value == ToolError.failed("invoke failed")
    assert steps(proc) == ["validate_pre", "invoke", "rollback"]
    assert plugin_side(proc) == ["validate_pre", "invoke", "rollback with output None"]


def test_pipeline_failing_validate_post_is_rolled_back_with_the_output(proc: PluginProcess) -> None:
    with pytest.raises(ToolError) as raised:
        proc.call("staged", {"mode": "fail_post"})
    assert raised.value == ToolError.failed("validate_post refused")
    assert steps(proc) == ["validate_pre", "invoke", "validate_post", "rollback"]
    assert plugin_side(proc) == [
        "validate_pre",
        "invoke",
        "validate_post fail_post",
        "rollback with output {'mode': 'fail_post'}",
    ]


def test_the_harness_runs_the_same_pipeline_natively() -> None:
    app = load_app(APP / "main.py", "main")
    h = Harness(app.plugin)
    with pytest.raises(ToolError):
        h.call("staged", {"mode": "fail_post"})
    assert [s for s, _ in h.trace] == ["validate_pre", "invoke", "validate_post", "rollback"]
    assert [m for _, m in h.logs] == ["validate_pre", "invoke", "validate_post fail_post", "rollback with output {'mode': 'fail_post'}"]


# --- the command line --------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sigil_plugin", *args], cwd=cwd, capture_output=True, text=True, errors="replace", timeout=PATIENCE)


def process_plugin(directory: Path) -> Path:
    (directory / "plugin.toml").write_text('id = "p"\n[execution]\ntier = "process"\nentry = "main.py"\n')
    (directory / "main.py").write_text((APP / "main.py").read_text())
    return directory


def test_describe_a_process_plugin_keeps_its_stdout_junk_out_of_the_json(tmp_path: Path) -> None:
    done = cli("describe", str(process_plugin(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [t["name"] for t in json.loads(done.stdout)][:2] == ["echo", "host_calls"]
    assert "PRI * HTTP/2.0" in done.stderr and "Tool = plugin.export()" not in done.stderr


def test_build_a_process_plugin_checks_it_without_compiling(tmp_path: Path) -> None:
    done = cli("build", str(process_plugin(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nothing to compile" in done.stdout and "staged" in done.stdout
    assert not (tmp_path / "plugin.wasm").exists()


def test_codegen_check_passes_on_the_checked_in_stubs(tmp_path: Path) -> None:
    done = cli("codegen", "--check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_sandbox_paths_name_what_imports_grpc(tmp_path: Path) -> None:
    done = cli("sandbox-paths", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    paths = json.loads(done.stdout)
    assert os.path.isfile(paths["executable"]) and os.access(paths["executable"], os.X_OK)
    for module_root in paths["modules"].values():
        assert any(module_root == b or module_root.startswith(b + "/") for b in paths["ro_binds"])
    assert paths["env"]["PYTHONPATH"] == str(KIT_PATH)


# --- hooks ------------------------------------------------------------------------------------

HOOK_APP = '''
from sigil_plugin import Plugin, Verdict

plugin = Plugin()


@plugin.hook
def guard(event, payload, call):
    text = payload["input"].get("text", "")
    if "forbidden" in text:
        return Verdict.deny(f"{call.tool}: `forbidden` is not allowed")
    if text == "ask":
        return Verdict.ask_approval("a human should look")
    if text == "raise":
        raise RuntimeError("the guard broke")
    if text == "shout":
        payload["input"]["text"] = "SHOUT"
        plugin.host.kv.set("patched", call.call_id.encode())
        return Verdict.patch(payload)
    return Verdict.allow()


if __name__ == "__main__":
    plugin.serve()
'''


def test_a_hook_answers_each_verdict_over_grpc(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(HOOK_APP)
    with PluginProcess(tmp_path, plugin_id="guard", kv={}) as p:
        event = "before_tool_execute"

        def payload(text: str) -> dict:
            return {"plugin": "echo", "tool": "echo", "input": {"text": text}, "actor": {}, "call_id": "c"}

        assert p.on_event(event, payload("hello")) == ("allow", None)
        assert p.on_event(event, payload("a forbidden word")) == (
            "deny",
            "before_tool_execute: `forbidden` is not allowed",
        )
        assert p.on_event(event, payload("ask")) == ("ask_approval", "a human should look")
        kind, patched = p.on_event(event, payload("shout"), call_id="call-shout")
        assert kind == "patch" and patched["input"] == {"text": "SHOUT"}
        # The hook's host calls name its call, like a tool's.
        assert p.host.kv["patched"] == b"call-shout"
        with pytest.raises(grpc.RpcError) as failed:
            p.on_event(event, payload("raise"))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert "the hook raised RuntimeError: the guard broke" in str(failed.value.details())


def test_a_plugin_without_a_hook_answers_unimplemented(proc: PluginProcess) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        proc.on_event("before_tool_execute", {"input": {}})
    assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_plugin_has_one_hook() -> None:
    from sigil_plugin import Plugin, SchemaError, Verdict

    plugin = Plugin()
    plugin.hook(lambda event, payload, call: Verdict.allow())
    with pytest.raises(SchemaError, match="already has the hook"):
        plugin.hook(lambda event, payload, call: Verdict.allow())
