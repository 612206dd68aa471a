"""pipeline-process-python: writes files into one granted directory, through the whole
execution pipeline.

- validate-pre refuses a name that could leave the directory, a file that already exists (so
  a rollback can never delete something this plugin did not write) and content over the quota;
- invoke writes the file without ever replacing one (temporary file, then a hard link), then
  checks the directory's quota: past it, the call fails with the file already written;
- validate-post reads the file back as a consumer would: the digest must match, and a `.json`
  file must parse;
- rollback deletes the file, but only if it still holds exactly what this call wrote.

The host runs rollback whenever invoke or validate-post fails, and records every step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, TypedDict

from sigil_plugin import Call, Plugin, ToolError

plugin = Plugin()

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
DEFAULT_DIRECTORY = "/data/notes"  # the directory the manifest mounts and grants
DEFAULT_QUOTA = 1024 * 1024


class Written(TypedDict):
    path: str
    bytes: int
    sha256: str


def _settings() -> tuple[Path, int]:
    config = plugin.host.config()
    return Path(config.get("directory", DEFAULT_DIRECTORY)), int(config.get("quota_bytes", DEFAULT_QUOTA))


def _target(directory: Path, name: str) -> Path:
    """`directory/name`, refusing any name that is not one plain file name."""
    if not re.match(NAME, name) or name in (".", ".."):
        raise ToolError.invalid_input(f"file name `{name}` must match {NAME}")
    return directory / name


def _temporary(directory: Path, name: str, call: Call) -> Path:
    token = hashlib.sha256(call.call_id.encode()).hexdigest()[:16]
    return directory / f".{name}.{token}.tmp"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _used(directory: Path) -> int:
    return sum(entry.stat().st_size for entry in directory.iterdir() if entry.is_file() and not entry.is_symlink())


@plugin.tool
def write_file(
    name: Annotated[str, {"pattern": NAME}],
    content: str,
    call: Call,
) -> Written:
    """Write a new file into the plugin's directory; never replaces an existing file.

    Args:
        name: File name, without any directory.
        content: Text to write, as UTF-8.
    """
    directory, quota = _settings()
    target = _target(directory, name)
    data = content.encode("utf-8")
    temporary = _temporary(directory, name, call)
    with open(temporary, "xb") as f:  # x: never follows or reuses an existing file
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(temporary, target)  # fails if `target` exists: a write never clobbers
    except FileExistsError:
        raise ToolError.failed(f"`{name}` appeared while it was being written; left it alone") from None
    finally:
        temporary.unlink(missing_ok=True)
    plugin.host.log.info(f"invoke: wrote {target} ({len(data)} bytes)")
    used = _used(directory)
    if used > quota:
        raise ToolError.failed(f"{directory} now holds {used} bytes, over the quota of {quota}")
    return {"path": str(target), "bytes": len(data), "sha256": _digest(data)}


@plugin.validate_pre(write_file)
def refuse_unsafe_writes(name: str, content: str) -> None:
    directory, quota = _settings()
    target = _target(directory, name)
    if not directory.is_dir():
        raise ToolError.failed(f"the directory {directory} does not exist or is not mounted")
    if os.path.lexists(target):
        raise ToolError.invalid_input(f"`{name}` already exists in {directory}; this tool never replaces files")
    size = len(content.encode("utf-8"))
    if size > quota:
        raise ToolError.invalid_input(f"the content is {size} bytes, over the quota of {quota}")
    plugin.host.log.info(f"validate_pre: {name} may be written")


@plugin.validate_post(write_file)
def read_back(name: str, output: Written) -> None:
    path = Path(output["path"])
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ToolError.failed(f"{path} cannot be read back: {e.strerror}") from None
    if len(data) != output["bytes"] or _digest(data) != output["sha256"]:
        raise ToolError.failed(f"{path} does not hold what was written")
    if name.endswith(".json"):
        try:
            json.loads(data)
        except ValueError as e:
            raise ToolError.failed(f"{path} is not valid JSON: {e}") from None
    plugin.host.log.info(f"validate_post: {path} reads back intact")


@plugin.rollback(write_file)
def delete_what_was_written(name: str, content: str, output: Written | None, call: Call) -> None:
    directory, _ = _settings()
    target = _target(directory, name)
    _temporary(directory, name, call).unlink(missing_ok=True)
    expected = output["sha256"] if output is not None else _digest(content.encode("utf-8"))
    try:
        current = target.read_bytes() if not target.is_symlink() else None
    except FileNotFoundError:
        plugin.host.log.info(f"rollback: {target} was never written; nothing to undo")
        return
    if current is None or _digest(current) != expected:
        raise ToolError.failed(f"rollback: {target} is not what this call wrote; left it in place")
    target.unlink()
    plugin.host.log.info(f"rollback: deleted {target}")


if __name__ == "__main__":
    plugin.serve()
