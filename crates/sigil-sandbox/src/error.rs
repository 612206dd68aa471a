//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong finding, configuring or starting a sandbox.
///
/// Messages are lower case, name the offending value and where it came from, and, for a
/// missing tool, say exactly what to install.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// `bwrap` is not on `PATH`.
    #[error(
        "bubblewrap (`bwrap`) was not found on PATH ({path}); install the Debian package with \
         `apt-get install -y bubblewrap` or run scripts/install-sandbox-tools"
    )]
    BwrapNotFound {
        /// The `PATH` that was searched.
        path: String,
    },

    /// The `sigil-sandbox-init` entrypoint could not be found.
    #[error(
        "the sandbox entrypoint `sigil-sandbox-init` was not found (looked at {tried}); build it \
         with `cargo build -p sigil-sandbox --bin sigil-sandbox-init` and put it next to this \
         executable, or set SIGIL_SANDBOX_INIT to its path"
    )]
    InitNotFound {
        /// The places that were looked at, comma separated.
        tried: String,
    },

    /// bubblewrap is installed but cannot build a sandbox here (usually: user namespaces are
    /// disabled).
    #[error(
        "bubblewrap at {bwrap} cannot start a sandbox on this machine: {reason}; unprivileged user \
         namespaces must be enabled (sysctl kernel.unprivileged_userns_clone=1 and \
         user.max_user_namespaces > 0) and the kernel must allow bubblewrap to create them"
    )]
    Unavailable {
        /// The `bwrap` that was tried.
        bwrap: PathBuf,
        /// What went wrong, with bubblewrap's own message.
        reason: String,
    },

    /// A path failed [`validate_path`](crate::validate_path).
    #[error("path {path:?} rejected: {reason}")]
    InvalidPath {
        /// The path as given (lossily decoded).
        path: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A field of a [`Spec`](crate::Spec) is unusable.
    #[error("sandbox spec {field}: {reason}")]
    InvalidSpec {
        /// The field, e.g. `read_only[2]` or `env[0]`.
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// Starting the sandbox process failed.
    #[error("starting the sandbox with {bwrap} failed: {source}")]
    Spawn {
        /// The executable that could not be started.
        bwrap: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
