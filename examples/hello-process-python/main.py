"""hello-process-python: greets people and counts the greetings in the host's key-value store.

The same `Plugin` as a wasm-tier plugin; it runs as a sandboxed process instead. The host
starts `python3 main.py` with `SIGIL_PLUGIN_SOCKET` set, and `plugin.serve()` answers its
gRPC calls on that socket until the host shuts the plugin down.
"""

from typing import TypedDict

from sigil_plugin import Call, Plugin, ToolError

plugin = Plugin()

COUNTS = "greetings"  # the one key this plugin asks for: kv.read:greetings, kv.write:greetings


class Greeting(TypedDict):
    greeting: str
    times: int


@plugin.tool
def greet(name: str, call: Call, excited: bool = False) -> Greeting:
    """Greet someone by name, and say how often they were greeted.

    Args:
        name: Who to greet.
        excited: End the greeting with an exclamation mark.
    """
    if not name.strip():
        raise ToolError.invalid_input("`name` is blank")
    salutation = plugin.host.config().get("salutation", "hello")
    counts = plugin.host.kv.get_json(COUNTS, {})
    counts[name] = counts.get(name, 0) + 1
    plugin.host.kv.set_json(COUNTS, counts)
    who = f" for {call.user}" if call.user else ""
    plugin.host.log.info(f"greeting {name}{who} (time {counts[name]})")
    return {"greeting": f"{salutation}, {name}{'!' if excited else ''}", "times": counts[name]}


@plugin.tool
def forget(name: str) -> bool:
    """Forget how often someone was greeted; says whether there was anything to forget.

    Args:
        name: Whose count to remove.
    """
    counts = plugin.host.kv.get_json(COUNTS, {})
    known = counts.pop(name, None) is not None
    plugin.host.kv.set_json(COUNTS, counts)
    return known


if __name__ == "__main__":
    plugin.serve()
