//! How Sigil's tool names map onto MCP tool names, and back.
//!
//! Sigil names a tool `PLUGIN/TOOL` (`text/sha256`). MCP tool names may hold only
//! `[A-Za-z0-9_.-]`, and many model APIs accept only `[A-Za-z0-9_-]`, so the MCP name is
//! `PLUGIN__TOOL` (`text__sha256`): the plugin id, two underscores, the tool name.
//!
//! The mapping is reversible because a plugin id (`[a-z0-9][a-z0-9-]*`) never contains `_`:
//! the first `__` in an MCP name always ends the plugin id, whatever the tool name holds
//! (tool names are `[a-z0-9_-]+` and may contain `__` themselves).

/// What separates the plugin id from the tool name in an MCP tool name.
pub const SEPARATOR: &str = "__";

/// The MCP name of `plugin`'s tool `tool`: `text`, `sha256` → `text__sha256`.
pub fn mcp_tool_name(plugin: &str, tool: &str) -> String {
    format!("{plugin}{SEPARATOR}{tool}")
}

/// The plugin id and tool name an MCP tool name stands for, or `None` when `name` is not of
/// the form [`mcp_tool_name`] produces (no separator, an empty part, or a plugin part that is
/// not a plugin id).
pub fn parse_mcp_tool_name(name: &str) -> Option<(&str, &str)> {
    let (plugin, tool) = name.split_once(SEPARATOR)?;
    let plugin_ok = plugin
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && plugin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let tool_ok = !tool.is_empty()
        && tool
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    (plugin_ok && tool_ok).then_some((plugin, tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (plugin, tool, name) in [
            ("text", "sha256", "text__sha256"),
            ("fs", "read_text", "fs__read_text"),
            ("my-plugin", "a__b", "my-plugin__a__b"),
            ("p0", "_x", "p0___x"),
            ("x", "-", "x__-"),
        ] {
            assert_eq!(mcp_tool_name(plugin, tool), name);
            assert_eq!(parse_mcp_tool_name(name), Some((plugin, tool)), "{name}");
        }
    }

    #[test]
    fn names_that_no_tool_has_are_rejected() {
        for name in [
            "",
            "text",
            "text/sha256",
            "text_sha256",
            "__sha256",
            "text__",
            "-text__sha256",
            "Text__sha256",
            "text__Sha256",
            "text__sha.256",
            "te.xt__sha256",
            "te/xt__sha256",
        ] {
            assert_eq!(parse_mcp_tool_name(name), None, "{name}");
        }
    }
}
