"""Errors a tool reports to the host.

They mirror the WIT variant `sigil:plugin/types.tool-error`: `denied`, `invalid-input` and
`failed`. Anything else a tool raises becomes `failed`.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["denied", "invalid_input", "failed"]

KINDS: tuple[Kind, ...] = ("denied", "invalid_input", "failed")


class ToolError(Exception):
    """A tool's failure, as the host will see it.

    Raise one of the constructors from a tool or a pipeline step::

        raise ToolError.invalid_input("`count` must be even")
        raise ToolError.failed("the upstream service answered 503")

    `ToolError("message")` on its own is a `failed` error.
    """

    kind: Kind
    message: str

    def __init__(self, message: str, kind: Kind = "failed") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown tool error kind `{kind}`: expected one of {', '.join(KINDS)}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def invalid_input(cls, message: str) -> ToolError:
        """The input made sense to the schema but not to the tool."""
        return cls(message, "invalid_input")

    @classmethod
    def failed(cls, message: str) -> ToolError:
        """The tool failed."""
        return cls(message, "failed")

    @classmethod
    def denied(cls, message: str) -> ToolError:
        """A host call the tool needed was denied."""
        return cls(message, "denied")

    def __repr__(self) -> str:
        return f"ToolError.{self.kind}({self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ToolError):
            return NotImplemented
        return (self.kind, self.message) == (other.kind, other.message)

    def __hash__(self) -> int:
        return hash((self.kind, self.message))


class HostError(ToolError):
    """A host call failed: the host refused it (no grant) or could not serve it.

    It is a `ToolError` of kind `denied`, so a tool that does not catch it fails with `denied`
    and the host's reason.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, "denied")


class SchemaError(TypeError):
    """A tool's signature cannot be described as a JSON Schema. Raised when the tool is defined."""
