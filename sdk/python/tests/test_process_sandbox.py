"""A Python process plugin under bubblewrap, launched the way `sandbox-paths` says a host
should: the interpreter and the kit bound read-only at their own paths, the plugin directory
read-only at /plugin, a private /tmp, no network, nothing of the host's environment. This
checks the launch contract the Rust host follows, with the hostile fixture it tests with."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
from pathlib import Path

import grpc
import pytest

from sigil_plugin.process._sandbox import sandbox_paths
from sigil_plugin.process.testing import PluginProcess

ROOT = Path(__file__).resolve().parents[3]
HELLO = ROOT / "examples" / "hello-process-python"
HOSTILE = ROOT / "crates" / "sigil-process" / "tests" / "fixtures" / "python" / "hostile"


def launcher(tmp_path: Path) -> str:
    """A script that runs `python3 ENTRY` in bubblewrap, taking the host's environment
    variables from `PluginProcess` and nothing else."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.fail("bubblewrap is not installed: `apt-get install -y bubblewrap` (the process tier's sandbox)")
    paths = sandbox_paths()
    args = [
        bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
        "--cap-drop", "ALL", "--new-session", "--die-with-parent",
        "--ro-bind", "/usr", "/usr",
    ]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in paths["ro_binds"]:
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", '"$PWD"', "/plugin", "--chdir", "/plugin"]
    args += ["--bind", '"$sockets"', '"$sockets"', "--clearenv"]
    for name in ("SIGIL_PLUGIN_SOCKET", "SIGIL_PLUGIN_ID"):
        args += ["--setenv", name, f'"${name}"']
    env = {"PATH": f"{Path(paths['executable']).parent}:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    env.update(paths["env"])
    for name, value in env.items():
        args += ["--setenv", name, shlex.quote(value)]
    args += [paths["executable"], '"$1"']
    quoted = " ".join(a if a.startswith('"') else shlex.quote(a) for a in args)
    script = tmp_path / "sandboxed-python"
    script.write_text(f'#!/bin/sh\nsockets=$(dirname "$SIGIL_PLUGIN_SOCKET")\nexec {quoted}\n')
    script.chmod(0o755)
    return str(script)


def test_a_plugin_runs_in_bubblewrap_with_the_documented_binds(tmp_path: Path) -> None:
    with PluginProcess(HELLO, interpreter=launcher(tmp_path), kv={}) as p:
        assert p.call("greet", {"name": "ada"}) == {"greeting": "hello, ada", "times": 1}
        assert p.host.logs == [("call-1", "info", "greeting ada (time 1)")]
        assert p.shutdown() == 0


def test_the_hostile_fixture_is_contained_by_bubblewrap(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        with PluginProcess(HOSTILE, interpreter=launcher(tmp_path)) as p:
            env = p.invoke("env")["env"]
            assert set(env) <= {"SIGIL_PLUGIN_SOCKET", "SIGIL_PLUGIN_ID", "PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH", "PWD"}
            shadow = p.invoke("read_file", {"path": "/etc/shadow"})
            assert shadow["ok"] is False and "FileNotFoundError" in shadow["error"]
            written = p.invoke("write_file", {"path": "/plugin/planted.py"})
            assert written["ok"] is False and "Read-only file system" in written["error"]
            assert not (HOSTILE / "planted.py").exists()
            direct = p.invoke("tcp_connect", {"host": "127.0.0.1", "port": port})
            assert direct["ok"] is False  # the sandbox's loopback is its own
            killed = p.invoke("kill_parent")
            assert killed["attempted"] is True, killed
            assert killed["ok"] is False and killed["parent_alive"] is True and killed["killed"] == []
            assert p.invoke("env")["ok"] is True  # still serving
    finally:
        listener.close()


# --- the hostile fixture itself, outside any sandbox: what it reports, and that it stays safe ---


def test_outside_a_sandbox_kill_parent_refuses() -> None:
    with PluginProcess(HOSTILE) as p:
        out = p.invoke("kill_parent")
        assert out["ok"] is False and out["attempted"] is False and out["refused"]
        assert p.process.poll() is None and p.health() == ("STATUS_SERVING", "")


def test_the_hostile_fixture_reports_what_happened(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with PluginProcess(HOSTILE) as p:
        assert sorted(d.name for d in p.describe()) == sorted(
            ["read_file", "write_file", "tcp_connect", "http_get", "env", "fork_bomb", "allocate",
             "garbage_stdout", "exit_now", "hang", "kill_parent"]
        )
        assert p.invoke("write_file", {"path": str(target), "content": "x"}) == {"ok": True, "path": str(target), "bytes": 1}
        assert p.invoke("read_file", {"path": str(target)})["head"] == "x"
        missing = p.invoke("read_file", {"path": str(tmp_path / "nope")})
        assert missing["ok"] is False and missing["error"].startswith("FileNotFoundError")
        assert p.invoke("fork_bomb", {"count": 3}) == {"ok": True, "forked": 3}
        assert p.invoke("allocate", {"mb": 2}) == {"ok": True, "allocated_mb": 2}
        assert p.invoke("env")["env"]["SIGIL_PLUGIN_ID"] == "hostile"
        garbage = p.invoke("garbage_stdout", {"megabytes": 1})
        assert garbage["ok"] is True and garbage["written"] > 1024 * 1024
        with pytest.raises(grpc.RpcError) as ended:
            p.invoke("exit_now", {"code": 3})
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert p.process.wait() == 3
        assert p.stdout.startswith(b"PRI * HTTP/2.0")
