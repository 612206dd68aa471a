"""`python -m sigil_plugin build | describe | codegen`: build a plugin directory into a
component, show its tools as the host will see them, or regenerate the process tier's stubs.

    python -m sigil_plugin build [DIR] [--app app] [--world WORLD] [--wit DIR/wit] [-o OUT]
    python -m sigil_plugin describe [DIR] [--app app]
    python -m sigil_plugin codegen [--check]
    python -m sigil_plugin sandbox-paths

A process-tier plugin (`execution.tier = "process"` in `plugin.toml`) has nothing to compile:
`build` imports its entry (default `main.py`; `--app` names another module) without serving,
checks the tools and pipeline steps, and reports them. `describe` reads the same module.

`build` runs componentize-py with the plugin directory and this kit on the Python path (an
editable install of the kit is invisible to componentize-py, which reads no `.pth` files).
The WIT directory defaults to `DIR/wit`, else, inside a git work tree, the nearest `wit/`
above `DIR` holding `tool.wit`.
The world defaults to `tool-plugin-http` when `plugin.toml` requests a `net.connect`
capability, else `tool-plugin`; the output defaults to the manifest's `execution.entry`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KIT_PATH = Path(__file__).resolve().parent.parent


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / "plugin.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def _world(manifest: dict[str, Any]) -> str:
    requested = manifest.get("capabilities", {}).get("request", [])
    wants_net = any(str(c.get("capability", "")).startswith("net.") for c in requested if isinstance(c, dict))
    return "tool-plugin-http" if wants_net else "tool-plugin"


def _find_wit(directory: Path) -> Path:
    """`DIR/wit`, else the nearest `wit/` holding `tool.wit` between `DIR` and the root of the
    git work tree around it (a plugin kept inside Sigil's own tree, like its examples)."""
    top = next((d for d in (directory, *directory.parents) if (d / ".git").exists()), None)
    if top is not None:
        for candidate in (directory, *directory.parents):
            if (candidate / "wit" / "tool.wit").is_file():
                return candidate / "wit"
            if candidate == top:
                break
    return directory / "wit"


def _componentize_py() -> list[str]:
    """componentize-py from this Python's environment (what the install script put there),
    else the first on PATH."""
    try:
        importlib.import_module("componentize_py")
    except ImportError:
        exe = shutil.which("componentize-py")
        if exe:
            return [exe]
        sys.exit("error: componentize-py is not installed: run scripts/install-python-kit or `pip install componentize-py==0.25.1`")
    return [sys.executable, "-c", "import sys, componentize_py; sys.argv[0] = 'componentize-py'; sys.exit(componentize_py.script())"]


def _is_process(manifest: dict[str, Any]) -> bool:
    return manifest.get("execution", {}).get("tier") == "process"


def _app_name(args: argparse.Namespace, manifest: dict[str, Any]) -> str:
    """`--app`, else the entry's module for a process-tier plugin (`main.py` → `main`), else `app`."""
    if args.app:
        return str(args.app)
    if _is_process(manifest):
        return Path(str(manifest.get("execution", {}).get("entry", "main.py"))).stem
    return "app"


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever the app prints, even straight to file descriptor 1, to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _load_plugin(directory: Path, app: str) -> tuple[Any, Any]:
    """Import `app` from `directory` (its stdout sent to stderr, so ours stays clean) and return
    the module and its `plugin`. Exits with a message when there is none."""
    if not (directory / f"{app}.py").is_file() and not (directory / app).is_dir():
        sys.exit(f"error: no app module `{app}` in {directory} (expected {app}.py)")
    sys.path.insert(0, str(directory))
    with _stdout_to_stderr():
        module = importlib.import_module(app)
    plugin = getattr(module, "plugin", None)
    from . import Plugin

    if not isinstance(plugin, Plugin):
        sys.exit(f"error: `{app}` has no `plugin = Plugin()` at module level")
    plugin.check()
    return module, plugin


def build_process(directory: Path, app: str) -> int:
    _, plugin = _load_plugin(directory, app)
    names = ", ".join(d.name for d in plugin.descriptors()) or "none"
    print(f"checked {directory / (app + '.py')}: a process-tier plugin runs as is, nothing to compile (tools: {names})")
    return 0


def build(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    manifest = _manifest(directory)
    args.app = _app_name(args, manifest)
    if _is_process(manifest):
        return build_process(directory, args.app)
    world = args.world or _world(manifest)
    wit = Path(args.wit).resolve() if args.wit else _find_wit(directory)
    output = Path(args.output) if args.output else Path(manifest.get("execution", {}).get("entry", "plugin.wasm"))
    output = output if output.is_absolute() else directory / output
    if not (directory / f"{args.app}.py").is_file() and not (directory / args.app).is_dir():
        sys.exit(f"error: no app module `{args.app}` in {directory} (expected {args.app}.py)")
    if not wit.is_dir():
        sys.exit(f"error: no WIT directory at {wit}: `sigil plugin new` writes one; or pass --wit")

    command = [
        *_componentize_py(), "-d", str(wit), "-w", world, "componentize", args.app,
        "-p", str(directory), "-p", str(KIT_PATH), "-o", str(output),
    ]
    if args.verbose:
        print("+ " + " ".join(command), file=sys.stderr)
    started = time.monotonic()
    done = subprocess.run(command, cwd=directory, capture_output=not args.verbose, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        if not args.verbose:
            # componentize-py appends a Rust backtrace; the Python traceback above it is the news.
            text = (done.stderr or "") + (done.stdout or "")
            print(text.split("\nStack backtrace:")[0].rstrip(), file=sys.stderr)
        print(f"error: componentize-py failed (exit {done.returncode}) building {directory}", file=sys.stderr)
        return 1
    size = output.stat().st_size
    print(f"built {output} for world {world}: {size / 1e6:.1f} MB in {elapsed:.1f} s")
    return 0


def describe(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    manifest = _manifest(directory)
    args.app = _app_name(args, manifest)
    module, plugin = _load_plugin(directory, args.app)
    tools = [
        {
            "name": d.name,
            "description": d.description,
            "input_schema": d.input_schema,
            "output_schema": d.output_schema,
            "steps": {"validate_pre": d.steps.validate_pre, "validate_post": d.steps.validate_post, "rollback": d.steps.rollback},
        }
        for d in plugin.descriptors()
    ]
    print(json.dumps(tools, indent=2))
    if not _is_process(manifest) and getattr(module, "Tool", None) is None:
        print(f"warning: `{args.app}` has no `Tool = plugin.export()`; componentize-py needs it", file=sys.stderr)
    return 0


def _sandbox_paths(args: argparse.Namespace) -> int:
    from .process._sandbox import sandbox_paths

    try:
        print(json.dumps(sandbox_paths(), indent=2))
    except ImportError as e:
        print(f"error: {e}: run scripts/install-python-kit or pip install 'sigil-plugin[process]'", file=sys.stderr)
        return 1
    return 0


def _codegen_main(args: argparse.Namespace) -> int:
    from . import _codegen

    rest = [*(["--proto", args.proto] if args.proto else []), *(["--out", args.out] if args.out else [])]
    return _codegen.main([*rest, *(["--check"] if args.check else [])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sigil_plugin", description="Sigil Python plugin kit")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the plugin into a WebAssembly component")
    b.add_argument("dir", nargs="?", default=".", help="plugin directory (default: .)")
    b.add_argument("--app", default=None, help="app module (default: app; main for a process-tier plugin)")
    b.add_argument("--world", choices=["tool-plugin", "tool-plugin-http"], help="WIT world (default: from plugin.toml)")
    b.add_argument("--wit", help="WIT directory (default: DIR/wit)")
    b.add_argument("-o", "--output", help="component to write (default: the manifest's execution.entry)")
    b.add_argument("-v", "--verbose", action="store_true", help="show the command and componentize-py's output")
    b.set_defaults(run=build)
    d = sub.add_parser("describe", help="print the tools and their schemas as JSON")
    d.add_argument("dir", nargs="?", default=".", help="plugin directory (default: .)")
    d.add_argument("--app", default=None, help="app module (default: app; main for a process-tier plugin)")
    d.set_defaults(run=describe)
    c = sub.add_parser("codegen", help="regenerate the process tier's gRPC stubs from proto/ (or --check them)")
    c.add_argument("--proto", help="proto root (default: proto/ of the checkout holding this kit)")
    c.add_argument("--out", help="output directory (default: sigil_plugin/process/_proto)")
    c.add_argument("--check", action="store_true", help="compare instead of writing; fail on any difference")
    c.set_defaults(run=_codegen_main)
    sp = sub.add_parser(
        "sandbox-paths",
        help="print, as JSON, the interpreter, read-only binds and environment a process plugin needs in a sandbox",
    )
    sp.set_defaults(run=_sandbox_paths)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
