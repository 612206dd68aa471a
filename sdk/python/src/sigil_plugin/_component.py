"""The glue between `Plugin` and the bindings componentize-py generates (`wit_world`).

Only this module touches `wit_world` and `componentize_py_types`, and only when running inside
a component: natively (under pytest) `export_class` returns a class that is never called and
imports nothing. Inside the component the imports happen when the app module is imported,
which componentize-py does at build time, so they are part of the snapshot and cost nothing
per call.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._errors import HostError, ToolError
from ._host import HttpResponse
from ._plugin import Call

if TYPE_CHECKING:
    from ._plugin import Plugin

_LEVELS = {"trace": "TRACE", "debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"}
_WRITE_CHUNK = 4096  # `blocking-write-and-flush` takes at most 4096 bytes at a time
_READ_CHUNK = 64 * 1024


def in_component() -> bool:
    """Whether this interpreter runs inside a component built by componentize-py."""
    return importlib.util.find_spec("componentize_py_runtime") is not None


def _first_module(*names: str) -> ModuleType | None:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


class _Bindings:
    """The generated modules this plugin's world provides."""

    def __init__(self) -> None:
        from componentize_py_types import Err
        from wit_world.imports import config, kv, log, secrets

        self.Err = Err
        self.log, self.kv, self.config, self.secrets = log, kv, config, secrets
        # The world `tool-plugin-http` also imports `wasi:http/types`, so the bindings
        # disambiguate Sigil's `types` as `sigil_plugin_types`.
        types = _first_module("wit_world.imports.sigil_plugin_types", "wit_world.imports.types")
        if types is None or not hasattr(types, "ToolDescriptor"):
            raise ImportError("the component's bindings lack sigil:plugin/types; was it built for a tool world?")
        self.types = types
        self.outgoing_handler = _first_module("wit_world.imports.outgoing_handler")
        self.http_types = _first_module("wit_world.imports.wasi_http_types") if self.outgoing_handler else None
        self.streams = _first_module("wit_world.imports.streams") if self.outgoing_handler else None


class ComponentBackend:
    """The host facade's backend inside the component: the WIT imports."""

    def __init__(self, b: _Bindings) -> None:
        self.b = b

    def log(self, level: str, message: str) -> None:
        self.b.log.log(getattr(self.b.log.Level, _LEVELS[level]), message)

    def _host_call(self, what: str, run: Any) -> Any:
        try:
            return run()
        except self.b.Err as e:
            raise HostError(f"{what}: {e.value}") from None

    def kv_get(self, key: str) -> bytes | None:
        value: bytes | None = self._host_call(f"kv.get `{key}`", lambda: self.b.kv.get(key))
        return value

    def kv_set(self, key: str, value: bytes) -> None:
        self._host_call(f"kv.set `{key}`", lambda: self.b.kv.set(key, value))

    def kv_delete(self, key: str) -> None:
        self._host_call(f"kv.delete `{key}`", lambda: self.b.kv.delete(key))

    def config(self) -> str:
        return str(self.b.config.get())

    def secret_reference(self, name: str) -> str:
        return str(self._host_call(f"secret `{name}`", lambda: self.b.secrets.reference(name)))

    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int
    ) -> HttpResponse:
        if self.b.outgoing_handler is None:
            raise HostError(
                f"http {method} {url}: this component has no wasi:http; build it for the world "
                "`tool-plugin-http`"
            )
        return _http_request(self.b, method, url, headers, body, max_bytes)


def _words(name: str) -> str:
    """`ErrorCode_ConnectionRefused` → `connection refused`."""
    tail = name.split("_", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", " ", tail).lower()


def _http_request(
    b: _Bindings, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int
) -> HttpResponse:
    t = b.http_types
    assert t is not None and b.outgoing_handler is not None and b.streams is not None
    what = f"http {method} {url}"
    parts = urlsplit(url)
    schemes = {"http": t.Scheme_Http, "https": t.Scheme_Https}
    if parts.scheme not in schemes or not parts.netloc or "@" in parts.netloc:
        raise ToolError.failed(f"{what}: expected an http or https URL with a host and no user name")
    methods = {
        "GET": t.Method_Get, "HEAD": t.Method_Head, "POST": t.Method_Post, "PUT": t.Method_Put,
        "DELETE": t.Method_Delete, "OPTIONS": t.Method_Options, "PATCH": t.Method_Patch,
    }
    method_value = methods[method]() if method in methods else t.Method_Other(method)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    try:
        fields = t.Fields.from_list([(k.lower(), v.encode("utf-8")) for k, v in headers.items()])
    except b.Err as e:
        raise ToolError.failed(f"{what}: a header was refused: {_words(type(e.value).__name__)}") from None
    request = t.OutgoingRequest(fields)
    try:
        request.set_method(method_value)
        request.set_scheme(schemes[parts.scheme]())
        request.set_authority(parts.netloc)
        request.set_path_with_query(path)
    except b.Err:
        raise ToolError.failed(f"{what}: the URL was refused") from None
    outgoing = request.body()
    try:
        future = b.outgoing_handler.handle(request, None)
    except b.Err as e:
        raise _http_error(t, what, e.value) from None
    if body:
        with outgoing.write() as stream:
            for i in range(0, len(body), _WRITE_CHUNK):
                try:
                    stream.blocking_write_and_flush(body[i : i + _WRITE_CHUNK])
                except b.Err:
                    raise ToolError.failed(f"{what}: the request body could not be sent") from None
    t.OutgoingBody.finish(outgoing, None)

    with future:
        result = future.get()
        while result is None:
            with future.subscribe() as ready:
                ready.block()
            result = future.get()
    # Ok(Ok(response)), Ok(Err(error-code)), or Err(()) if the response was already taken.
    if isinstance(result, b.Err):
        raise ToolError.failed(f"{what}: no response")
    if isinstance(result.value, b.Err):
        raise _http_error(t, what, result.value.value)
    response = result.value.value

    with response:
        status = response.status()
        with response.headers() as fields:
            response_headers = [(k, v.decode("utf-8", errors="replace")) for k, v in fields.entries()]
        incoming = response.consume()
        chunks: list[bytes] = []
        try:
            size = 0
            with incoming.stream() as stream:
                while True:
                    try:
                        chunk = stream.blocking_read(_READ_CHUNK)
                    except b.Err as e:
                        if isinstance(e.value, b.streams.StreamError_Closed):
                            break
                        raise ToolError.failed(f"{what}: the response body could not be read") from None
                    size += len(chunk)
                    if size > max_bytes:
                        raise ToolError.failed(f"{what}: the response body is over {max_bytes} bytes")
                    chunks.append(chunk)
        except BaseException:
            incoming.__exit__(None, None, None)  # children go before their parent response
            raise
        with t.IncomingBody.finish(incoming):
            pass  # trailers are not used
    return HttpResponse(status=status, headers=response_headers, body=b"".join(chunks))


def _http_error(t: ModuleType, what: str, code: object) -> ToolError:
    if isinstance(code, t.ErrorCode_HttpRequestDenied):
        return HostError(f"{what}: denied by the host")
    detail = getattr(code, "value", None)
    suffix = f" ({detail})" if isinstance(detail, str) and detail else ""
    return ToolError.failed(f"{what}: {_words(type(code).__name__)}{suffix}")


def _call(info: Any) -> Call:
    return Call(call_id=info.call_id, tool=info.tool, user=info.user, workspace=info.workspace)


def _wit_error(b: _Bindings, error: ToolError) -> Any:
    variant = {
        "denied": b.types.ToolError_Denied,
        "invalid_input": b.types.ToolError_InvalidInput,
        "failed": b.types.ToolError_Failed,
    }[error.kind]
    return b.Err(variant(error.message))


def export_class(plugin: Plugin) -> type:
    """The `Tool` class componentize-py instantiates; see `Plugin.export`."""
    bindings = _Bindings() if in_component() else None
    descriptors: list[Any] = []
    if bindings is not None:
        plugin.host._backend = ComponentBackend(bindings)
        descriptors = [
            bindings.types.ToolDescriptor(
                name=d.name,
                description=d.description,
                input_schema=json.dumps(d.input_schema, separators=(",", ":")),
                output_schema=None if d.output_schema is None else json.dumps(d.output_schema, separators=(",", ":")),
                steps=bindings.types.Steps(d.steps.validate_pre, d.steps.validate_post, d.steps.rollback),
            )
            for d in plugin.descriptors()
        ]

    def run(step: Any) -> Any:
        if bindings is None:
            raise RuntimeError("the exported Tool class only works inside a component; test with sigil_plugin.testing.Harness")
        try:
            return step()
        except ToolError as e:
            raise _wit_error(bindings, e) from None
        except Exception as e:  # the dispatch maps author errors; this is the kit's own last resort
            raise _wit_error(bindings, ToolError.failed(f"{type(e).__name__}: {e}")) from None

    class Tool:
        """Implements `wit_world.exports.Tool` (the `sigil:plugin/tool` interface)."""

        def describe(self) -> list[Any]:
            return list(run(lambda: descriptors))

        def invoke(self, call: Any, input: str) -> str:
            return str(run(lambda: plugin._invoke(_call(call), input)))

        def validate_pre(self, call: Any, input: str) -> None:
            run(lambda: plugin._validate_pre(_call(call), input))

        def validate_post(self, call: Any, input: str, output: str) -> None:
            run(lambda: plugin._validate_post(_call(call), input, output))

        def rollback(self, call: Any, input: str, output: str | None) -> None:
            run(lambda: plugin._rollback(_call(call), input, output))

    return Tool
