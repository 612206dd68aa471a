//! The two ways a tool fails: its own [`ToolError`], and a [`HostError`] from a host call.

use std::fmt;

/// A tool's failure, as the host receives it: the WIT `tool-error` variant.
///
/// Return it from a tool or a pipeline step; `?` turns a [`HostError`] into one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// A host call the tool needed was denied.
    #[error("denied: {0}")]
    Denied(String),
    /// The input made sense to the schema but not to the tool.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool failed.
    #[error("failed: {0}")]
    Failed(String),
}

impl ToolError {
    /// A host call the tool needed was denied.
    pub fn denied(message: impl fmt::Display) -> ToolError {
        ToolError::Denied(message.to_string())
    }

    /// The input made sense to the schema but not to the tool: say what is wrong with it.
    pub fn invalid_input(message: impl fmt::Display) -> ToolError {
        ToolError::InvalidInput(message.to_string())
    }

    /// The tool failed.
    pub fn failed(message: impl fmt::Display) -> ToolError {
        ToolError::Failed(message.to_string())
    }

    /// The WIT case name: `denied`, `invalid-input` or `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::Denied(_) => "denied",
            ToolError::InvalidInput(_) => "invalid-input",
            ToolError::Failed(_) => "failed",
        }
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            ToolError::Denied(m) | ToolError::InvalidInput(m) | ToolError::Failed(m) => m,
        }
    }

    /// The same error with `note` appended to its message.
    pub(crate) fn with_note(self, note: &str) -> ToolError {
        match self {
            ToolError::Denied(m) => ToolError::Denied(format!("{m}; {note}")),
            ToolError::InvalidInput(m) => ToolError::InvalidInput(format!("{m}; {note}")),
            ToolError::Failed(m) => ToolError::Failed(format!("{m}; {note}")),
        }
    }
}

/// A host call that the host refused or could not serve.
///
/// Every host call is checked against the plugin's grants, so any may fail. Converted into a
/// [`ToolError`] by `?`: [`ToolError::Denied`] when the host denied the call, else
/// [`ToolError::Failed`] (a storage failure, a value over a size limit, an unknown secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {message}")]
pub struct HostError {
    call: String,
    message: String,
}

impl HostError {
    pub(crate) fn new(call: String, message: String) -> HostError {
        HostError { call, message }
    }

    /// The call that failed, for example ``kv.get `visits` ``.
    pub fn call(&self) -> &str {
        &self.call
    }

    /// The host's reason.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the host's enforcer denied the call, as opposed to failing to serve it.
    pub fn is_denied(&self) -> bool {
        self.message.starts_with("denied")
    }
}

impl From<HostError> for ToolError {
    fn from(error: HostError) -> ToolError {
        if error.is_denied() {
            ToolError::Denied(error.to_string())
        } else {
            ToolError::Failed(error.to_string())
        }
    }
}
