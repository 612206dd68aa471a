"""The host facade's backend in a process plugin: the host's `Host` service over gRPC.

Every request carries the id of the call it belongs to, taken from the call the current
thread is serving (a context variable set by the server around each tool call). The host
checks that id against the calls in flight and decides with that call's authority, so a
host call made outside any call (at import, from a thread the tool started) is refused here
before it is sent, except logging, which then goes to stderr.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from .._errors import HostError, ToolError
from .._host import HttpResponse
from .._plugin import Call
from ._proto import host_pb2, host_pb2_grpc

T = TypeVar("T")

_logger = logging.getLogger("sigil_plugin")
_PY_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "error": 40}
_LEVELS = {
    "trace": host_pb2.LOG_LEVEL_TRACE,
    "debug": host_pb2.LOG_LEVEL_DEBUG,
    "info": host_pb2.LOG_LEVEL_INFO,
    "warn": host_pb2.LOG_LEVEL_WARN,
    "error": host_pb2.LOG_LEVEL_ERROR,
}

#: Largest message accepted from the host (an HTTP response body, mostly).
MAX_HOST_MESSAGE = 64 * 1024 * 1024

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_HOST_MESSAGE),
    ("grpc.max_send_message_length", MAX_HOST_MESSAGE),
    # HTTP_PROXY is set for plugins with network grants; the host socket is never proxied.
    ("grpc.enable_http_proxy", 0),
    # Over a Unix socket gRPC would send the socket path as `:authority`, which is not a valid
    # authority; the host's HTTP/2 server rejects such streams.
    ("grpc.default_authority", "localhost"),
]

#: Above this, a remaining time means "no deadline" (gRPC reports an unset deadline as ~2.9e11 years).
_NO_DEADLINE = 365 * 24 * 3600.0


@dataclass(frozen=True)
class Current:
    """The call a thread is serving, and its gRPC context (for the deadline)."""

    call: Call
    context: grpc.ServicerContext | None = None

    def timeout(self) -> float | None:
        """Seconds left before the host's deadline for this call, if it set one."""
        if self.context is None:
            return None
        remaining = self.context.time_remaining()
        if remaining is None or remaining > _NO_DEADLINE:
            return None
        return max(remaining, 0.0)


#: The call being served by this thread; `None` outside calls.
CURRENT: contextvars.ContextVar[Current | None] = contextvars.ContextVar("sigil_current_call", default=None)


class HostConnection:
    """The channel to the host's `Host` service, opened on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: str | None = None
        self._channel: grpc.Channel | None = None
        self._stub: host_pb2_grpc.HostStub | None = None

    def set_socket(self, path: str) -> None:
        """Point at the host socket named by `Init`; a different path drops the old channel."""
        with self._lock:
            if path == self._socket:
                return
            if self._channel is not None:
                self._channel.close()
            self._socket, self._channel, self._stub = path or None, None, None

    def stub(self, what: str) -> host_pb2_grpc.HostStub:
        with self._lock:
            if self._stub is None:
                if not self._socket:
                    raise HostError(f"{what}: the host named no host socket in Init, so it serves no host calls")
                self._channel = grpc.insecure_channel(f"unix:{self._socket}", options=_CHANNEL_OPTIONS)
                self._stub = host_pb2_grpc.HostStub(self._channel)
            return self._stub

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub = None, None


class ProcessBackend:
    """`sigil_plugin._host.Backend` over the host's gRPC `Host` service."""

    def __init__(self, connection: HostConnection, init_config: Callable[[], str]) -> None:
        self._connection = connection
        self._init_config = init_config

    # --- plumbing --------------------------------------------------------------------------

    def _current(self, what: str) -> Current:
        current = CURRENT.get()
        if current is None:
            raise HostError(
                f"{what}: no tool call is running in this thread; the host serves host calls "
                "only on behalf of a call in flight"
            )
        return current

    def _rpc(self, what: str, method: str, request: Any, current: Current) -> Any:
        stub = self._connection.stub(what)
        try:
            return getattr(stub, method)(request, timeout=current.timeout())
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            details = e.details() if hasattr(e, "details") else str(e)
            if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                raise HostError(f"{what}: {details}") from None
            name = code.name if code is not None else "error"
            raise ToolError.failed(f"{what}: the host call failed: {name}: {details}") from None

    # --- Backend ---------------------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        current = CURRENT.get()
        if current is None:
            _logger.log(_PY_LEVELS[level], message)
            return
        request = host_pb2.LogRequest(call_id=current.call.call_id, level=_LEVELS[level], message=message)
        try:
            self._rpc("log", "Log", request, current)
        except ToolError:
            _logger.log(_PY_LEVELS[level], message)  # logging is best effort: keep the line

    def kv_get(self, key: str) -> bytes | None:
        what = f"kv.get `{key}`"
        current = self._current(what)
        reply = self._rpc(what, "KvGet", host_pb2.KvGetRequest(call_id=current.call.call_id, key=key), current)
        if reply.HasField("error"):
            raise HostError(f"{what}: {reply.error}")
        return bytes(reply.value) if reply.HasField("value") else None

    def kv_set(self, key: str, value: bytes) -> None:
        what = f"kv.set `{key}`"
        current = self._current(what)
        request = host_pb2.KvSetRequest(call_id=current.call.call_id, key=key, value=value)
        self._check(what, self._rpc(what, "KvSet", request, current))

    def kv_delete(self, key: str) -> None:
        what = f"kv.delete `{key}`"
        current = self._current(what)
        request = host_pb2.KvDeleteRequest(call_id=current.call.call_id, key=key)
        self._check(what, self._rpc(what, "KvDelete", request, current))

    def config(self) -> str:
        current = CURRENT.get()
        if current is None:
            return self._init_config()  # what Init delivered; current enough outside a call
        reply = self._rpc("config", "ConfigGet", host_pb2.ConfigGetRequest(call_id=current.call.call_id), current)
        return str(reply.config)

    def secret_reference(self, name: str) -> str:
        what = f"secret `{name}`"
        current = self._current(what)
        request = host_pb2.SecretReferenceRequest(call_id=current.call.call_id, name=name)
        reply = self._rpc(what, "SecretReference", request, current)
        if reply.HasField("error"):
            raise HostError(f"{what}: {reply.error}")
        if not reply.HasField("placeholder"):
            raise HostError(f"{what}: the host sent neither a placeholder nor an error")
        return str(reply.placeholder)

    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int
    ) -> HttpResponse:
        what = f"http {method} {url}"
        current = self._current(what)
        request = host_pb2.HttpSendRequest(
            call_id=current.call.call_id,
            method=method,
            url=url,
            headers=[host_pb2.Header(name=k, value=v.encode("utf-8")) for k, v in headers.items()],
            body=body,
        )
        reply = self._rpc(what, "HttpSend", request, current)
        if reply.HasField("error"):
            raise HostError(f"{what}: {reply.error}")
        if len(reply.body) > max_bytes:
            raise ToolError.failed(f"{what}: the response body is over {max_bytes} bytes")
        return HttpResponse(
            status=int(reply.status),
            headers=[(h.name.lower(), bytes(h.value).decode("utf-8", errors="replace")) for h in reply.headers],
            body=bytes(reply.body),
        )

    @staticmethod
    def _check(what: str, reply: Any) -> None:
        if reply.HasField("error"):
            raise HostError(f"{what}: {reply.error}")
