"""The host facade a tool uses: logging, key-value state, configuration, secrets, HTTP.

Every call goes to a backend: inside the component, the WIT imports; under
`sigil_plugin.testing.Harness`, an in-memory fake. Every call is checked by the host's enforcer,
so any of them may fail with `HostError`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._errors import HostError

LEVELS = ("trace", "debug", "info", "warn", "error")

_logger = logging.getLogger("sigil_plugin")
_PY_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "error": 40}

#: The most response body bytes `http_get` reads unless told otherwise.
DEFAULT_MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class HttpRequest:
    """An outgoing request, as a test harness sees it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    """A response: status, headers (lower-case names, in order) and the whole body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), if present."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Backend(Protocol):
    """What the facade needs from the host. Failures raise `HostError`."""

    def log(self, level: str, message: str) -> None: ...
    def kv_get(self, key: str) -> bytes | None: ...
    def kv_set(self, key: str, value: bytes) -> None: ...
    def kv_delete(self, key: str) -> None: ...
    def config(self) -> str: ...
    def secret_reference(self, name: str) -> str: ...
    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int
    ) -> HttpResponse: ...


class _Unbound:
    """The backend before the plugin runs in a host: logs go to Python logging, the rest fails."""

    def log(self, level: str, message: str) -> None:
        _logger.log(_PY_LEVELS[level], message)

    def _no_host(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"{what} needs a host: run the tool in a Sigil component, or in tests through "
            "`sigil_plugin.testing.Harness`"
        )

    def kv_get(self, key: str) -> bytes | None:
        raise self._no_host("kv.get")

    def kv_set(self, key: str, value: bytes) -> None:
        raise self._no_host("kv.set")

    def kv_delete(self, key: str) -> None:
        raise self._no_host("kv.delete")

    def config(self) -> str:
        raise self._no_host("config")

    def secret_reference(self, name: str) -> str:
        raise self._no_host("secret_reference")

    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int
    ) -> HttpResponse:
        raise self._no_host("http")


class Log:
    """Structured logging through the host, tagged there with the plugin and the call."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def log(self, level: str, message: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level `{level}`: expected one of {', '.join(LEVELS)}")
        self._host._backend.log(level, str(message))

    def trace(self, message: str) -> None:
        self.log("trace", message)

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warn(self, message: str) -> None:
        self.log("warn", message)

    def error(self, message: str) -> None:
        self.log("error", message)


class KV:
    """The plugin's key-value state, kept by the host. Keys need `kv.read:KEY` / `kv.write:KEY`."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or `None`."""
        return self._host._backend.kv_get(key)

    def get_text(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else value.decode("utf-8")

    def get_json(self, key: str, default: Any = None) -> Any:
        value = self.get(key)
        return default if value is None else json.loads(value)

    def set(self, key: str, value: bytes | str) -> None:
        """Store `value` (bytes, or text stored as UTF-8) under `key`."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"kv.set `{key}`: value must be bytes or str, not {type(value).__name__}")
        self._host._backend.kv_set(key, bytes(value))

    def set_json(self, key: str, value: Any) -> None:
        self.set(key, json.dumps(value, separators=(",", ":")))

    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""
        self._host._backend.kv_delete(key)


class Host:
    """What a tool may ask of the host. Reach it as `plugin.host`."""

    def __init__(self) -> None:
        self._backend: Backend = _Unbound()
        self.log = Log(self)
        self.kv = KV(self)

    def config(self) -> dict[str, Any]:
        """The operator's configuration, validated by the host against the manifest's schema.

        Secret fields are never included.
        """
        text = self._backend.config()
        value = json.loads(text) if text.strip() else {}
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise HostError(f"config: the host sent {type(value).__name__}, expected an object")
        return value

    def secret_reference(self, name: str) -> str:
        """A placeholder for secret `name`, to put in an outgoing HTTP header.

        The host swaps it for the value on a request to a granted destination when the plugin
        holds `secret.use:NAME`; the plugin never sees the value.
        """
        return self._backend.secret_reference(name)

    def http_request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | str = b"",
        *,
        max_bytes: int = DEFAULT_MAX_BODY,
    ) -> HttpResponse:
        """Send one request through `wasi:http` and read the whole response.

        Needs the `tool-plugin-http` world and a `net.connect:HOST:PORT` grant. A refused
        request raises `HostError`; a transport failure or a body over `max_bytes` raises a
        `failed` `ToolError`. A 4xx or 5xx status is a response, not an error.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self._backend.http_request(method.upper(), url, dict(headers or {}), body, max_bytes)

    def http_get(
        self, url: str, headers: dict[str, str] | None = None, *, max_bytes: int = DEFAULT_MAX_BODY
    ) -> HttpResponse:
        """`GET url`; see `http_request`."""
        return self.http_request("GET", url, headers, max_bytes=max_bytes)
