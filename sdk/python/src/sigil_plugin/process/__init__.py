"""Run a Sigil tool plugin as a process: gRPC over the Unix socket the host names.

The same `Plugin` as for the wasm tier; only the last lines of the module differ::

    # main.py
    from sigil_plugin import Plugin

    plugin = Plugin()

    @plugin.tool
    def greet(name: str) -> dict:
        \"\"\"Greet someone.\"\"\"
        plugin.host.log.info(f"greeting {name}")
        return {"greeting": f"hello, {name}"}

    if __name__ == "__main__":
        plugin.serve()          # the same as sigil_plugin.process.serve(plugin)

The host starts `python3 main.py` with `SIGIL_PLUGIN_SOCKET` naming the socket to serve
`Lifecycle` and `Tool` on, calls `Init` (which names the host's own `Host` socket), then
`Describe`, `Invoke` and the pipeline steps. Nothing is ever read from the plugin's stdout:
stdout and stderr are logs. Host calls made through `plugin.host` while a call runs carry
that call's id, so the host decides them with that call's authority.

Needs `grpcio` and `protobuf` (`pip install 'sigil-plugin[process]'`); the wasm kit does not.
Test tools natively with `sigil_plugin.testing.Harness`, and the whole process over real gRPC
with `sigil_plugin.process.testing.PluginProcess`.
"""

from __future__ import annotations

try:
    import google.protobuf  # noqa: F401
    import grpc  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"sigil_plugin.process needs grpcio and protobuf ({e}): "
        "pip install 'sigil-plugin[process]', or run scripts/install-python-kit"
    ) from e

from ._server import PROTOCOL_VERSION, PluginServer, serve

__all__ = ["PROTOCOL_VERSION", "PluginServer", "serve"]
