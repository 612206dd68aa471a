"""A process-tier test plugin for the kit's own tests: every host call, the pipeline, errors,
concurrency and draining, while printing junk to stdout all along (the protocol never reads it)."""

import os
import sys
import threading
import time

from sigil_plugin import Call, HostError, Plugin, ToolError

# Junk on stdout, including what looks like the start of an HTTP/2 connection.
sys.stdout.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n{\"protocol\": \"not here\"}\n")
sys.stdout.flush()
os.write(1, bytes(range(256)))

plugin = Plugin()
_barrier = threading.Barrier(2, timeout=120)


def junk() -> None:
    print("junk from a tool", flush=True)


@plugin.tool
def echo(text: str, call: Call) -> dict:
    """Echo the text, with who is calling."""
    junk()
    return {"text": text, "call_id": call.call_id, "tool": call.tool, "user": call.user, "workspace": call.workspace}


@plugin.tool
def host_calls(key: str, secret: str, url: str) -> dict:
    """Use every host call once and report what happened."""
    junk()
    out: dict = {}
    plugin.host.log.warn("using the host")
    plugin.host.kv.set(key, b"\x00value")
    out["kv_after_set"] = plugin.host.kv.get(key).hex()
    plugin.host.kv.delete(key)
    out["kv_after_delete"] = plugin.host.kv.get(key)
    out["config"] = plugin.host.config()
    try:
        out["secret"] = plugin.host.secret_reference(secret)
    except HostError as e:
        out["secret_error"] = e.message
    try:
        reply = plugin.host.http_get(url, {"authorization": f"Bearer {out.get('secret', '')}"})
        out["http"] = {"status": reply.status, "body": reply.text(), "type": reply.header("Content-Type")}
    except HostError as e:
        out["http_error"] = e.message
    return out


@plugin.tool
def from_a_thread() -> str:
    """A host call from a thread the tool started has no call to act for."""
    result: list[str] = []

    def run() -> None:
        try:
            plugin.host.kv.get("k")
            result.append("allowed")
        except HostError as e:
            result.append(e.message)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return result[0]


@plugin.tool
def crash(how: str) -> str:
    """Fail in one of several ways."""
    junk()
    if how == "value_error":
        raise ValueError("bad value")
    if how == "exit":
        sys.exit(7)
    if how == "tool_error":
        raise ToolError.invalid_input("no thanks")
    return "fine"


@plugin.tool
def rendezvous(call: Call) -> str:
    """Wait until a second call is running too, then say which call this was."""
    plugin.host.log.info(f"waiting as {call.call_id}")
    _barrier.wait()
    plugin.host.log.info(f"released as {call.call_id}")
    return call.call_id


@plugin.tool
def wait_for(path: str) -> str:
    """Block until the file `path` exists (a test releases it), then return its text."""
    plugin.host.log.info("waiting")
    while not os.path.exists(path):
        time.sleep(0.01)
    with open(path) as f:
        return f.read()


@plugin.tool
def staged(mode: str) -> dict:
    """A tool with every pipeline step; `mode` picks which one fails."""
    plugin.host.log.info("invoke")
    if mode == "fail_invoke":
        raise ToolError.failed("invoke failed")
    return {"mode": mode}


@plugin.validate_pre(staged)
def staged_pre(mode: str) -> None:
    plugin.host.log.info("validate_pre")
    if mode == "fail_pre":
        raise ToolError.invalid_input("validate_pre refused")


@plugin.validate_post(staged)
def staged_post(mode: str, output: dict) -> None:
    plugin.host.log.info(f"validate_post {output['mode']}")
    if mode == "fail_post":
        raise ToolError.failed("validate_post refused")


@plugin.rollback(staged)
def staged_rollback(mode: str, output: dict | None) -> None:
    plugin.host.log.info(f"rollback with output {output}")


if __name__ == "__main__":
    plugin.serve()
