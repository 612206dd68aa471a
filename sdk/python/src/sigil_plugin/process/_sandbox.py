"""What a sandbox must show a Python process plugin so that `python3 main.py` runs, as this
interpreter sees it: `python -m sigil_plugin sandbox-paths` prints it as JSON for a host.

Everything is bound read-only at the path it has outside, because interpreters are often
not relocatable (pyenv's `python3` finds `libpython` through an absolute RUNPATH).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

#: Modules a process plugin imports: the kit and what it runs on.
REQUIRED_MODULES = ("grpc", "google.protobuf", "sigil_plugin")


def _module_root(name: str) -> Path:
    """The directory on `sys.path` that `name` is imported from."""
    module = importlib.import_module(name)
    path = Path(module.__file__ or "").resolve().parent
    for _ in name.split("."):
        path = path.parent
    return path


def _collapse(paths: list[Path]) -> list[Path]:
    """Drop every path inside another one; keep the order of first appearance."""
    kept: list[Path] = []
    for p in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(p == k or k in p.parents for k in kept):
            kept.append(p)
    return sorted(kept, key=paths.index)


def sandbox_paths() -> dict[str, Any]:
    """The interpreter to execute, the directories to bind read-only (same path inside), and
    the environment a process plugin needs beyond what the host always sets.

    Raises `ImportError` naming the module when one of `REQUIRED_MODULES` is missing.
    """
    roots = {name: _module_root(name) for name in REQUIRED_MODULES}
    binds = _collapse(
        [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent, *roots.values()]
    )
    return {
        "executable": str(Path(sys.executable).resolve()),
        "version": ".".join(map(str, sys.version_info[:3])),
        "ro_binds": [str(p) for p in binds],
        # The kit's directory, so it imports even when it was installed some way a .pth file
        # records (an editable install) and the host passes Python no such file.
        "env": {"PYTHONPATH": str(roots["sigil_plugin"])},
        "modules": {name: str(path) for name, path in roots.items()},
    }
