"""Test tools natively, without building a component.

`Harness` plays the host: it validates the input against the tool's schema, runs
validate-pre, invoke, the output-schema check, validate-post and, when the call fails after
the tool started, rollback, in the order the host does; and it serves the host calls from
memory. Nothing here imports the component bindings.

::

    from sigil_plugin.testing import Harness
    from app import plugin

    def test_greet():
        h = Harness(plugin, kv={}, config={"greeting": "hi"}, secrets={"token"})
        assert h.call("greet", {"name": "ada"}) == {"greeting": "hi, ada"}
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ._errors import HostError, ToolError
from ._host import Backend, HttpRequest, HttpResponse
from ._plugin import Call, Descriptor, Plugin
from ._validate import errors_of

__all__ = ["Harness", "HttpRequest", "HttpResponse", "load_app", "secret_placeholder"]

#: What a fake HTTP route may answer: a response, a status, `(status, body)`,
#: `(status, body, headers)`, or a body for a 200 (bytes, text, or a JSON value).
Reply = HttpResponse | int | tuple[Any, ...] | bytes | str | dict[str, Any] | list[Any]
HttpHandler = Mapping[str, Reply] | Callable[[HttpRequest], Reply]


def load_app(beside: str | Path, module: str = "app") -> ModuleType:
    """Import `module`.py from the directory of `beside` (a test file, usually `__file__`).

    The module gets a name of its own, so the tests of several plugins, each with an `app.py`,
    can run in one pytest session without one `import app` shadowing the others.
    """
    directory = Path(beside).resolve()
    if not directory.is_dir():
        directory = directory.parent
    path = directory / f"{module}.py"
    name = f"_sigil_app_{module}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no app module at {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    sys.path.insert(0, str(directory))  # the app may import modules beside it
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(str(directory))
    return loaded


def secret_placeholder(name: str) -> str:
    """The harness's stand-in for `secret_reference(name)`. A real host's differs: never parse it."""
    return f"<sigil-secret:{name}>"


def _reply(value: Reply) -> HttpResponse:
    if isinstance(value, HttpResponse):
        return value
    if isinstance(value, int):
        return HttpResponse(status=value)
    if isinstance(value, tuple):
        status, body, *rest = value
        headers = list(dict(rest[0]).items()) if rest else []
        response = _reply(body)
        return HttpResponse(status=status, headers=headers or response.headers, body=response.body)
    if isinstance(value, bytes):
        return HttpResponse(200, [], value)
    if isinstance(value, str):
        return HttpResponse(200, [("content-type", "text/plain; charset=utf-8")], value.encode())
    return HttpResponse(200, [("content-type", "application/json")], json.dumps(value).encode())


class _FakeHost:
    def __init__(self, h: Harness) -> None:
        self.h = h

    def log(self, level: str, message: str) -> None:
        self.h.logs.append((level, message))

    def _kv(self, op: str, key: str) -> dict[str, bytes]:
        if self.h.kv is None:
            raise HostError(f"kv.{op} `{key}`: denied: the harness grants no key-value access (pass kv={{}})")
        return self.h.kv

    def kv_get(self, key: str) -> bytes | None:
        return self._kv("get", key).get(key)

    def kv_set(self, key: str, value: bytes) -> None:
        self._kv("set", key)[key] = value

    def kv_delete(self, key: str) -> None:
        self._kv("delete", key).pop(key, None)

    def config(self) -> str:
        return json.dumps(self.h.config)

    def secret_reference(self, name: str) -> str:
        if name not in self.h.secrets:
            raise HostError(f"secret `{name}`: not granted")
        return secret_placeholder(name)

    def http_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int
    ) -> HttpResponse:
        request = HttpRequest(method, url, {k.lower(): v for k, v in headers.items()}, body)
        self.h.requests.append(request)
        handler = self.h.http
        if handler is None:
            raise HostError(f"http {method} {url}: denied: the harness grants no network (pass http=...)")
        if callable(handler):
            reply = handler(request)
        elif f"{method} {url}" in handler:
            reply = handler[f"{method} {url}"]
        elif url in handler and method == "GET":
            reply = handler[url]
        else:
            raise HostError(f"http {method} {url}: denied: no such route in the harness")
        response = _reply(reply)
        if len(response.body) > max_bytes:
            raise ToolError.failed(f"http {method} {url}: the response body is over {max_bytes} bytes")
        return response


class Harness:
    """A host in memory, for unit tests.

    - `kv`: the plugin's key-value state (values as bytes or text), or `None` (the default)
      for a plugin granted no key-value access, whose kv calls are then denied.
    - `config`: the operator's configuration.
    - `secrets`: names of the secrets the plugin may use; others are denied.
    - `http`: `None` for no network, a mapping from `"URL"` (GET) or `"METHOD URL"` to a reply,
      or a function from `HttpRequest` to a reply (see `Reply`).

    After a call, `logs` holds `(level, message)` pairs, `requests` the HTTP requests made,
    `kv` the state, and `trace` the pipeline steps of the last call as `(step, outcome)`.
    """

    def __init__(
        self,
        plugin: Plugin,
        *,
        kv: Mapping[str, bytes | str] | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
        http: HttpHandler | None = None,
        user: str | None = None,
        workspace: str | None = None,
    ) -> None:
        plugin.check()
        self.plugin = plugin
        self.kv: dict[str, bytes] | None = (
            None if kv is None else {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in kv.items()}
        )
        self.config: dict[str, Any] = json.loads(json.dumps(dict(config or {})))
        self.secrets = frozenset(secrets)
        self.http = http
        self.user = user
        self.workspace = workspace
        self.logs: list[tuple[str, str]] = []
        self.requests: list[HttpRequest] = []
        self.trace: list[tuple[str, str]] = []
        self._calls = 0
        self._saved: list[Backend] = []

    # The host facade talks to this harness while a call runs, or inside `with harness:`.
    def __enter__(self) -> Harness:
        self._saved.append(self.plugin.host._backend)
        self.plugin.host._backend = _FakeHost(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.plugin.host._backend = self._saved.pop()

    def describe(self) -> list[Descriptor]:
        """The tools, as the host's `describe` sees them."""
        return self.plugin.descriptors()

    def descriptor(self, tool: str) -> Descriptor:
        for d in self.plugin.descriptors():
            if d.name == tool:
                return d
        known = ", ".join(f"`{d.name}`" for d in self.plugin.descriptors()) or "none"
        raise KeyError(f"unknown tool `{tool}` (this plugin has: {known})")

    def call(
        self,
        tool: str,
        input: Any = None,
        *,
        user: str | None = None,
        workspace: str | None = None,
        call_id: str | None = None,
    ) -> Any:
        """Run `tool` with `input` (a dict, or JSON text) through the pipeline like the host, and
        return its output as JSON values.

        Raises `ToolError` as the host would report it. When a rollback fails too, the error
        raised is still the call's, with a note about the rollback.
        """
        self._calls += 1
        self.trace = []
        call = Call(
            call_id=call_id or f"test-{self._calls}",
            tool=tool,
            user=user if user is not None else self.user,
            workspace=workspace if workspace is not None else self.workspace,
        )
        with self:
            return self._pipeline(call, {} if input is None else input)

    def _record(self, step: str, error: ToolError | None = None) -> None:
        self.trace.append((step, "ok" if error is None else f"{error.kind}: {error.message}"))

    def _pipeline(self, call: Call, input: Any) -> Any:
        p = self.plugin
        try:
            d = self.descriptor(call.tool)
        except KeyError as e:
            raise ToolError.failed(e.args[0]) from None
        input_json = input if isinstance(input, str) else json.dumps(input)
        problems = errors_of(json.loads(input_json), d.input_schema)
        if problems:
            error = ToolError.invalid_input(f"input does not match the schema of `{d.name}`: " + "; ".join(problems))
            self._record("input_schema", error)
            raise error

        if d.steps.validate_pre:
            self._step("validate_pre", lambda: p._validate_pre(call, input_json))
        try:
            output_json = p._invoke(call, input_json)
        except ToolError as error:
            self._record("invoke", error)
            self._undo(d, call, input_json, None, error)
            raise
        self._record("invoke")

        output = json.loads(output_json)
        if d.output_schema is not None:
            problems = errors_of(output, d.output_schema)
            if problems:
                mismatch = ToolError.failed(f"output does not match the output schema of `{d.name}`: " + "; ".join(problems))
                self._record("output_schema", mismatch)
                self._undo(d, call, input_json, output_json, mismatch)
                raise mismatch
        if d.steps.validate_post:
            try:
                self._step("validate_post", lambda: p._validate_post(call, input_json, output_json))
            except ToolError as error:
                self._undo(d, call, input_json, output_json, error)
                raise
        return output

    def _step(self, name: str, run: Callable[[], None]) -> None:
        try:
            run()
        except ToolError as error:
            self._record(name, error)
            raise
        self._record(name)

    def _undo(self, d: Descriptor, call: Call, input_json: str, output_json: str | None, error: ToolError) -> None:
        if not d.steps.rollback:
            return
        try:
            self._step("rollback", lambda: self.plugin._rollback(call, input_json, output_json))
        except ToolError as failure:
            error.add_note(f"rollback failed too: {failure.kind}: {failure.message}")
