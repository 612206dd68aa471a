"""A minimal host for tool components, on wasmtime-py, for the kit's end-to-end tests.

It links WASI p2 (and wasi:http when asked) plus Sigil's `log`, `kv`, `config` and `secrets`
from memory, and calls the exported `sigil:plugin/tool` interface. It is a test double of the
Rust host, not a model of its policy: everything is allowed except what a test denies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import wasmtime
import wasmtime.component as wc

TOOL = "sigil:plugin/tool@0.1.0"


@dataclass
class Outcome:
    ok: bool
    value: Any  # the JSON value on success, (kind, message) on failure


@dataclass
class Fakes:
    kv: dict[str, bytes] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    deny_kv_writes: bool = False
    logs: list[tuple[str, str]] = field(default_factory=list)


class ComponentHost:
    def __init__(self, engine: wasmtime.Engine, component: wc.Component, *, http: bool) -> None:
        self.engine = engine
        self.component = component
        self.http = http
        self.fakes = Fakes()
        self.linker = wc.Linker(engine)
        self.linker.add_wasip2()
        if http:
            self.linker.add_wasi_http()
        self._link_sigil()

    def _link_sigil(self) -> None:
        f = self.fakes

        def kv_set(_store: Any, key: str, value: bytes) -> str | None:
            if f.deny_kv_writes:
                return f"denied: kv.write:{key}"  # result<_, string>: a string is the error case
            f.kv[key] = bytes(value)
            return None

        def kv_delete(_store: Any, key: str) -> str | None:
            if f.deny_kv_writes:
                return f"denied: kv.write:{key}"
            f.kv.pop(key, None)
            return None

        def reference(_store: Any, name: str) -> wc.Variant:
            if name in f.secrets:
                return wc.Variant("ok", f"<secret {name}>")
            return wc.Variant("err", f"secret `{name}` is not granted")

        with self.linker.root() as root:
            with root.add_instance("sigil:plugin/log@0.1.0") as log:
                log.add_func("log", lambda _s, level, message: f.logs.append((level, message)))
            with root.add_instance("sigil:plugin/kv@0.1.0") as kv:
                kv.add_func("get", lambda _s, key: f.kv.get(key))
                kv.add_func("set", kv_set)
                kv.add_func("delete", kv_delete)
            with root.add_instance("sigil:plugin/config@0.1.0") as config:
                config.add_func("get", lambda _s: json.dumps(f.config))
            with root.add_instance("sigil:plugin/secrets@0.1.0") as secrets:
                secrets.add_func("reference", reference)

    def _instance(self) -> tuple[wasmtime.Store, wc.Instance, wc.ExportIndex]:
        # A fresh store per call, like the Rust host.
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        if self.http:
            store.set_wasi_http()
        instance = self.linker.instantiate(store, self.component)
        tool = instance.get_export_index(store, TOOL)
        assert tool is not None, f"the component does not export {TOOL}"
        return store, instance, tool

    def _call(self, name: str, *args: Any) -> Any:
        store, instance, tool = self._instance()
        index = instance.get_export_index(store, name, tool)
        assert index is not None, f"{TOOL} has no `{name}`"
        func = instance.get_func(store, index)
        assert func is not None
        result = func(store, *args)
        func.post_return(store)
        return result

    @staticmethod
    def _call_info(tool: str, user: str | None) -> wc.Record:
        info = wc.Record()
        setattr(info, "call-id", "e2e-1")
        info.tool = tool
        info.user = user
        info.workspace = None
        return info

    @staticmethod
    def _outcome(result: Any) -> Outcome:
        if isinstance(result, wc.Variant):  # the tool-error case
            return Outcome(False, (result.tag, result.payload))
        return Outcome(True, None if result is None else json.loads(result))

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for d in self._call("describe"):
            steps = d.steps
            out.append(
                {
                    "name": d.name,
                    "description": d.description,
                    "input_schema": json.loads(getattr(d, "input-schema")),
                    "output_schema": None if getattr(d, "output-schema") is None else json.loads(getattr(d, "output-schema")),
                    "steps": (getattr(steps, "validate-pre"), getattr(steps, "validate-post"), steps.rollback),
                }
            )
        return out

    def invoke(self, tool: str, input: Any, user: str | None = None) -> Outcome:
        return self._outcome(self._call("invoke", self._call_info(tool, user), json.dumps(input)))

    def validate_pre(self, tool: str, input: Any) -> Outcome:
        return self._outcome(self._call("validate-pre", self._call_info(tool, None), json.dumps(input)))

    def validate_post(self, tool: str, input: Any, output: Any) -> Outcome:
        return self._outcome(self._call("validate-post", self._call_info(tool, None), json.dumps(input), json.dumps(output)))

    def rollback(self, tool: str, input: Any, output: Any | None) -> Outcome:
        out = None if output is None else json.dumps(output)
        return self._outcome(self._call("rollback", self._call_info(tool, None), json.dumps(input), out))
