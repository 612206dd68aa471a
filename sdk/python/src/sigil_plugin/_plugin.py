"""`Plugin`: tools declared with decorators, and the dispatch both the component and the test
harness go through.

The dispatch functions (`describe`, `invoke`, `validate_pre`, `validate_post`, `rollback`)
take and return JSON text, like the WIT interface, and raise nothing but `ToolError`, so the
component's glue only has to translate types.
"""

from __future__ import annotations

import inspect
import json
import re
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _schema
from ._errors import SchemaError, ToolError
from ._host import Host
from ._validate import errors_of

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
_STEPS = ("validate_pre", "validate_post", "rollback")
_DOC_SECTIONS = re.compile(r"^(Args|Arguments|Parameters|Params|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")
_DOC_ARG = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")

#: Marks `output_schema` left to be derived from the return annotation.
DERIVE: Any = object()


@dataclass(frozen=True)
class Call:
    """Who is calling, for the tool's own records; authority stays with the host.

    A tool or step parameter annotated `Call` receives it and is left out of the schema.
    """

    call_id: str
    tool: str
    user: str | None = None
    workspace: str | None = None


@dataclass(frozen=True)
class Steps:
    validate_pre: bool
    validate_post: bool
    rollback: bool


@dataclass(frozen=True)
class Descriptor:
    """One tool as `describe` reports it; the schemas are JSON values, not text."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    steps: Steps


@dataclass(frozen=True)
class _Param:
    name: str
    hint: Any
    default: Any  # inspect.Parameter.empty when required


@dataclass
class _Tool:
    name: str
    description: str
    fn: Callable[..., Any]
    params: list[_Param]
    call_params: list[str]
    returns: Any
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None


@dataclass
class _Step:
    kind: str
    fn: Callable[..., Any]
    accepts: frozenset[str] | None  # None: takes **kwargs, so everything
    call_params: list[str]


def _parse_doc(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary of a docstring, and Google-style `Args:` descriptions by parameter."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        header = _DOC_SECTIONS.match(line)
        if header:
            section, current = header.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters", "Params"):
            stripped = line.strip()
            match = _DOC_ARG.match(stripped)
            indent = len(line) - len(line.lstrip())
            if match and indent <= 4:
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}".strip()
    return "\n".join(summary).strip(), args


def _is_call_hint(hint: object) -> bool:
    return hint is Call or (typing.get_origin(hint) is typing.Annotated and typing.get_args(hint)[0] is Call)


@dataclass(frozen=True)
class Verdict:
    """A hook's answer to one lifecycle event. Only before-events' verdicts take effect; the
    host ignores the others'. Make one with `Verdict.allow()`, `Verdict.deny(reason)`,
    `Verdict.patch(payload)` or `Verdict.ask_approval(reason)`."""

    kind: str
    reason: str = ""
    payload: Any = None

    @staticmethod
    def allow() -> Verdict:
        """Go ahead."""
        return Verdict("allow")

    @staticmethod
    def deny(reason: str) -> Verdict:
        """Stop the action, for `reason` (shown to the caller and recorded)."""
        return Verdict("deny", reason=reason)

    @staticmethod
    def patch(payload: Any) -> Verdict:
        """Go ahead with `payload` instead: the whole payload, modified. The host takes only
        what the event lets a hook change (for `before_tool_execute`, `input`) and validates
        it again."""
        return Verdict("patch", payload=payload)

    @staticmethod
    def ask_approval(reason: str) -> Verdict:
        """Stop the action until an operator approves it, for `reason`."""
        return Verdict("ask_approval", reason=reason)


class Plugin:
    """A tool plugin: declare tools with `@plugin.tool`, then end the module with
    `Tool = plugin.export()` so componentize-py finds the exported `tool` interface (wasm
    tier), or with `if __name__ == "__main__": plugin.serve()` (process tier).

    ::

        plugin = Plugin()

        @plugin.tool(description="Greet someone.")
        def greet(name: str, excited: bool = False) -> dict:
            return {"greeting": f"hello, {name}{'!' if excited else ''}"}

        Tool = plugin.export()
    """

    def __init__(self) -> None:
        self.host = Host()
        self._tools: dict[str, _Tool] = {}
        self._steps: dict[str, dict[str, _Step]] = {kind: {} for kind in _STEPS}
        self._hook: Callable[[str, Any, Call], Verdict] | None = None

    # --- declaring -------------------------------------------------------------------------

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        output_schema: dict[str, Any] | None = DERIVE,
    ) -> Any:
        """Declare a tool. Use as `@plugin.tool` or `@plugin.tool(description=...)`.

        The input schema comes from the parameters' type hints (a parameter with a default is
        optional; unknown properties are refused). The description defaults to the docstring,
        whose Google-style `Args:` section describes the parameters. The output schema comes
        from the return annotation unless `output_schema` is given (`None`: no output schema).
        The function is returned unchanged, so it can still be called directly.

        Raises `SchemaError` if a hint cannot be described as JSON Schema.
        """

        def register(f: F) -> F:
            self._add_tool(f, name, description, output_schema)
            return f

        return register(fn) if fn is not None else register

    def validate_pre(self, tool: str | Callable[..., Any]) -> Callable[[F], F]:
        """Declare the step run before `tool` executes; raise `ToolError` to refuse the call.

        A step takes any of the tool's parameters by name (or `**kwargs` for all) and a `Call`.
        """
        return self._step("validate_pre", tool)

    def validate_post(self, tool: str | Callable[..., Any]) -> Callable[[F], F]:
        """Declare the step run after `tool` succeeds; it also takes `output`, the result.

        Raising `ToolError` fails the call, and the host then runs the rollback step.
        """
        return self._step("validate_post", tool)

    def rollback(self, tool: str | Callable[..., Any]) -> Callable[[F], F]:
        """Declare how to undo `tool` when it or its post-validation failed.

        It takes the tool's parameters and `output`: the result if the tool itself succeeded,
        else `None`.
        """
        return self._step("rollback", tool)

    def hook(self, fn: Callable[[str, Any, Call], Verdict]) -> Callable[[str, Any, Call], Verdict]:
        """Declare the plugin's hook (process tier): `fn(event, payload, call) -> Verdict`,
        called for each event the manifest subscribes to (`[[hooks]]`, with `kinds` listing
        `hook`). `payload` is the event's JSON payload, for `before_tool_execute`
        `{"plugin", "tool", "input", "actor", "call_id"}`; `call.tool` is the event's name.
        The manifest's `timeout_ms` bounds each run; a hook that raises, or runs longer,
        denies a before-event.

        Raises `SchemaError` when the plugin already has a hook: one hook receives every event.
        """
        if self._hook is not None:
            raise SchemaError(
                f"hook `{fn.__name__}`: the plugin already has the hook `{self._hook.__name__}`; "
                "one hook receives every event (branch on `event`)"
            )
        self._hook = fn
        return fn

    def export(self) -> type:
        """The class componentize-py instantiates for the exported `tool` interface.

        Bind it to the name `Tool` at module level of the app module: `Tool = plugin.export()`.
        Natively (under pytest) nothing is imported from the component bindings.
        """
        self.check()
        from ._component import export_class

        return export_class(self)

    def serve(self, *, socket: str | None = None, max_workers: int = 16) -> None:
        """Serve this plugin as a process-tier plugin until the host shuts it down.

        End `main.py` with `if __name__ == "__main__": plugin.serve()`. The socket defaults
        to `$SIGIL_PLUGIN_SOCKET`, set by the host. Needs `grpcio` and `protobuf` (the
        `process` extra); see `sigil_plugin.process.serve`.
        """
        from .process import serve

        serve(self, socket=socket, max_workers=max_workers)

    def check(self) -> None:
        """Raise `SchemaError` if a pipeline step names a tool that was never declared, or takes
        a parameter the tool does not have."""
        for kind, steps in self._steps.items():
            for tool_name, step in steps.items():
                tool = self._tools.get(tool_name)
                if tool is None:
                    known = ", ".join(f"`{t}`" for t in self._tools) or "none"
                    raise SchemaError(f"{kind} step for unknown tool `{tool_name}` (tools: {known})")
                offered = {p.name for p in tool.params} | ({"output"} if kind != "validate_pre" else set())
                unknown = sorted((step.accepts or frozenset()) - offered)
                if unknown:
                    names = ", ".join(f"`{n}`" for n in unknown)
                    raise SchemaError(
                        f"{kind} step `{step.fn.__name__}` of tool `{tool_name}` takes {names}, "
                        f"which the step is not given (it may take: {', '.join(f'`{n}`' for n in sorted(offered))})"
                    )

    # --- describing ------------------------------------------------------------------------

    def descriptors(self) -> list[Descriptor]:
        """Every tool as the host sees it through `describe`."""
        return [
            Descriptor(
                name=t.name,
                description=t.description,
                input_schema=t.input_schema,
                output_schema=t.output_schema,
                steps=Steps(*(t.name in self._steps[kind] for kind in _STEPS)),
            )
            for t in self._tools.values()
        ]

    # --- dispatch: JSON text in, JSON text out, only ToolError raised ----------------------

    def _on_event(self, call: Call, event: str, payload_json: str) -> Verdict:
        """Runs the hook; raises `ToolError` when there is none, or it fails or answers
        something other than a `Verdict`."""
        hook = self._hook
        if hook is None:
            raise ToolError.failed("this plugin handles no hook events")
        try:
            payload = json.loads(payload_json)
        except ValueError as e:
            raise ToolError.failed(f"the event's payload is not JSON: {e}") from None
        try:
            verdict = hook(event, payload, call)
        except ToolError:
            raise
        except Exception as e:
            message = str(e)
            raise ToolError.failed(
                f"the hook raised {type(e).__name__}: {message}" if message else f"the hook raised {type(e).__name__}"
            ) from None
        if not isinstance(verdict, Verdict):
            raise ToolError.failed(f"the hook returned {type(verdict).__name__}, not a Verdict")
        return verdict

    def _invoke(self, call: Call, input_json: str) -> str:
        tool = self._tool(call)
        args = self._arguments(tool, input_json)
        result = self._guard(tool.name, "invoke", lambda: tool.fn(**args, **dict.fromkeys(tool.call_params, call)))
        try:
            return json.dumps(
                result, default=_schema.to_json_value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            )
        except (TypeError, ValueError) as e:
            raise ToolError.failed(f"tool `{tool.name}` returned a value that is not JSON: {e}") from None

    def _validate_pre(self, call: Call, input_json: str) -> None:
        self._run_step("validate_pre", call, input_json, None, has_output=False)

    def _validate_post(self, call: Call, input_json: str, output_json: str) -> None:
        self._run_step("validate_post", call, input_json, output_json, has_output=True)

    def _rollback(self, call: Call, input_json: str, output_json: str | None) -> None:
        self._run_step("rollback", call, input_json, output_json, has_output=True)

    # --- internals -------------------------------------------------------------------------

    def _add_tool(
        self, fn: Callable[..., Any], name: str | None, description: str | None, output_schema: Any
    ) -> None:
        name = name if name is not None else fn.__name__
        if not _TOOL_NAME.match(name):
            raise SchemaError(
                f"tool name `{name}`: use 1 to 64 lowercase letters, digits, `_` and `-` (pass name=...)"
            )
        if name in self._tools:
            raise SchemaError(f"tool `{name}` is declared twice")
        if inspect.iscoroutinefunction(fn):
            raise SchemaError(f"tool `{name}`: async tools are not supported; the host calls are blocking, so use a plain def")
        summary, arg_docs = _parse_doc(fn.__doc__)
        description = description if description is not None else summary
        if not description.strip():
            raise SchemaError(f"tool `{name}` needs a description: pass description=... or write a docstring")

        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as e:  # a forward reference that does not resolve, most often
            raise SchemaError(f"tool `{name}`: cannot resolve the type hints: {e}") from None
        params: list[_Param] = []
        call_params: list[str] = []
        fields: list[tuple[str, object, bool, object]] = []
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise SchemaError(f"tool `{name}`: parameter `{p.name}` must be a plain named parameter")
            hint = hints.get(p.name, Any)
            if _is_call_hint(hint):
                call_params.append(p.name)
                continue
            if p.name in arg_docs and typing.get_origin(hint) is not typing.Annotated:
                hint = typing.Annotated[hint, arg_docs[p.name]]
            params.append(_Param(p.name, hint, p.default))
            fields.append((p.name, hint, p.default is p.empty, p.default))
        returns = hints.get("return", inspect.Parameter.empty)
        try:
            input_schema = _schema.object_schema(fields, "", ())
            if output_schema is DERIVE:
                derived = None if returns is inspect.Parameter.empty else _schema.schema_of(returns, "result")
                output_schema = derived or None  # `Any` derives `{}`: no constraint, so no schema
        except SchemaError as e:
            raise SchemaError(f"tool `{name}`: {e}") from None
        self._tools[name] = _Tool(name, description, fn, params, call_params, returns, input_schema, output_schema)

    def _step(self, kind: str, tool: str | Callable[..., Any]) -> Callable[[F], F]:
        tool_name = tool if isinstance(tool, str) else self._name_of(tool)

        def register(fn: F) -> F:
            if tool_name in self._steps[kind]:
                raise SchemaError(f"tool `{tool_name}` has two {kind} steps")
            try:
                hints = typing.get_type_hints(fn, include_extras=True)
            except Exception as e:
                raise SchemaError(f"{kind} step `{fn.__name__}`: cannot resolve the type hints: {e}") from None
            accepts: set[str] | None = set()
            call_params: list[str] = []
            for p in inspect.signature(fn).parameters.values():
                if p.kind is p.VAR_KEYWORD:
                    accepts = None
                elif p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                    raise SchemaError(f"{kind} step `{fn.__name__}`: parameter `{p.name}` must be a plain named parameter")
                elif _is_call_hint(hints.get(p.name)):
                    call_params.append(p.name)
                elif accepts is not None:
                    accepts.add(p.name)
            target = self._tools.get(tool_name)
            if kind != "validate_pre" and target and any(p.name == "output" for p in target.params):
                raise SchemaError(f"tool `{tool_name}` has a parameter `output`, which clashes with the {kind} step's `output`")
            self._steps[kind][tool_name] = _Step(kind, fn, None if accepts is None else frozenset(accepts), call_params)
            return fn

        return register

    def _name_of(self, fn: Callable[..., Any]) -> str:
        for t in self._tools.values():
            if t.fn is fn:
                return t.name
        raise SchemaError(f"`{getattr(fn, '__name__', fn)}` is not a tool of this plugin: declare it with @plugin.tool first")

    def _tool(self, call: Call) -> _Tool:
        tool = self._tools.get(call.tool)
        if tool is None:
            known = ", ".join(f"`{t}`" for t in self._tools) or "none"
            raise ToolError.failed(f"unknown tool `{call.tool}` (this plugin has: {known})")
        return tool

    def _arguments(self, tool: _Tool, input_json: str) -> dict[str, Any]:
        try:
            value = json.loads(input_json) if input_json.strip() else {}
        except ValueError as e:
            raise ToolError.invalid_input(f"input is not JSON: {e}") from None
        problems = errors_of(value, tool.input_schema)
        if problems:
            raise ToolError.invalid_input("; ".join(problems))
        return {p.name: _schema.convert(value[p.name], p.hint) for p in tool.params if p.name in value}

    def _run_step(self, kind: str, call: Call, input_json: str, output_json: str | None, *, has_output: bool) -> None:
        tool = self._tool(call)
        step = self._steps[kind].get(tool.name)
        if step is None:
            return  # the descriptor says there is no such step; a host that calls anyway gets a no-op
        available = self._arguments(tool, input_json)
        for p in tool.params:
            available.setdefault(p.name, p.default)  # required ones are present: the input was valid
        if has_output:
            output = None
            if output_json is not None:
                try:
                    output = _schema.convert(json.loads(output_json), tool.returns)
                except ValueError as e:
                    raise ToolError.invalid_input(f"output handed to {kind} is not JSON: {e}") from None
            available["output"] = output
        args = available if step.accepts is None else {k: v for k, v in available.items() if k in step.accepts}
        args.update(dict.fromkeys(step.call_params, call))
        self._guard(tool.name, kind, lambda: step.fn(**args))

    def _guard(self, tool: str, step: str, run: Callable[[], Any]) -> Any:
        """Run author code; every exception becomes a `ToolError`."""
        try:
            return run()
        except ToolError:
            raise
        except Exception as e:
            detail = "".join(traceback.format_exception(e)).rstrip()
            try:
                self.host.log.error(f"tool `{tool}` {step} raised:\n{detail}")
            except Exception:
                pass  # logging is best effort; the call's error is what matters
            message = str(e)
            raise ToolError.failed(f"{type(e).__name__}: {message}" if message else type(e).__name__) from None

