//! Sigil's policy core: the capability grammar, compiled capability sets, and the authority
//! decision.
//!
//! This crate does no I/O and cannot fail for environmental reasons. It knows nothing of
//! plugins' tiers, storage, or the network; the enforcer in `sigil-runtime` feeds it the
//! layers of policy and records each decision it returns.
//!
//! ```
//! use sigil_policy::{Capability, CapabilitySet, Pattern};
//!
//! let grants = CapabilitySet::parse(["fs.*", "net.connect:*.example.com:443"]).unwrap();
//! let denies = CapabilitySet::parse(["fs.write:/etc/**"]).unwrap();
//!
//! let read = Capability::parse("fs.read:/data/report.txt").unwrap();
//! assert!(grants.contains(&read) && !denies.contains(&read));
//!
//! // Paths are normalised before matching: `..` cannot escape a scope.
//! let sneaky = Capability::parse("fs.write:/tmp/../etc/passwd").unwrap();
//! assert_eq!(sneaky.as_str(), "fs.write:/etc/passwd");
//! assert!(denies.contains(&sneaky));
//!
//! // Ports are exact.
//! let other_port = Capability::parse("net.connect:api.example.com:8443").unwrap();
//! assert!(!grants.contains(&other_port));
//!
//! // Legacy forms map onto the grammar.
//! assert_eq!(Pattern::parse("docker:restart").unwrap().as_str(), "docker.restart");
//! assert_eq!(Pattern::parse("filesystem.read./data/*").unwrap().as_str(), "fs.read:/data/*");
//! ```

#![forbid(unsafe_code)]

mod authority;
mod capability;
mod set;

pub use authority::{
    AllowRule, Decision, DenyRule, Layers, Level, PluginAuthority, Reach, Scope, decide,
    decide_destination,
};
pub use capability::{Capability, Pattern, ResourceKind};
pub use set::CapabilitySet;

/// A capability or pattern that breaks the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capability `{text}`: {reason}")]
pub struct CapabilityError {
    text: String,
    reason: String,
}

impl CapabilityError {
    pub(crate) fn new(text: &str, reason: impl Into<String>) -> CapabilityError {
        CapabilityError {
            text: text.to_string(),
            reason: reason.into(),
        }
    }

    /// The text that failed to parse.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Why it failed, without the text.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
