//! The crate's error type.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong while opening, writing or reading the audit log.
///
/// The type is `Clone` so one failed batch can hand the same error to every
/// caller whose record was in it; underlying SQLite and I/O errors are shared
/// behind an [`Arc`]. Each message names the database file involved.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The database could not be opened or prepared (pragmas, tables).
    #[error("cannot open audit database {}: {cause}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        cause: Arc<rusqlite::Error>,
    },

    /// The database is not usable as an audit log for a reason SQLite did not report.
    #[error("cannot use audit database {}: {reason}", path.display())]
    Unusable {
        /// The database file.
        path: PathBuf,
        /// Why, naming the offending value.
        reason: String,
    },

    /// A batch of records could not be committed; none of its records were written.
    #[error("cannot write audit records to {}: {cause}", path.display())]
    Write {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        cause: Arc<rusqlite::Error>,
    },

    /// Reading records (query, export, verify) failed.
    #[error("cannot read audit database {}: {cause}", path.display())]
    Read {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        cause: Arc<rusqlite::Error>,
    },

    /// A stored record holds a value this version cannot interpret.
    #[error("audit database {}: record {seq} has invalid {column} `{value}`", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// The column holding the value.
        column: &'static str,
        /// The offending value as text.
        value: String,
    },

    /// The record was refused before it was queued.
    #[error("audit record refused: {reason}")]
    InvalidRecord {
        /// Why, naming the offending value.
        reason: String,
    },

    /// The writer thread is gone, so the record's fate is unknown: treat it as not written.
    #[error("audit writer for {} has stopped; the record was not confirmed as written", path.display())]
    WriterStopped {
        /// The database file.
        path: PathBuf,
    },

    /// The writer thread panicked; records it had not confirmed may be lost.
    #[error("audit writer for {} panicked", path.display())]
    WriterPanicked {
        /// The database file.
        path: PathBuf,
    },

    /// Writing exported records to the output failed.
    #[error("cannot write audit export from {}: {cause}", path.display())]
    Export {
        /// The database file being exported.
        path: PathBuf,
        /// The output's error.
        cause: Arc<std::io::Error>,
    },

    /// A key file of the log is missing, damaged, or not the one the log was written with.
    /// The message names the file and what is wrong, never the key.
    #[error("audit key {}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it, or with the log it should fit.
        reason: String,
    },

    /// A checkpoint could not be signed or stored.
    #[error("cannot checkpoint audit database {}: {reason}", path.display())]
    CheckpointFailed {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A checkpoint given to verify against is not one this log's checkpoint key signed.
    #[error("checkpoint refused: {reason}")]
    CheckpointRefused {
        /// Why, naming the offending value.
        reason: String,
    },

    /// A `--since`-style time could not be parsed.
    #[error(
        "invalid time `{input}`: expected an RFC 3339 time like 2026-11-23T10:00:00Z \
         or a duration ago like 15m, 2h, 7d ({reason})"
    )]
    InvalidSince {
        /// The text given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },

    /// Text that should name a record kind or verdict names neither.
    #[error("unknown {what} `{value}`: expected {expected}")]
    UnknownValue {
        /// What was being parsed ("verdict", "record kind").
        what: &'static str,
        /// The text given.
        value: String,
        /// The accepted spellings.
        expected: &'static str,
    },
}
