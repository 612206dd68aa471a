"""Write Sigil tool plugins in Python, built into WebAssembly components with componentize-py.

::

    from sigil_plugin import Plugin, ToolError

    plugin = Plugin()

    @plugin.tool(description="Greet someone.")
    def greet(name: str, excited: bool = False) -> dict:
        return {"greeting": f"hello, {name}{'!' if excited else ''}"}

    Tool = plugin.export()   # the class componentize-py looks for

Test tools natively with `sigil_plugin.testing.Harness`; build the component with
`componentize-py -d wit -w tool-plugin componentize app -o plugin.wasm`.
"""

from ._errors import HostError, SchemaError, ToolError
from ._host import Host, HttpResponse
from ._plugin import Call, Descriptor, Plugin, Steps, Verdict
from ._schema import schema_of

__all__ = [
    "Call",
    "Descriptor",
    "Host",
    "HostError",
    "HttpResponse",
    "Plugin",
    "SchemaError",
    "Steps",
    "ToolError",
    "Verdict",
    "schema_of",
]

__version__ = "0.1.0"
