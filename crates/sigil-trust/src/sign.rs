//! Signing a plugin directory and verifying one.

use std::io::Cursor;
use std::path::Path;

use crate::TrustError;
use crate::digest::{DIGESTS_FILE, DigestList, SIGNATURE_FILE};
use crate::key::{KeyId, KeyPair, TrustedKeys};
use crate::tree;

/// The largest `SIGIL-DIGESTS.minisig` read.
const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;
/// The largest `SIGIL-DIGESTS` read.
const MAX_DIGESTS_BYTES: u64 = 64 * 1024 * 1024;

/// What [`sign_dir`] wrote.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The digest list written to `SIGIL-DIGESTS`.
    pub digests: DigestList,
    /// The signing key's id.
    pub key_id: KeyId,
}

/// How a plugin directory is signed, once its signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// No `SIGIL-DIGESTS.minisig`. (A digest list without a signature proves nothing and is
    /// not looked at.)
    Unsigned,
    /// A well-formed signature by a key that is not in the trust store. It cannot be checked,
    /// so it counts for nothing: the plugin is as good as unsigned.
    UnknownSigner {
        /// The key id the signature names.
        id: KeyId,
    },
    /// Signed by a trusted key, and every file matches the signed digest list.
    Verified {
        /// The trusted key's name.
        key: String,
        /// Its id.
        id: KeyId,
        /// The signed digest list.
        digests: DigestList,
    },
}

/// Signs the plugin in `dir` with `key`: writes `SIGIL-DIGESTS` (every file's SHA-256) and
/// `SIGIL-DIGESTS.minisig` (minisign's format, prehashed Ed25519 with a trusted comment
/// holding the time of signing), replacing earlier ones.
///
/// # Errors
/// The errors of [`DigestList::compute`]; [`TrustError::SecretKey`] when the key cannot sign;
/// [`TrustError::Io`] when a file cannot be written.
pub fn sign_dir(dir: &Path, key: &KeyPair) -> Result<Signed, TrustError> {
    let digests = DigestList::compute(dir)?;
    let text = digests.render();
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let trusted_comment = format!("timestamp:{seconds}\tfile:{DIGESTS_FILE}");
    let untrusted_comment = format!("signature from sigil, key {}", key.public().id());
    let signature = minisign::sign(
        Some(key.public().inner()),
        key.secret(),
        Cursor::new(text.as_bytes()),
        Some(&trusted_comment),
        Some(&untrusted_comment),
    )
    .map_err(|e| TrustError::SecretKey {
        path: "<signing key>".into(),
        message: format!("cannot sign: {e}"),
    })?;
    write_atomically(&dir.join(DIGESTS_FILE), text.as_bytes())?;
    write_atomically(&dir.join(SIGNATURE_FILE), signature.to_string().as_bytes())?;
    Ok(Signed {
        digests,
        key_id: key.public().id(),
    })
}

/// Checks how the plugin in `dir` is signed, against the operator's `keys`.
///
/// # Errors
/// A signature present but not what it claims is an error, never a lower trust level:
/// [`TrustError::BadSignature`] when `SIGIL-DIGESTS.minisig` is not a minisign signature;
/// [`TrustError::Forged`] when it names a trusted key but does not verify with it;
/// [`TrustError::Tampered`] when `SIGIL-DIGESTS` is missing or files do not match it;
/// [`TrustError::BadDigestList`] when the signed list is malformed; and the errors of
/// [`DigestList::compute`].
pub fn verify_dir(dir: &Path, keys: &TrustedKeys) -> Result<Signature, TrustError> {
    let signature_path = dir.join(SIGNATURE_FILE);
    // Both files are read by handle, as every file of the plugin is: never through a link.
    let Some(signature_bytes) = tree::read_top(dir, SIGNATURE_FILE, MAX_SIGNATURE_BYTES)? else {
        return Ok(Signature::Unsigned);
    };
    let signature_text =
        String::from_utf8(signature_bytes).map_err(|_| TrustError::BadSignature {
            path: signature_path.clone(),
            message: "not UTF-8".into(),
        })?;
    let signature = minisign::SignatureBox::from_string(&signature_text).map_err(|e| {
        TrustError::BadSignature {
            path: signature_path.clone(),
            message: e.to_string(),
        }
    })?;
    let id = KeyId::from_keynum(signature.keynum());
    let Some((name, key)) = keys.by_id(id) else {
        return Ok(Signature::UnknownSigner { id });
    };
    let digests_path = dir.join(DIGESTS_FILE);
    let Some(digests_text) = tree::read_top(dir, DIGESTS_FILE, MAX_DIGESTS_BYTES)? else {
        return Err(TrustError::Tampered {
            dir: dir.to_path_buf(),
            problems: vec![format!("{DIGESTS_FILE} is missing beside its signature")],
        });
    };
    minisign::verify(
        key.inner(),
        &signature,
        Cursor::new(&digests_text),
        true,
        false,
        false,
    )
    .map_err(|e| TrustError::Forged {
        path: signature_path.clone(),
        key: name.to_string(),
        id: id.to_string(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8(digests_text).map_err(|_| TrustError::BadDigestList {
        path: digests_path.clone(),
        line: 1,
        message: "not UTF-8".into(),
    })?;
    let digests = DigestList::parse(&text, &digests_path)?;
    digests.check(dir)?;
    Ok(Signature::Verified {
        key: name.to_string(),
        id,
        digests,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}.tmp", std::process::id()));
    let staging = std::path::PathBuf::from(staging);
    std::fs::write(&staging, bytes)
        .and_then(|()| std::fs::rename(&staging, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&staging);
            TrustError::io(path, &e)
        })
}
