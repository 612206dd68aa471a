"""A plugin exercising the whole kit inside a component (see test_component.py)."""

from dataclasses import dataclass
from typing import Literal

from sigil_plugin import Call, Plugin, ToolError

plugin = Plugin()


@dataclass
class Item:
    name: str
    qty: int = 1


@plugin.tool
def order(call: Call, items: list[Item], mode: Literal["fast", "slow"] = "fast") -> dict:
    """Place an order and remember it.

    Args:
        items: What to order.
        mode: How to ship it.
    """
    total = sum(item.qty for item in items)
    plugin.host.kv.set_json("last", {"total": total, "user": call.user})
    plugin.host.log.info(f"ordered {total}")
    if mode == "slow":
        raise ToolError.failed("slow shipping is out of stock")
    return {
        "total": total,
        "names": [item.name for item in items],
        "config": plugin.host.config(),
        "token": plugin.host.secret_reference("token"),
    }


@plugin.validate_pre(order)
def order_pre(items: list[Item]) -> None:
    if not items:
        raise ToolError.invalid_input("nothing to order")


@plugin.validate_post(order)
def order_post(output: dict) -> None:
    if output["total"] > 100:
        raise ToolError.failed("order too large to confirm")


@plugin.rollback(order)
def order_undo(output: dict | None) -> None:
    plugin.host.kv.delete("last")
    plugin.host.log.warn(f"rolled back (output: {output})")


@plugin.tool
def crash() -> None:
    """Always fails with a Python exception."""
    raise ValueError("boom")


@plugin.tool
def secret(name: str) -> str:
    """Return the reference to a secret."""
    return plugin.host.secret_reference(name)


@plugin.tool
def fetch(url: str) -> dict:
    """Fetch a URL over wasi:http."""
    response = plugin.host.http_get(url, {"x-test": "sigil"})
    return {"status": response.status, "body": response.text(), "type": response.header("content-type")}


Tool = plugin.export()
