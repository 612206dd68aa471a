"""The host facade itself, with a recording backend."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sigil_plugin import HostError, HttpResponse
from sigil_plugin._host import Host


class Recording:
    def __init__(self, config: str = "{}") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._config = config
        self.store: dict[str, bytes] = {}

    def log(self, level: str, message: str) -> None:
        self.calls.append(("log", level, message))

    def kv_get(self, key: str) -> bytes | None:
        return self.store.get(key)

    def kv_set(self, key: str, value: bytes) -> None:
        self.store[key] = value

    def kv_delete(self, key: str) -> None:
        self.store.pop(key, None)

    def config(self) -> str:
        return self._config

    def secret_reference(self, name: str) -> str:
        return f"ref:{name}"

    def http_request(self, method: str, url: str, headers: dict[str, str], body: bytes, max_bytes: int) -> HttpResponse:
        self.calls.append(("http", method, url, headers, body, max_bytes))
        return HttpResponse(204)


def host(backend: Recording) -> Host:
    h = Host()
    h._backend = backend
    return h


def test_log_levels() -> None:
    b = Recording()
    h = host(b)
    h.log.trace("t")
    h.log.debug("d")
    h.log.info("i")
    h.log.warn("w")
    h.log.error("e")
    assert [c[1] for c in b.calls] == ["trace", "debug", "info", "warn", "error"]
    with pytest.raises(ValueError, match="unknown log level `loud`"):
        h.log.log("loud", "x")


def test_kv_helpers() -> None:
    b = Recording()
    h = host(b)
    h.kv.set("bytes", b"\x00\x01")
    h.kv.set("text", "héllo")
    h.kv.set_json("json", {"a": [1]})
    assert b.store == {"bytes": b"\x00\x01", "text": "héllo".encode(), "json": b'{"a":[1]}'}
    assert h.kv.get_text("text") == "héllo"
    assert h.kv.get_json("json") == {"a": [1]}
    assert h.kv.get_json("missing", default=[]) == []
    assert h.kv.get_text("missing") is None
    with pytest.raises(TypeError, match="value must be bytes or str, not int"):
        h.kv.set("n", 3)  # type: ignore[arg-type]


CONFIGS: list[tuple[str, Any]] = [("{}", {}), ("", {}), ("null", {}), ('{"a": 1}', {"a": 1})]


@pytest.mark.parametrize(("text", "expected"), CONFIGS)
def test_config(text: str, expected: Any) -> None:
    assert host(Recording(text)).config() == expected


def test_config_that_is_not_an_object() -> None:
    with pytest.raises(HostError, match="the host sent list, expected an object"):
        host(Recording("[1]")).config()


def test_http_helpers() -> None:
    b = Recording()
    h = host(b)
    assert h.http_get("https://x.test/", {"a": "b"}).status == 204
    h.http_request("post", "https://x.test/", body="hi", max_bytes=10)
    assert b.calls == [
        ("http", "GET", "https://x.test/", {"a": "b"}, b"", 8 * 1024 * 1024),
        ("http", "POST", "https://x.test/", {}, b"hi", 10),
    ]


def test_http_response() -> None:
    r = HttpResponse(201, [("Content-Type", "application/json")], b'{"ok": true}')
    assert r.ok and r.header("content-type") == "application/json" and r.header("x") is None
    assert r.json() == {"ok": True} and r.text() == '{"ok": true}'
    assert not HttpResponse(404).ok


def test_unbound_host_logs_to_python_logging_and_refuses_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    h = Host()
    with caplog.at_level(logging.INFO, logger="sigil_plugin"):
        h.log.info("hello")
    assert caplog.messages == ["hello"]
    for call in (lambda: h.kv.get("k"), h.config, lambda: h.secret_reference("s"), lambda: h.http_get("https://x.test")):
        with pytest.raises(RuntimeError, match="needs a host"):
            call()
