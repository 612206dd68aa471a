//! The two keys the log keeps outside its database: the chain key (32 random bytes, the HMAC
//! key of the chain) and the checkpoint key (an Ed25519 key in minisign's secret-key format,
//! unencrypted). Both files are created with mode 0600, in a directory created with mode 0700,
//! and only while the database's write lock is held, so two processes opening one log never
//! make two keys.
//!
//! Nothing here ever formats a key: errors name the file and what is wrong with its shape,
//! never its content, and the types holding keys redact them in `Debug`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::AuditError;
use crate::chain::{CHAIN_KEY_BYTES, ChainKey};
use crate::checkpoint::Signer;

/// File name of the chain key inside the key directory.
pub const CHAIN_KEY_FILE: &str = "audit.key";

/// File name of the checkpoint signing key inside the key directory.
pub const CHECKPOINT_KEY_FILE: &str = "audit-checkpoint.key";

/// Where an audit log's keys live. They must not be in the database: whoever can write the
/// database but not read these files cannot forge a record, the chain head or a checkpoint.
///
/// Sigil keeps them in `<data dir>/state/` ([`KeyFiles::in_dir`]). They are
/// created with the log, and never replaced: opening refuses when the chain
/// key exists but the log is gone, and when a log's keys are missing (see
/// *Upgrading* in the [crate docs](crate)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    chain: PathBuf,
    checkpoint: PathBuf,
}

impl KeyFiles {
    /// [`CHAIN_KEY_FILE`] and [`CHECKPOINT_KEY_FILE`] in `dir`.
    pub fn in_dir(dir: &Path) -> KeyFiles {
        KeyFiles {
            chain: dir.join(CHAIN_KEY_FILE),
            checkpoint: dir.join(CHECKPOINT_KEY_FILE),
        }
    }

    /// The chain key file: 32 random bytes.
    pub fn chain(&self) -> &Path {
        &self.chain
    }

    /// The checkpoint key file: a minisign secret key, unencrypted.
    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }
}

/// Both keys, loaded.
#[derive(Debug)]
pub(crate) struct Keys {
    pub chain: ChainKey,
    pub signer: Signer,
}

/// The chain key in `path`, or `None` if there is no such file.
///
/// # Errors
///
/// [`AuditError::Key`] if the file cannot be read or is not 32 bytes.
pub(crate) fn read_chain_key(path: &Path) -> Result<Option<ChainKey>, AuditError> {
    let Some(bytes) = read_key_file(path)? else {
        return Ok(None);
    };
    ChainKey::from_bytes(&bytes).map(Some).ok_or_else(|| {
        key_error(
            path,
            format!("holds {} bytes, not {CHAIN_KEY_BYTES}", bytes.len()),
        )
    })
}

/// Creates a random chain key in `path` (which must not exist).
///
/// # Errors
///
/// [`AuditError::Key`] if randomness or the file system fails, or the file appeared meanwhile.
pub(crate) fn create_chain_key(path: &Path) -> Result<ChainKey, AuditError> {
    let mut bytes = [0u8; CHAIN_KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| key_error(path, format!("no randomness for a new key: {e}")))?;
    write_new(path, &bytes)?;
    ChainKey::from_bytes(&bytes).ok_or_else(|| key_error(path, "a new key was refused".to_owned()))
}

/// The checkpoint key in `path`, or `None` if there is no such file.
///
/// # Errors
///
/// [`AuditError::Key`] if the file cannot be read or is not an unencrypted minisign secret key.
pub(crate) fn read_signer(path: &Path) -> Result<Option<Signer>, AuditError> {
    let Some(bytes) = read_key_file(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| key_error(path, "is not text, so not a minisign secret key".to_owned()))?;
    Signer::from_secret_key_text(&text)
        .map(Some)
        .map_err(|reason| key_error(path, reason.to_owned()))
}

/// Creates a new checkpoint key in `path` (which must not exist).
///
/// # Errors
///
/// [`AuditError::Key`] if generation or the file system fails, or the file appeared meanwhile.
pub(crate) fn create_signer(path: &Path) -> Result<Signer, AuditError> {
    let (signer, text) = Signer::generate().map_err(|reason| key_error(path, reason.to_owned()))?;
    write_new(path, text.as_bytes())?;
    Ok(signer)
}

pub(crate) fn key_error(path: &Path, reason: String) -> AuditError {
    AuditError::Key {
        path: path.to_owned(),
        reason,
    }
}

fn read_key_file(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            warn_if_shared(path);
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(key_error(path, format!("cannot be read: {e}"))),
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format_args!("{mode:o}"), "an audit key file is readable by others; it should have mode 600");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

/// Writes `bytes` to a new file at `path`, mode 0600, all at once: the content goes to a
/// private temporary file first, which is then hard-linked into place (a link never replaces an
/// existing file), so no reader ever sees a partial key and no existing key is overwritten.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let fail = |what: &str, e: io::Error| key_error(path, format!("cannot {what}: {e}"));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| fail("create its directory", e))?;

    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| key_error(path, format!("no randomness for a temporary name: {e}")))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", crate::chain::to_hex(&suffix)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    written.map_err(|e| fail("be created", e))?;
    // The new name must survive a crash as well as the content.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_private_and_never_replaced() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let files = KeyFiles::in_dir(&dir.path().join("state"));
        let created = create_chain_key(files.chain())?;
        let read = read_chain_key(files.chain())?.map(|k| k.id().to_owned());
        assert_eq!(read.as_deref(), Some(created.id()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(files.chain())?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let mode = std::fs::metadata(dir.path().join("state"))?
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700);
        }
        assert!(matches!(
            create_chain_key(files.chain()),
            Err(AuditError::Key { .. })
        ));
        assert_eq!(
            read_chain_key(files.chain())?
                .map(|k| k.id().to_owned())
                .as_deref(),
            Some(created.id()),
            "the first key is kept"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let signer = create_signer(files.checkpoint())?;
        let again = read_signer(files.checkpoint())?.map(|s| s.public_key().to_owned());
        assert_eq!(again.as_deref(), Some(signer.public_key()));
        Ok(())
    }

    #[test]
    fn damaged_key_files_are_errors_that_do_not_quote_them()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let files = KeyFiles::in_dir(dir.path());
        std::fs::write(files.chain(), b"zzzz-not-a-key")?;
        std::fs::write(files.checkpoint(), b"zzzz-not-a-key")?;
        let chain = read_chain_key(files.chain()).err().map(|e| e.to_string());
        let signer = read_signer(files.checkpoint()).err().map(|e| e.to_string());
        for message in [chain, signer] {
            let message = message.unwrap_or_default();
            assert!(message.starts_with("audit key "), "{message}");
            assert!(!message.contains("zzzz"), "{message}");
        }
        assert!(read_chain_key(&dir.path().join("missing"))?.is_none());
        Ok(())
    }
}
