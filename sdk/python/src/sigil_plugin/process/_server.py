"""The plugin side of the process-tier protocol: `Lifecycle` and `Tool` served over gRPC on
the Unix socket the host names in `SIGIL_PLUGIN_SOCKET`.

Calls are served by a thread pool, so tools run concurrently; each tool call's thread knows
its call (see `_backend.CURRENT`), which is how host calls carry the right call id. Nothing
is written to stdout: the host never reads protocol from it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc

from .._errors import ToolError
from .._plugin import Call
from ._backend import CURRENT, MAX_HOST_MESSAGE, Current, HostConnection, ProcessBackend
from ._proto import kinds_pb2, kinds_pb2_grpc, plugin_pb2, plugin_pb2_grpc, types_pb2

if TYPE_CHECKING:
    from .._plugin import Plugin

#: The protocol version this kit speaks. The host rejects a plugin whose major version differs.
PROTOCOL_VERSION = "1.0.0"

#: Environment variable holding the path of the socket to serve on.
SOCKET_ENV = "SIGIL_PLUGIN_SOCKET"

#: How long a SIGTERM gives calls in flight to finish, in seconds.
SIGTERM_DRAIN_SECONDS = 5.0

_logger = logging.getLogger("sigil_plugin")

_KINDS = {
    "denied": types_pb2.ToolError.KIND_DENIED,
    "invalid_input": types_pb2.ToolError.KIND_INVALID_INPUT,
    "failed": types_pb2.ToolError.KIND_FAILED,
}


def _tool_error(error: ToolError) -> types_pb2.ToolError:
    return types_pb2.ToolError(kind=_KINDS.get(error.kind, types_pb2.ToolError.KIND_FAILED), message=error.message)


def _major(version: str) -> int | None:
    head = version.strip().lstrip("v").split(".", 1)[0]
    return int(head) if head.isdigit() else None


class _State:
    """What `Init` delivered, and the drain bookkeeping."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.initialized = False
        self.plugin_id = ""
        self.sigil_version = ""
        self.config = "{}"
        self.draining = False
        self.in_flight = 0

    def config_text(self) -> str:
        with self.lock:
            return self.config


class PluginServer:
    """A plugin served on a Unix socket. `serve(plugin)` is the usual way to run one.

    `start()` binds and serves in background threads; `wait()` blocks until the server has
    stopped (after `Shutdown`, `stop()` or SIGTERM); `stop(grace)` stops accepting calls and
    gives those in flight `grace` seconds.
    """

    def __init__(self, plugin: Plugin, socket_path: str, *, max_workers: int = 16) -> None:
        plugin.check()
        self.plugin = plugin
        self.socket_path = socket_path
        self._state = _State()
        self._connection = HostConnection()
        self._stopping = threading.Lock()
        self._stopped = threading.Event()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sigil-call"),
            options=[
                ("grpc.max_receive_message_length", MAX_HOST_MESSAGE),
                ("grpc.max_send_message_length", MAX_HOST_MESSAGE),
            ],
        )
        plugin_pb2_grpc.add_LifecycleServicer_to_server(_Lifecycle(self), self._server)
        plugin_pb2_grpc.add_ToolServicer_to_server(_Tool(self), self._server)
        kinds_pb2_grpc.add_HookServicer_to_server(_Hook(self), self._server)

    def start(self) -> None:
        """Bind the socket and serve. Raises `OSError` naming the socket if it cannot bind."""
        directory = os.path.dirname(os.path.abspath(self.socket_path))
        if not os.path.isdir(directory):
            raise OSError(f"socket {self.socket_path}: the directory {directory} does not exist")
        if os.path.lexists(self.socket_path):
            os.unlink(self.socket_path)  # a stale socket from an earlier run of this plugin
        try:
            self._server.add_insecure_port(f"unix:{self.socket_path}")
        except RuntimeError as e:
            raise OSError(f"socket {self.socket_path}: cannot serve on it: {e}") from None
        self.plugin.host._backend = ProcessBackend(self._connection, self._state.config_text)
        self._server.start()

    def wait(self) -> None:
        """Block until the server stops, then release the host channel and the socket file."""
        self._server.wait_for_termination()
        self._stopped.wait()
        self._connection.close()
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass

    def abandoned(self) -> int:
        """How many calls were still running when the server stopped."""
        with self._state.lock:
            return self._state.in_flight

    def stop(self, grace: float) -> None:
        """Refuse new calls, let calls in flight finish within `grace` seconds, then stop."""
        with self._state.lock:
            self._state.draining = True
        if not self._stopping.acquire(blocking=False):
            return  # already stopping
        threading.Thread(target=self._drain_then_stop, args=(grace,), name="sigil-drain", daemon=True).start()

    def _drain_then_stop(self, grace: float) -> None:
        state = self._state
        with state.lock:
            state.lock.wait_for(lambda: state.in_flight == 0, timeout=max(grace, 0.0))
            left = state.in_flight
        if left:
            _logger.warning("drain timeout of %.3f s passed with %d call(s) still running; stopping", grace, left)
        # The remaining RPCs (the Shutdown reply, mostly) get a moment to be sent.
        self._server.stop(grace=1.0).wait()
        self._stopped.set()

    @contextmanager
    def _call(self, info: types_pb2.CallInfo, context: grpc.ServicerContext, step: str) -> Iterator[Call]:
        state = self._state
        with state.lock:
            if state.draining:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"{step}: the plugin is shutting down")
            if not state.initialized:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{step}: Init has not been called")
            if not info.call_id or not info.tool:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{step}: the request names no call id or no tool")
            state.in_flight += 1
        call = Call(
            call_id=info.call_id,
            tool=info.tool,
            user=info.user if info.HasField("user") else None,
            workspace=info.workspace if info.HasField("workspace") else None,
        )
        token = CURRENT.set(Current(call, context))
        try:
            yield call
        finally:
            CURRENT.reset(token)
            with state.lock:
                state.in_flight -= 1
                state.lock.notify_all()


def _run(step: str, run: Any) -> types_pb2.ToolError | None:
    """Run a dispatch function; a `ToolError` (or anything that escapes, even `SystemExit`)
    becomes the call's error rather than a broken RPC."""
    try:
        run()
    except ToolError as e:
        return _tool_error(e)
    except BaseException as e:  # noqa: BLE001 - a tool calling sys.exit() must not take the RPC down
        return _tool_error(ToolError.failed(f"{step} raised {type(e).__name__}: {e}"))
    return None


class _Lifecycle(plugin_pb2_grpc.LifecycleServicer):
    def __init__(self, server: PluginServer) -> None:
        self.server = server

    def Init(self, request: plugin_pb2.InitRequest, context: grpc.ServicerContext) -> plugin_pb2.InitResponse:
        major = _major(request.protocol_version)
        if major != _major(PROTOCOL_VERSION):
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"protocol version `{request.protocol_version}` from the host: this plugin speaks {PROTOCOL_VERSION}",
            )
        state = self.server._state
        self.server._connection.set_socket(request.host_socket)
        with state.lock:
            state.plugin_id = request.plugin_id
            state.sigil_version = request.sigil_version
            state.config = request.config or "{}"
            state.initialized = True
        return plugin_pb2.InitResponse(protocol_version=PROTOCOL_VERSION)

    def Health(self, request: plugin_pb2.HealthRequest, context: grpc.ServicerContext) -> plugin_pb2.HealthResponse:
        state = self.server._state
        with state.lock:
            if state.draining:
                return plugin_pb2.HealthResponse(status=plugin_pb2.HealthResponse.STATUS_NOT_SERVING, message="draining")
            message = "" if state.initialized else "waiting for Init"
        return plugin_pb2.HealthResponse(status=plugin_pb2.HealthResponse.STATUS_SERVING, message=message)

    def Shutdown(self, request: plugin_pb2.ShutdownRequest, context: grpc.ServicerContext) -> plugin_pb2.ShutdownResponse:
        self.server.stop(request.drain_timeout_ms / 1000.0)
        return plugin_pb2.ShutdownResponse()


class _Tool(plugin_pb2_grpc.ToolServicer):
    def __init__(self, server: PluginServer) -> None:
        self.server = server
        self.plugin = server.plugin

    def Describe(self, request: plugin_pb2.DescribeRequest, context: grpc.ServicerContext) -> plugin_pb2.DescribeResponse:
        tools = []
        for d in self.plugin.descriptors():
            descriptor = types_pb2.ToolDescriptor(
                name=d.name,
                description=d.description,
                input_schema=json.dumps(d.input_schema, separators=(",", ":")),
                steps=types_pb2.Steps(
                    validate_pre=d.steps.validate_pre,
                    validate_post=d.steps.validate_post,
                    rollback=d.steps.rollback,
                ),
            )
            if d.output_schema is not None:
                descriptor.output_schema = json.dumps(d.output_schema, separators=(",", ":"))
            tools.append(descriptor)
        return plugin_pb2.DescribeResponse(tools=tools)

    def Invoke(self, request: plugin_pb2.InvokeRequest, context: grpc.ServicerContext) -> plugin_pb2.InvokeResponse:
        with self.server._call(request.call, context, "invoke") as call:
            result: list[str] = []
            error = _run("invoke", lambda: result.append(self.plugin._invoke(call, request.input)))
        if error is not None:
            return plugin_pb2.InvokeResponse(error=error)
        return plugin_pb2.InvokeResponse(output=result[0])

    def ValidatePre(self, request: plugin_pb2.ValidatePreRequest, context: grpc.ServicerContext) -> plugin_pb2.StepResponse:
        with self.server._call(request.call, context, "validate_pre") as call:
            error = _run("validate_pre", lambda: self.plugin._validate_pre(call, request.input))
        return plugin_pb2.StepResponse(error=error) if error is not None else plugin_pb2.StepResponse()

    def ValidatePost(self, request: plugin_pb2.ValidatePostRequest, context: grpc.ServicerContext) -> plugin_pb2.StepResponse:
        with self.server._call(request.call, context, "validate_post") as call:
            error = _run("validate_post", lambda: self.plugin._validate_post(call, request.input, request.output))
        return plugin_pb2.StepResponse(error=error) if error is not None else plugin_pb2.StepResponse()

    def Rollback(self, request: plugin_pb2.RollbackRequest, context: grpc.ServicerContext) -> plugin_pb2.StepResponse:
        output = request.output if request.HasField("output") else None
        with self.server._call(request.call, context, "rollback") as call:
            error = _run("rollback", lambda: self.plugin._rollback(call, request.input, output))
        return plugin_pb2.StepResponse(error=error) if error is not None else plugin_pb2.StepResponse()


class _Hook(kinds_pb2_grpc.HookServicer):
    def __init__(self, server: PluginServer) -> None:
        self.server = server
        self.plugin = server.plugin

    def OnEvent(self, request: kinds_pb2.HookEvent, context: grpc.ServicerContext) -> kinds_pb2.HookVerdict:
        if self.plugin._hook is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this plugin handles no hook events")
        failure: ToolError | None = None
        with self.server._call(request.call, context, "on_event") as call:
            try:
                verdict = self.plugin._on_event(call, request.event, request.payload)
            except ToolError as e:
                failure = e
        if failure is not None:
            # The host turns any error into a deny for a before-event.
            context.abort(grpc.StatusCode.INTERNAL, f"hook for `{request.event}`: {failure}")
        if verdict.kind == "deny":
            return kinds_pb2.HookVerdict(deny=verdict.reason)
        if verdict.kind == "ask_approval":
            return kinds_pb2.HookVerdict(ask_approval=verdict.reason)
        if verdict.kind == "patch":
            return kinds_pb2.HookVerdict(patch=json.dumps(verdict.payload, ensure_ascii=False, separators=(",", ":")))
        return kinds_pb2.HookVerdict(allow=kinds_pb2.HookAllow())


def serve(plugin: Plugin, *, socket: str | None = None, max_workers: int = 16) -> None:
    """Serve `plugin` until the host shuts it down. Call it at the end of `main.py`.

    `socket` defaults to `$SIGIL_PLUGIN_SOCKET`, which the host sets. SIGTERM and SIGINT
    drain calls in flight for up to `SIGTERM_DRAIN_SECONDS`, then stop. Exits the process
    with a message on stderr (never stdout) when there is no socket to serve on.
    """
    path = socket or os.environ.get(SOCKET_ENV, "")
    if not path:
        sys.exit(
            f"error: {SOCKET_ENV} is not set: a process-tier plugin is started by Sigil, which "
            "names the socket to serve on (test tools natively with sigil_plugin.testing.Harness)"
        )
    server = PluginServer(plugin, path, max_workers=max_workers)
    try:
        server.start()
    except OSError as e:
        sys.exit(f"error: {e}")
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: server.stop(SIGTERM_DRAIN_SECONDS))
    server.wait()
    if server.abandoned() > 0:
        # A call outlived the drain timeout. Its thread cannot be stopped, and the interpreter
        # would wait for it at exit: leave now, as the host asked.
        _logger.warning("exiting with %d call(s) abandoned after the drain timeout", server.abandoned())
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
