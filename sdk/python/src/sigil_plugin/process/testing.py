"""Test a process-tier plugin end to end, over real gRPC, without a sandbox.

`PluginProcess` plays the host: it starts `python3 main.py` in the plugin directory with the
environment the host gives (`SIGIL_PLUGIN_SOCKET`, `SIGIL_PLUGIN_ID`, `PATH`, `HOME`,
`TMPDIR`, `LANG`, and `PYTHONPATH` naming this kit), serves the `Host` service on a Unix
socket of its own with key-value state, config, secrets and HTTP in memory (`FakeHost`), and
calls the plugin's `Lifecycle` and `Tool` services as a gRPC client. `call` runs the
execution pipeline in the host's order. For unit tests of tool functions, without processes
or gRPC, use `sigil_plugin.testing.Harness` (re-exported here).

::

    from sigil_plugin.process.testing import PluginProcess

    def test_greet_over_grpc():
        with PluginProcess("examples/hello-process-python", kv={}) as p:
            assert p.call("greet", {"name": "ada"})["greeting"] == "hello, ada"
            assert p.host.logs[-1][1:] == ("info", "greeting ada")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import grpc

from .._errors import ToolError
from .._host import HttpRequest, HttpResponse
from .._plugin import Descriptor, Steps
from .._validate import errors_of
from ..testing import Harness, HttpHandler, _reply, load_app, secret_placeholder
from ._proto import host_pb2, host_pb2_grpc, kinds_pb2, kinds_pb2_grpc, plugin_pb2, plugin_pb2_grpc, types_pb2
from ._server import PROTOCOL_VERSION

__all__ = ["FakeHost", "Harness", "PluginProcess", "load_app", "secret_placeholder"]

#: The directory holding `sigil_plugin`, put on the plugin's `PYTHONPATH`.
KIT_PATH = Path(__file__).resolve().parents[2]

#: How long a plugin gets to start serving, and a call to answer, before the test fails. A
#: guard against hanging forever, not a measurement: machines are noisy, so it is generous.
PATIENCE = 120.0

_KINDS = {
    types_pb2.ToolError.KIND_DENIED: "denied",
    types_pb2.ToolError.KIND_INVALID_INPUT: "invalid_input",
    types_pb2.ToolError.KIND_FAILED: "failed",
}
_LEVELS = {
    host_pb2.LOG_LEVEL_TRACE: "trace",
    host_pb2.LOG_LEVEL_DEBUG: "debug",
    host_pb2.LOG_LEVEL_INFO: "info",
    host_pb2.LOG_LEVEL_WARN: "warn",
    host_pb2.LOG_LEVEL_ERROR: "error",
}


def _error(message: types_pb2.ToolError) -> ToolError:
    return ToolError(message.message, _KINDS.get(message.kind, "failed"))


class FakeHost(host_pb2_grpc.HostServicer):
    """The `Host` service, in memory. Grants are explicit, as in `Harness`: `kv=None` denies
    every key-value call, only the named `secrets` may be referenced, `http=None` denies the
    network. Requests naming a call id that is not in flight are refused, like the real host.

    Afterwards: `logs` holds `(call_id, level, message)`, `requests` the HTTP requests,
    `calls` every host call as `(method, call_id)`, and `kv` the state.
    """

    def __init__(
        self,
        *,
        kv: Mapping[str, bytes | str] | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
        http: HttpHandler | None = None,
    ) -> None:
        self.kv: dict[str, bytes] | None = (
            None if kv is None else {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in kv.items()}
        )
        self.config: dict[str, Any] = json.loads(json.dumps(dict(config or {})))
        self.secrets = frozenset(secrets)
        self.http = http
        self.logs: list[tuple[str, str, str]] = []
        self.requests: list[HttpRequest] = []
        self.calls: list[tuple[str, str]] = []
        self.in_flight: set[str] = set()
        self._lock = threading.Lock()

    def _admit(self, method: str, call_id: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls.append((method, call_id))
            known = call_id in self.in_flight
        if not known:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method}: call id `{call_id}` is not a call in flight")

    def Log(self, request: host_pb2.LogRequest, context: grpc.ServicerContext) -> host_pb2.LogResponse:
        self._admit("Log", request.call_id, context)
        with self._lock:
            self.logs.append((request.call_id, _LEVELS.get(request.level, "info"), request.message))
        return host_pb2.LogResponse()

    def KvGet(self, request: host_pb2.KvGetRequest, context: grpc.ServicerContext) -> host_pb2.KvGetResponse:
        self._admit("KvGet", request.call_id, context)
        with self._lock:
            if self.kv is None:
                return host_pb2.KvGetResponse(error=f"denied: `kv.read:{request.key}` is not granted")
            value = self.kv.get(request.key)
        return host_pb2.KvGetResponse() if value is None else host_pb2.KvGetResponse(value=value)

    def KvSet(self, request: host_pb2.KvSetRequest, context: grpc.ServicerContext) -> host_pb2.HostResponse:
        self._admit("KvSet", request.call_id, context)
        with self._lock:
            if self.kv is None:
                return host_pb2.HostResponse(error=f"denied: `kv.write:{request.key}` is not granted")
            self.kv[request.key] = bytes(request.value)
        return host_pb2.HostResponse()

    def KvDelete(self, request: host_pb2.KvDeleteRequest, context: grpc.ServicerContext) -> host_pb2.HostResponse:
        self._admit("KvDelete", request.call_id, context)
        with self._lock:
            if self.kv is None:
                return host_pb2.HostResponse(error=f"denied: `kv.write:{request.key}` is not granted")
            self.kv.pop(request.key, None)
        return host_pb2.HostResponse()

    def ConfigGet(self, request: host_pb2.ConfigGetRequest, context: grpc.ServicerContext) -> host_pb2.ConfigGetResponse:
        self._admit("ConfigGet", request.call_id, context)
        return host_pb2.ConfigGetResponse(config=json.dumps(self.config))

    def SecretReference(
        self, request: host_pb2.SecretReferenceRequest, context: grpc.ServicerContext
    ) -> host_pb2.SecretReferenceResponse:
        self._admit("SecretReference", request.call_id, context)
        if request.name not in self.secrets:
            return host_pb2.SecretReferenceResponse(error=f"denied: `secret.use:{request.name}` is not granted")
        return host_pb2.SecretReferenceResponse(placeholder=secret_placeholder(request.name))

    def HttpSend(self, request: host_pb2.HttpSendRequest, context: grpc.ServicerContext) -> host_pb2.HttpSendResponse:
        self._admit("HttpSend", request.call_id, context)
        headers = {h.name.lower(): bytes(h.value).decode("utf-8", errors="replace") for h in request.headers}
        seen = HttpRequest(request.method, request.url, headers, bytes(request.body))
        with self._lock:
            self.requests.append(seen)
        where = f"{request.method} {request.url}"
        if self.http is None:
            return host_pb2.HttpSendResponse(error=f"denied: {where}: no network is granted")
        if callable(self.http):
            reply = self.http(seen)
        elif where in self.http:
            reply = self.http[where]
        elif request.url in self.http and request.method == "GET":
            reply = self.http[request.url]
        else:
            return host_pb2.HttpSendResponse(error=f"denied: {where}: not a granted destination")
        response: HttpResponse = _reply(reply)
        return host_pb2.HttpSendResponse(
            status=response.status,
            headers=[host_pb2.Header(name=k, value=v.encode()) for k, v in response.headers],
            body=response.body,
        )


class _Drain(threading.Thread):
    """Reads a pipe to the end so the plugin never blocks on a full one."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = bytearray()

    def run(self) -> None:
        read = getattr(self.pipe, "read1", self.pipe.read)
        while chunk := read(65536):
            self.data.extend(chunk)


class PluginProcess:
    """A process-tier plugin started and driven like the host does, without a sandbox.

    `directory` holds `plugin.toml` and the entry (default: the manifest's `execution.entry`,
    else `main.py`). `kv`, `config`, `secrets` and `http` configure the `FakeHost` (see
    there). Use it as a context manager (start, Init, and on exit kill whatever is left), or
    call `start()`, `init()` and `close()` yourself. `stdout` and `stderr` hold what the
    plugin printed; the protocol never needs either.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        entry: str | None = None,
        plugin_id: str | None = None,
        interpreter: str = sys.executable,
        kv: Mapping[str, bytes | str] | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
        http: HttpHandler | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        manifest: dict[str, Any] = {}
        if (self.directory / "plugin.toml").is_file():
            with (self.directory / "plugin.toml").open("rb") as f:
                manifest = tomllib.load(f)
        self.entry = entry or manifest.get("execution", {}).get("entry", "main.py")
        self.plugin_id = plugin_id or manifest.get("id", self.directory.name)
        self.interpreter = interpreter
        self.host = FakeHost(kv=kv, config=config, secrets=secrets, http=http)
        self.extra_env = dict(env or {})
        self.trace: list[tuple[str, str]] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self._host_server: grpc.Server | None = None
        self._channel: grpc.Channel | None = None
        self._out: _Drain | None = None
        self._err: _Drain | None = None
        self._calls = 0

    # --- running ---------------------------------------------------------------------------

    @property
    def socket_path(self) -> str:
        assert self._tmp is not None, "start() first"
        return os.path.join(self._tmp, "plugin.sock")

    @property
    def host_socket_path(self) -> str:
        assert self._tmp is not None, "start() first"
        return os.path.join(self._tmp, "host.sock")

    @property
    def stdout(self) -> bytes:
        """What the plugin wrote to stdout so far (all of it, once the process has exited)."""
        return self._captured(self._out)

    @property
    def stderr(self) -> bytes:
        """What the plugin wrote to stderr so far (all of it, once the process has exited)."""
        return self._captured(self._err)

    def _captured(self, drain: _Drain | None) -> bytes:
        if drain is None:
            return b""
        if self.process is not None and self.process.poll() is not None:
            drain.join(PATIENCE)  # the pipe ends soon after the process; read it to the end
        return bytes(drain.data)

    def environment(self) -> dict[str, str]:
        """The plugin's whole environment: what the host passes, and nothing of the test's."""
        assert self._tmp is not None, "start() first"
        env = {
            "SIGIL_PLUGIN_SOCKET": self.socket_path,
            "SIGIL_PLUGIN_ID": self.plugin_id,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self._tmp,
            "TMPDIR": self._tmp,
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(KIT_PATH),
        }
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Serve the fake host, start the plugin, and wait until it serves its socket.

        Raises `RuntimeError` with the plugin's stderr if it exits before serving.
        """
        self._tmp = tempfile.mkdtemp(prefix="sigil-plugin-")
        self._host_server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-host"))
        host_pb2_grpc.add_HostServicer_to_server(self.host, self._host_server)
        self._host_server.add_insecure_port(f"unix:{self.host_socket_path}")
        self._host_server.start()

        self.process = subprocess.Popen(
            [self.interpreter, self.entry],
            cwd=self.directory,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._out, self._err = _Drain(self.process.stdout), _Drain(self.process.stderr)
        self._out.start()
        self._err.start()

        deadline = time.monotonic() + PATIENCE
        while not os.path.exists(self.socket_path):
            if self.process.poll() is not None:
                self._err.join(PATIENCE)
                raise RuntimeError(
                    f"plugin {self.directory / self.entry} exited with {self.process.returncode} before serving; "
                    f"stderr:\n{self.stderr.decode(errors='replace')}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"plugin {self.directory / self.entry} did not create {self.socket_path}")
            time.sleep(0.01)
        self._channel = grpc.insecure_channel(f"unix:{self.socket_path}", options=[("grpc.enable_http_proxy", 0)])
        grpc.channel_ready_future(self._channel).result(timeout=PATIENCE)
        self.lifecycle = plugin_pb2_grpc.LifecycleStub(self._channel)
        self.tool = plugin_pb2_grpc.ToolStub(self._channel)
        self.hook = kinds_pb2_grpc.HookStub(self._channel)

    def init(self, protocol_version: str = PROTOCOL_VERSION, *, config: Mapping[str, Any] | None = None) -> str:
        """Call `Init`; returns the plugin's protocol version. Raises `grpc.RpcError` on refusal."""
        if config is not None:
            self.host.config = json.loads(json.dumps(dict(config)))
        reply = self.lifecycle.Init(
            plugin_pb2.InitRequest(
                protocol_version=protocol_version,
                sigil_version="0.1.0",
                plugin_id=self.plugin_id,
                config=json.dumps(self.host.config),
                host_socket=self.host_socket_path,
            ),
            timeout=PATIENCE,
        )
        return str(reply.protocol_version)

    def health(self) -> tuple[str, str]:
        """`Health`: the status name (`STATUS_SERVING`, ...) and message."""
        reply = self.lifecycle.Health(plugin_pb2.HealthRequest(), timeout=PATIENCE)
        return plugin_pb2.HealthResponse.Status.Name(reply.status), reply.message

    def shutdown(self, drain_timeout_ms: int = 5000) -> int:
        """`Shutdown`, then wait for the process to exit; returns its exit status."""
        self.lifecycle.Shutdown(plugin_pb2.ShutdownRequest(drain_timeout_ms=drain_timeout_ms), timeout=PATIENCE)
        assert self.process is not None
        return self.process.wait(timeout=PATIENCE)

    def close(self) -> None:
        """Kill the plugin if it still runs, stop the fake host, remove the temporary files."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=PATIENCE)
        for drain in (self._out, self._err):
            if drain is not None:
                drain.join(PATIENCE)
        if self._channel is not None:
            self._channel.close()
        if self._host_server is not None:
            self._host_server.stop(grace=None).wait()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PluginProcess:
        try:
            self.start()
            self.init()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the tool contract -----------------------------------------------------------------

    def describe(self) -> list[Descriptor]:
        """`Describe`, with the schemas parsed."""
        reply = self.tool.Describe(plugin_pb2.DescribeRequest(), timeout=PATIENCE)
        return [
            Descriptor(
                name=t.name,
                description=t.description,
                input_schema=json.loads(t.input_schema),
                output_schema=json.loads(t.output_schema) if t.HasField("output_schema") else None,
                steps=Steps(t.steps.validate_pre, t.steps.validate_post, t.steps.rollback),
            )
            for t in reply.tools
        ]

    def descriptor(self, tool: str) -> Descriptor:
        for d in self.describe():
            if d.name == tool:
                return d
        raise KeyError(f"unknown tool `{tool}`")

    def _info(self, tool: str, call_id: str) -> types_pb2.CallInfo:
        return types_pb2.CallInfo(call_id=call_id, tool=tool)

    def _new_call_id(self) -> str:
        self._calls += 1
        return f"call-{self._calls}"

    def _in_flight(self, call_id: str) -> _InFlight:
        return _InFlight(self.host, call_id)

    def on_event(self, event: str, payload: Any, *, call_id: str | None = None) -> tuple[str, Any]:
        """`Hook.OnEvent`: the verdict's kind (`allow`, `deny`, `patch`, `ask_approval`) and its
        value (the reason, or the patched payload as JSON values). Raises `grpc.RpcError` when
        the hook fails."""
        call_id = call_id or self._new_call_id()
        with self._in_flight(call_id):
            reply = self.hook.OnEvent(
                kinds_pb2.HookEvent(event=event, payload=_text(payload), call=self._info(event, call_id)),
                timeout=PATIENCE,
            )
        kind = reply.WhichOneof("verdict")
        if kind == "patch":
            return kind, json.loads(reply.patch)
        if kind in ("deny", "ask_approval"):
            return kind, getattr(reply, kind)
        return str(kind), None

    def invoke(self, tool: str, input: Any = None, *, call_id: str | None = None) -> Any:
        """`Invoke` alone: the output as JSON values, or `ToolError` raised."""
        call_id = call_id or self._new_call_id()
        with self._in_flight(call_id):
            reply = self.tool.Invoke(
                plugin_pb2.InvokeRequest(call=self._info(tool, call_id), input=_text(input)), timeout=PATIENCE
            )
        if reply.WhichOneof("result") == "error":
            raise _error(reply.error)
        return json.loads(reply.output)

    def validate_pre(self, tool: str, input: Any = None, *, call_id: str | None = None) -> None:
        call_id = call_id or self._new_call_id()
        with self._in_flight(call_id):
            reply = self.tool.ValidatePre(
                plugin_pb2.ValidatePreRequest(call=self._info(tool, call_id), input=_text(input)), timeout=PATIENCE
            )
        if reply.HasField("error"):
            raise _error(reply.error)

    def validate_post(self, tool: str, input: Any, output: Any, *, call_id: str | None = None) -> None:
        call_id = call_id or self._new_call_id()
        with self._in_flight(call_id):
            reply = self.tool.ValidatePost(
                plugin_pb2.ValidatePostRequest(call=self._info(tool, call_id), input=_text(input), output=_output(output)),
                timeout=PATIENCE,
            )
        if reply.HasField("error"):
            raise _error(reply.error)

    def rollback(self, tool: str, input: Any, output: Any = None, *, call_id: str | None = None) -> None:
        """`Rollback`; `output=None` sends no output (the invocation itself failed)."""
        call_id = call_id or self._new_call_id()
        request = plugin_pb2.RollbackRequest(call=self._info(tool, call_id), input=_text(input))
        if output is not None:
            request.output = _output(output)
        with self._in_flight(call_id):
            reply = self.tool.Rollback(request, timeout=PATIENCE)
        if reply.HasField("error"):
            raise _error(reply.error)

    def call(self, tool: str, input: Any = None) -> Any:
        """Run `tool` through the execution pipeline in the host's order, with one call id:
        input schema, validate-pre, invoke, output schema, validate-post, and rollback when
        anything after the start of invoke fails. Returns the output as JSON values or raises
        `ToolError`; `trace` records each step as `(step, outcome)`.
        """
        self.trace = []
        d = self.descriptor(tool)
        call_id = self._new_call_id()
        value = json.loads(input) if isinstance(input, str) else ({} if input is None else input)
        problems = errors_of(value, d.input_schema)
        if problems:
            error = ToolError.invalid_input(f"input does not match the schema of `{tool}`: " + "; ".join(problems))
            self._record("input_schema", error)
            raise error
        if d.steps.validate_pre:
            self._step("validate_pre", lambda: self.validate_pre(tool, value, call_id=call_id))
        try:
            output = self.invoke(tool, value, call_id=call_id)
        except ToolError as error:
            self._record("invoke", error)
            self._undo(d, tool, value, None, call_id, error)
            raise
        self._record("invoke")
        if d.output_schema is not None:
            problems = errors_of(output, d.output_schema)
            if problems:
                mismatch = ToolError.failed(f"output does not match the output schema of `{tool}`: " + "; ".join(problems))
                self._record("output_schema", mismatch)
                self._undo(d, tool, value, output, call_id, mismatch)
                raise mismatch
        if d.steps.validate_post:
            try:
                self._step("validate_post", lambda: self.validate_post(tool, value, output, call_id=call_id))
            except ToolError as error:
                self._undo(d, tool, value, output, call_id, error)
                raise
        return output

    def _record(self, step: str, error: ToolError | None = None) -> None:
        self.trace.append((step, "ok" if error is None else f"{error.kind}: {error.message}"))

    def _step(self, name: str, run: Any) -> None:
        try:
            run()
        except ToolError as error:
            self._record(name, error)
            raise
        self._record(name)

    def _undo(self, d: Descriptor, tool: str, input: Any, output: Any, call_id: str, error: ToolError) -> None:
        if not d.steps.rollback:
            return
        try:
            self._step("rollback", lambda: self.rollback(tool, input, output, call_id=call_id))
        except ToolError as failure:
            error.add_note(f"rollback failed too: {failure.kind}: {failure.message}")


class _InFlight:
    """Marks a call id as in flight at the fake host while a request runs."""

    def __init__(self, host: FakeHost, call_id: str) -> None:
        self.host, self.call_id = host, call_id

    def __enter__(self) -> None:
        with self.host._lock:
            self.host.in_flight.add(self.call_id)

    def __exit__(self, *exc: object) -> None:
        with self.host._lock:
            self.host.in_flight.discard(self.call_id)


def _text(value: Any) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else json.dumps(value)


def _output(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
