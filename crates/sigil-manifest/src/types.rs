//! Small value types shared by the raw schema and the validated manifest.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest plugin id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// A plugin identifier: kebab-case (`[a-z0-9][a-z0-9-]*`), at most 64 characters.
///
/// A `PluginId` is not a `String`: holding one means the text was checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PluginId(String);

/// Why a text is not a valid [`PluginId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPluginId {
    /// The text is empty.
    #[error("plugin id is empty")]
    Empty,
    /// The text is longer than [`MAX_ID_LEN`].
    #[error("plugin id `{0}` is longer than 64 characters")]
    TooLong(String),
    /// The text is not kebab-case.
    #[error(
        "plugin id `{0}` must be kebab-case: lowercase letters, digits and `-`, starting with a letter or digit"
    )]
    NotKebabCase(String),
}

impl PluginId {
    /// Checks `text` and wraps it.
    ///
    /// # Errors
    /// [`InvalidPluginId`] when `text` is empty, longer than 64 characters or not kebab-case.
    pub fn new(text: &str) -> Result<PluginId, InvalidPluginId> {
        if text.is_empty() {
            return Err(InvalidPluginId::Empty);
        }
        if text.len() > MAX_ID_LEN {
            return Err(InvalidPluginId::TooLong(text.to_owned()));
        }
        let mut chars = text.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(first_ok && rest_ok) {
            return Err(InvalidPluginId::NotKebabCase(text.to_owned()));
        }
        Ok(PluginId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PluginId {
    type Err = InvalidPluginId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginId::new(s)
    }
}

impl AsRef<str> for PluginId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Declares a closed, lowercase-named enum with `as_str`, `Display`, serde and schema support.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $(
                #[allow(missing_docs)]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in manifests.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// A kind of plugin, that is a contract the plugin implements:
    /// `tool`, `channel`, `provider`, `skill`, `hook` or `command`.
    pub enum Kind {
        Tool => "tool",
        Channel => "channel",
        Provider => "provider",
        Skill => "skill",
        Hook => "hook",
        Command => "command",
    }
}

named_enum! {
    /// The isolation a plugin runs in: `builtin` (compiled into the binary), `wasm`
    /// (a WebAssembly component), `process` (a sandboxed executable) or `container` (an OCI bundle).
    pub enum Tier {
        Builtin => "builtin",
        Wasm => "wasm",
        Process => "process",
        Container => "container",
    }
}

named_enum! {
    /// What a process-tier plugin speaks: `grpc` (Sigil's own protocol, `proto/sigil/plugin/v1`,
    /// on a socket) or `mcp` (an existing MCP server speaking JSON-RPC on its stdin and stdout,
    /// bridged by Sigil).
    pub enum Protocol {
        Grpc => "grpc",
        Mcp => "mcp",
    }
}

named_enum! {
    /// How far the effects of an action reach: `vm` (only the plugin's own sandbox),
    /// `container`, `host` or `network`.
    pub enum Scope {
        Vm => "vm",
        Container => "container",
        Host => "host",
        Network => "network",
    }
}

named_enum! {
    /// Access to a sandbox filesystem path: `read` (read-only) or `write` (read and write).
    pub enum Access {
        Read => "read",
        Write => "write",
    }
}

named_enum! {
    /// A lifecycle event a hook plugin may subscribe to.
    pub enum HookEvent {
        BeforeAgentRun => "before_agent_run",
        AfterAgentRun => "after_agent_run",
        BeforeMessageSend => "before_message_send",
        AfterMessageSend => "after_message_send",
        BeforeMessageReceive => "before_message_receive",
        AfterMessageReceive => "after_message_receive",
        BeforeToolExecute => "before_tool_execute",
        AfterToolExecute => "after_tool_execute",
        SessionCreate => "session_create",
        SessionEnd => "session_end",
        GatewayStart => "gateway_start",
        GatewayShutdown => "gateway_shutdown",
        ClientConnect => "client_connect",
        ClientDisconnect => "client_disconnect",
    }
}

impl HookEvent {
    /// Whether hooks on this event run before the action and may veto or patch it;
    /// the others only observe.
    pub fn is_before(self) -> bool {
        self.as_str().starts_with("before_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_ids() {
        let cases: &[(&str, bool)] = &[
            ("weather", true),
            ("github-tools", true),
            ("0day", true),
            ("a", true),
            ("", false),
            ("-lead", false),
            ("Upper", false),
            ("snake_case", false),
            ("dots.no", false),
            ("ünï", false),
        ];
        for (text, ok) in cases {
            assert_eq!(PluginId::new(text).is_ok(), *ok, "{text}");
        }
        assert!(PluginId::new(&"a".repeat(64)).is_ok());
        assert_eq!(
            PluginId::new(&"a".repeat(65)),
            Err(InvalidPluginId::TooLong("a".repeat(65)))
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(Tier::Container.to_string(), "container");
        assert_eq!(HookEvent::ClientDisconnect.as_str(), "client_disconnect");
        assert!(HookEvent::BeforeToolExecute.is_before());
        assert!(!HookEvent::SessionEnd.is_before());
    }
}
