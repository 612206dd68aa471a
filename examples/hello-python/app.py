"""hello-python: greets people and counts the greetings in the host's key-value store.

`greet` uses every part of the execution pipeline: validate-pre refuses a blank name, the
tool counts the greeting, validate-post refuses a greeting longer than the configured
`max_length`, and rollback takes the count back when that happens.
"""

from typing import TypedDict

from sigil_plugin import Plugin, ToolError

plugin = Plugin()

COUNTS = "greetings"  # the one key this plugin asks for: kv.read:greetings, kv.write:greetings


class Greeting(TypedDict):
    greeting: str
    times: int


@plugin.tool
def greet(name: str, excited: bool = False) -> Greeting:
    """Greet someone by name, and say how often they were greeted.

    Args:
        name: Who to greet.
        excited: End the greeting with an exclamation mark.
    """
    counts = plugin.host.kv.get_json(COUNTS, {})
    counts[name] = counts.get(name, 0) + 1
    plugin.host.kv.set_json(COUNTS, counts)
    plugin.host.log.info(f"greeting {name} (time {counts[name]})")
    return {"greeting": f"hello, {name}{'!' if excited else ''}", "times": counts[name]}


@plugin.validate_pre(greet)
def refuse_blank_names(name: str) -> None:
    if not name.strip():
        raise ToolError.invalid_input("`name` is blank")


@plugin.validate_post(greet)
def refuse_long_greetings(output: Greeting) -> None:
    limit = plugin.host.config().get("max_length", 80)
    if len(output["greeting"]) > limit:
        raise ToolError.failed(f"the greeting is longer than max_length ({limit})")


@plugin.rollback(greet)
def uncount(name: str, output: Greeting | None) -> None:
    if output is None:
        return  # the tool failed before it counted
    counts = plugin.host.kv.get_json(COUNTS, {})
    counts[name] = counts.get(name, 1) - 1
    if counts[name] <= 0:
        del counts[name]
    plugin.host.kv.set_json(COUNTS, counts)


# componentize-py looks in this module for a class named after the exported interface.
Tool = plugin.export()
