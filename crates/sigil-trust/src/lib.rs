//! Plugin signatures: how a plugin directory earns the `verified` trust level.
//!
//! A signed plugin directory holds two files beside its own:
//!
//! - `SIGIL-DIGESTS`, the digest list: one line per regular file, `<sha256 hex>  <path>`,
//!   sorted by path, in the format `sha256sum` writes and `sha256sum -c` checks;
//! - `SIGIL-DIGESTS.minisig`, an Ed25519 signature over the digest list in minisign's format,
//!   so `minisign -Vm SIGIL-DIGESTS -p key.pub` verifies it too.
//!
//! [`verify_dir`] answers how a directory arrived: unsigned, signed by a key the operator does
//! not trust, or signed by a trusted key with every file matching its digest. A signature
//! that does not verify, or files that changed after signing, are errors, never a lower trust
//! level: a broken signature is an attack, not an absence.
//!
//! ```
//! use sigil_trust::{KeyPair, Signature, TrustedKeys, sign_dir, verify_dir};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plugin = tempfile::tempdir()?;
//! std::fs::write(plugin.path().join("plugin.toml"), "id = \"demo\"\n")?;
//!
//! let pair = KeyPair::generate_unencrypted()?;
//! sign_dir(plugin.path(), &pair)?; // writes SIGIL-DIGESTS and SIGIL-DIGESTS.minisig
//!
//! let mut keys = TrustedKeys::default();
//! keys.insert("release", pair.public().clone())?;
//! let signature = verify_dir(plugin.path(), &keys)?;
//! assert!(matches!(signature, Signature::Verified { key, .. } if key == "release"));
//!
//! // A file added after signing is an error, not a lower trust level.
//! std::fs::write(plugin.path().join("extra.sh"), "#!/bin/sh\n")?;
//! assert!(verify_dir(plugin.path(), &keys).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! A plugin directory is read by handle, never through a link, the same way whether it is
//! hashed, checked or copied ([`copy_plugin_dir`]): its author may change it while it is read.
//!
//! This crate knows nothing of manifests, tiers or the runtime: it reads files and checks
//! signatures. The cryptography and the minisign formats are the `minisign` crate's.

#![forbid(unsafe_code)]

mod digest;
mod error;
mod key;
mod sign;
mod tree;
mod trust;

pub use digest::{DIGESTS_FILE, DigestList, SIGNATURE_FILE, SKIPPED_NAMES, is_skipped};
pub use error::TrustError;
pub use key::{KeyId, KeyPair, PublicKey, TrustedKeys, valid_key_name};
pub use sign::{Signature, Signed, sign_dir, verify_dir};
pub use tree::{Copied, copy_plugin_dir};
pub use trust::Trust;
