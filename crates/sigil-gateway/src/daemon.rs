//! `daemon.json`: how commands on the same machine find a running daemon.
//!
//! `sigil serve` writes it in the data directory once it listens, and removes it when it has
//! shut down. A file left behind by a daemon that was killed names a pid that is gone or an
//! address that does not answer; readers check before trusting it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const DAEMON_FILE: &str = "daemon.json";

/// What a running daemon tells about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// The Sigil version it runs.
    pub version: String,
    /// When it started listening, in Unix milliseconds.
    pub started_ms: i64,
}

/// Why `daemon.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct DaemonFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl DaemonInfo {
    /// The path of `daemon.json` in the data directory `home`.
    pub fn path(home: &Path) -> PathBuf {
        home.join(DAEMON_FILE)
    }

    /// Writes the file, atomically (a reader never sees half of it) and private to the user.
    ///
    /// # Errors
    /// When the data directory cannot be written.
    pub fn write(&self, home: &Path) -> Result<(), DaemonFileError> {
        let path = DaemonInfo::path(home);
        let fail = |message: String| DaemonFileError {
            path: path.clone(),
            message,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.to_string()))?;
        sigil_runtime::files::write_private_atomically(&path, text.as_bytes())
            .map_err(|e| fail(e.to_string()))
    }

    /// Reads the file; `None` when there is none.
    ///
    /// # Errors
    /// When it exists but cannot be read or parsed.
    pub fn read(home: &Path) -> Result<Option<DaemonInfo>, DaemonFileError> {
        let path = DaemonInfo::path(home);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(DaemonFileError {
                    path,
                    message: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DaemonFileError {
                path,
                message: format!("not a daemon description: {e}"),
            })
    }

    /// Removes the file if it still describes this process (a newer daemon's file stays).
    pub fn remove_own(home: &Path) {
        if let Ok(Some(info)) = DaemonInfo::read(home)
            && info.pid == std::process::id()
        {
            let _ = std::fs::remove_file(DaemonInfo::path(home));
        }
    }
}
