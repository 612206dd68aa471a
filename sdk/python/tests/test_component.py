"""End to end: build `apps/e2e_app.py` into a component with componentize-py and call it in
wasmtime (wasmtime-py 48, the engine version of Sigil's host) through `wasm_host.py`.

Skipped when componentize-py or wasmtime-py is not installed (`scripts/install-python-kit`
installs both). Building and compiling take 20 to 30 seconds together.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Imported outright, never skipped: a missing tool is a failed install (scripts/install-python-kit),
# not a reason for these tests to pass without running.
import componentize_py  # noqa: F401
import wasmtime
import wasmtime.component as wc

from wasm_host import ComponentHost

HERE = Path(__file__).resolve().parent
REPO_WIT = HERE.parents[2] / "wit"


@pytest.fixture(scope="module")
def component(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("component")
    # The tool worlds need only these; the other kinds' WIT is not this kit's concern.
    wit = out / "wit"
    wit.mkdir()
    for name in ("types.wit", "tool.wit"):
        shutil.copy(REPO_WIT / name, wit / name)
    shutil.copytree(REPO_WIT / "deps", wit / "deps")
    wasm = out / "e2e.wasm"
    done = subprocess.run(
        [sys.executable, "-m", "sigil_plugin", "build", str(HERE / "apps"), "--app", "e2e_app",
         "--world", "tool-plugin-http", "--wit", str(wit), "-o", str(wasm)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "for world tool-plugin-http" in done.stdout
    engine = wasmtime.Engine()
    return engine, wc.Component.from_file(engine, str(wasm))


@pytest.fixture
def host(component: Any) -> ComponentHost:
    engine, comp = component
    h = ComponentHost(engine, comp, http=True)
    h.fakes.secrets = {"token"}
    h.fakes.config = {"shop": "north"}
    return h


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"path": self.path, "x-test": self.headers.get("x-test")}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_describe_matches_the_native_descriptors(host: ComponentHost) -> None:
    sys.path.insert(0, str(HERE / "apps"))
    try:
        import e2e_app
    finally:
        sys.path.remove(str(HERE / "apps"))
    native = [
        {
            "name": d.name,
            "description": d.description,
            "input_schema": d.input_schema,
            "output_schema": d.output_schema,
            "steps": (d.steps.validate_pre, d.steps.validate_post, d.steps.rollback),
        }
        for d in e2e_app.plugin.descriptors()
    ]
    assert host.describe() == native


def test_invoke_with_host_calls(host: ComponentHost) -> None:
    out = host.invoke("order", {"items": [{"name": "tea", "qty": 2}, {"name": "jam"}]}, user="ada")
    assert out.ok, out.value
    assert out.value == {"total": 3, "names": ["tea", "jam"], "config": {"shop": "north"}, "token": "<secret token>"}
    assert host.fakes.kv == {"last": b'{"total":3,"user":"ada"}'}
    assert host.fakes.logs == [("info", "ordered 3")]


def test_pipeline_steps(host: ComponentHost) -> None:
    assert host.validate_pre("order", {"items": [{"name": "tea"}]}).ok
    assert host.validate_pre("order", {"items": []}).value == ("invalid-input", "nothing to order")
    assert host.validate_post("order", {"items": [{"name": "tea"}]}, {"total": 1}).ok
    assert host.validate_post("order", {"items": []}, {"total": 101}).value == ("failed", "order too large to confirm")
    host.fakes.kv["last"] = b"{}"
    assert host.rollback("order", {"items": []}, None).ok
    assert host.fakes.kv == {}
    assert host.fakes.logs[-1] == ("warn", "rolled back (output: None)")


ERRORS: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
    ("tool error", {"items": [{"name": "tea"}], "mode": "slow"}, ("failed", "slow shipping is out of stock")),
    ("schema", {"items": [{"name": 1}]}, ("invalid-input", "/items/0/name: expected string, got integer 1")),
    ("unknown property", {"items": [], "x": 1}, ("invalid-input", "/: unknown property `x` (expected: `items`, `mode`)")),
]


@pytest.mark.parametrize(("input", "error"), [(i, e) for _, i, e in ERRORS], ids=[n for n, _, _ in ERRORS])
def test_errors(host: ComponentHost, input: dict[str, Any], error: tuple[str, str]) -> None:
    assert host.invoke("order", input).value == error


def test_python_exceptions_fail_and_log(host: ComponentHost) -> None:
    assert host.invoke("crash", {}).value == ("failed", "ValueError: boom")
    level, message = host.fakes.logs[-1]
    assert level == "error" and message.endswith("ValueError: boom")


def test_host_refusals_are_denied(host: ComponentHost) -> None:
    assert host.invoke("secret", {"name": "nope"}).value == ("denied", "secret `nope`: secret `nope` is not granted")
    host.fakes.deny_kv_writes = True
    assert host.invoke("order", {"items": [{"name": "tea"}]}).value == ("denied", "kv.set `last`: denied: kv.write:last")


def test_http_get(host: ComponentHost, server: str) -> None:
    out = host.invoke("fetch", {"url": f"{server}/a?b=1"})
    assert out.ok, out.value
    assert out.value["status"] == 200 and out.value["type"] == "application/json"
    assert json.loads(out.value["body"]) == {"path": "/a?b=1", "x-test": "sigil"}


def test_http_transport_failure(host: ComponentHost) -> None:
    assert host.invoke("fetch", {"url": "http://127.0.0.1:1/"}).value == ("failed", "http GET http://127.0.0.1:1/: connection refused")
    assert host.invoke("fetch", {"url": "ftp://x/"}).value[0] == "failed"
