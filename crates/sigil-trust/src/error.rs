//! The crate's error type.

use std::path::{Path, PathBuf};

/// Why a plugin directory could not be signed or verified, or a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Something in the plugin directory cannot be covered by a digest list: a symbolic link,
    /// a special file, or a name that is not UTF-8 or holds a newline or backslash.
    #[error("{}: {reason}", path.display())]
    Unsignable {
        /// The offending entry.
        path: PathBuf,
        /// Why it cannot be signed.
        reason: String,
    },
    /// An entry no plugin directory may hold, met while reading or copying one: a symbolic
    /// link or a special file (nothing is read through it), or a directory over the size limit
    /// or a copy that does not hold what was read.
    #[error("{} {reason}", path.display())]
    Refused {
        /// The offending entry.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// `SIGIL-DIGESTS` is not a digest list.
    #[error("{}:{line}: {message}", path.display())]
    BadDigestList {
        /// The digest list.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// `SIGIL-DIGESTS.minisig` is not a minisign signature.
    #[error("{}: not a minisign signature: {message}", path.display())]
    BadSignature {
        /// The signature file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The signature names a trusted key but does not verify with it: the digest list or the
    /// signature was changed after signing.
    #[error(
        "{}: the signature does not verify with trusted key `{key}` (id {id}): {message}; \
         the digest list or its signature was changed after signing",
        path.display()
    )]
    Forged {
        /// The signature file.
        path: PathBuf,
        /// The trusted key's name.
        key: String,
        /// The key id the signature names.
        id: String,
        /// What the verification said.
        message: String,
    },
    /// The files on disk do not match the signed digest list.
    #[error("{}: files do not match the signed digest list: {}", dir.display(), problems.join("; "))]
    Tampered {
        /// The plugin directory.
        dir: PathBuf,
        /// One entry per file: what differs.
        problems: Vec<String>,
    },
    /// A public key that does not parse, or a key name that is not allowed.
    #[error("{what}: {message}")]
    BadKey {
        /// Where the key came from.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A secret key that cannot be read or used.
    #[error("{}: {message}", path.display())]
    SecretKey {
        /// The secret key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl TrustError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: &dyn std::fmt::Display) -> TrustError {
        TrustError::Io {
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }
}
