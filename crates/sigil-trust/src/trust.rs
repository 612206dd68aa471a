//! The trust level of a loaded plugin.

use std::fmt;

use serde::Serialize;

/// How far a plugin is trusted, from how it arrived. Never read from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "level", rename_all = "lowercase")]
pub enum Trust {
    /// Compiled into the binary: the operator chose it by building it in.
    Trusted,
    /// A directory whose digest list is signed by a key in the operator's trust store, every
    /// file matching its digest.
    Verified {
        /// The trusted key's name in the trust store.
        key: String,
        /// The key's minisign id (16 hex digits).
        key_id: String,
    },
    /// Neither: unsigned, or signed by a key the operator does not trust.
    Sandboxed,
}

impl Trust {
    /// `trusted`, `verified` or `sandboxed`.
    pub fn level(&self) -> &'static str {
        match self {
            Trust::Trusted => "trusted",
            Trust::Verified { .. } => "verified",
            Trust::Sandboxed => "sandboxed",
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Verified { key, key_id } => write!(f, "verified by key `{key}` ({key_id})"),
            other => f.write_str(other.level()),
        }
    }
}
