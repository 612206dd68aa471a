//! What a tool can ask of its host, and who is calling.
//!
//! [`Host`] is the seam: inside a component it is the WIT imports (`log`, `kv`, `config`,
//! `secrets`); under [`crate::testing::Harness`] an in-memory host. Tools never see it directly:
//! they use [`crate::Ctx`].

use std::fmt;

/// A log line's level (the WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Who is calling, for the plugin's own records (the WIT `call-info`).
///
/// # Security
/// Authority is the host's business: nothing here widens what the plugin may do, and a
/// plugin should not make access decisions of its own from these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The host's id for this call, the same in its audit records.
    pub call_id: String,
    /// The tool called.
    pub tool: String,
    /// The user the call is made for, if the host knows one.
    pub user: Option<String>,
    /// The workspace the call is made in, if any.
    pub workspace: Option<String>,
}

impl CallInfo {
    /// A call of `tool` with the id `call_id`, for no particular user or workspace.
    pub fn new(call_id: impl Into<String>, tool: impl Into<String>) -> CallInfo {
        CallInfo {
            call_id: call_id.into(),
            tool: tool.into(),
            user: None,
            workspace: None,
        }
    }
}

/// The host calls a tool can make. Each returns the host's reason as text when it refuses.
///
/// Implemented by the component's imports and by the test harness's in-memory host; implement
/// it to run a [`crate::Plugin`] against a host of your own.
///
/// # Security
/// A host checks every call against the plugin's grants (`kv.read:<key>`, `kv.write:<key>`,
/// `secret.use:<name>`); a denial starts with `denied`. Secrets are only ever handed out as
/// placeholders, never as values.
pub trait Host {
    /// Writes a log line, tagged by the host with the plugin and the call.
    fn log(&mut self, level: Level, message: &str);

    /// Reads `key` from the plugin's own key-value namespace.
    ///
    /// # Errors
    /// Denied, or the store failed.
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Writes `key` in the plugin's own key-value namespace.
    ///
    /// # Errors
    /// Denied, a value over the host's size limit, or the store failed.
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;

    /// Deletes `key` from the plugin's own key-value namespace.
    ///
    /// # Errors
    /// Denied, or the store failed.
    fn kv_delete(&mut self, key: &str) -> Result<(), String>;

    /// The operator's configuration for this plugin, as JSON text (`{}` when there is none).
    fn config(&mut self) -> String;

    /// A placeholder for secret `name`, which the host swaps for the value when the plugin
    /// sends it in an HTTP header to a destination it was granted.
    ///
    /// # Errors
    /// The secret is not granted or does not exist.
    fn secret_reference(&mut self, name: &str) -> Result<String, String>;
}
