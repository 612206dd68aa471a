"""{{name}}: a Sigil tool plugin run as a sandboxed process.

Each `@plugin.tool` function is a tool: its type hints become the JSON Schema of its input,
its return annotation the schema of its output, and its docstring the description the model
reads. Sigil starts `python3 main.py` with `SIGIL_PLUGIN_SOCKET` set, and `plugin.serve()`
answers its gRPC calls on that socket until Sigil shuts the plugin down. Test with `pytest`.
"""

from typing import TypedDict

from sigil_plugin import Plugin, ToolError

plugin = Plugin()


class Greeting(TypedDict):
    greeting: str


@plugin.tool
def greet(name: str, excited: bool = False) -> Greeting:
    """Greet someone by name.

    Args:
        name: Who to greet.
        excited: End the greeting with an exclamation mark.
    """
    if not name.strip():
        raise ToolError.invalid_input("`name` is blank")
    plugin.host.log.info(f"greeting {name}")
    return {"greeting": f"hello, {name}{'!' if excited else ''}"}


if __name__ == "__main__":
    plugin.serve()
