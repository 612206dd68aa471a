//! Sigil's tamper-evident audit log: one record per policy decision (and per
//! call outcome), hash-chained, in embedded SQLite, written by a single
//! group-committing writer thread.
//!
//! ```
//! use sigil_audit::{AuditLog, AuditSink, Filter, NewRecord, Verdict};
//!
//! let dir = tempfile::tempdir()?;
//! let log = AuditLog::open(&dir.path().join("sigil.db"))?;
//!
//! // Blocking append: returns once the record is durable.
//! let seq = log.append(
//!     NewRecord::decision(Verdict::Deny, "no grant for net.connect")
//!         .with_plugin("weather", Some("0.3.1"))
//!         .with_capability("net.connect:api.example.com:443")
//!         .with_call_id("c-1"),
//! )?;
//! assert_eq!(seq, 1);
//!
//! // Or submit and wait later (`.await` works too).
//! let pending = log.submit(NewRecord::outcome("c-1", "ok"));
//! assert_eq!(pending.wait()?, 2);
//!
//! let denied = log.query(&Filter { decision: Some(Verdict::Deny), ..Filter::default() })?;
//! assert_eq!(denied.len(), 1);
//! assert_eq!(denied[0].record.rule, "no grant for net.connect");
//!
//! assert!(log.verify()?.is_intact());
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Durability and group commit
//!
//! The database runs in WAL mode. With [`Durability::Disk`] (the default,
//! `synchronous=FULL`) a commit has reached the disk when it returns; with
//! [`Durability::Process`] (`synchronous=NORMAL`) it has reached the
//! operating system, which survives any crash of the process but not of the
//! machine. All writes go through one thread. Callers
//! [`submit`](AuditSink::submit) concurrently; the writer takes everything
//! queued (up to 4,096 records; with `Disk`, also waiting at most 50 µs for
//! each further arrival, 1 ms in all, so a burst shares one fsync), writes it
//! in one transaction, commits once, and only then resolves each caller's
//! [`Pending`] with the record's sequence number. A record whose `Pending`
//! resolved `Ok` is committed, as durably as the log's [`Durability`] says.
//!
//! If a batch fails, it is rolled back and every caller in it gets the error;
//! the enforcer turns that into a deny. The next batch starts again from what
//! is committed. [`AuditLog::close`] and dropping an [`AuditLog`] both let the
//! writer commit everything already submitted before the thread is joined.
//!
//! # The hash chain
//!
//! Records are numbered `1, 2, 3, ...` (`seq`). Each stores `prev_hash`, the
//! previous record's hash (64 zeros for record 1), and
//!
//! ```text
//! hash = hex(SHA-256(prev_hash || canonical))
//! ```
//!
//! where `prev_hash` enters as its 64 lowercase hex characters in ASCII and
//! `canonical` is this JSON object, compact (no whitespace), keys in exactly
//! this order, absent values as `null`, strings escaped as `serde_json` does:
//!
//! ```text
//! {"v":1,"time_ms":<i64>,"kind":"decision"|"outcome"|"approval","user":..,"workspace":..,
//!  "session":..,"channel":..,"plugin":..,"plugin_version":..,"capability":..,
//!  "decision":"allow"|"deny"|null,"rule":<string>,"call_id":..,
//!  "duration_us":<i64>|null,"outcome":..}
//! ```
//!
//! `seq` itself is not hashed: a record's place is fixed by the link to its
//! predecessor. The encoding is rebuilt by [`AuditLog::verify`] from the stored
//! columns, so it hashes exactly what is in the database.
//!
//! A one-row `audit_head` table holds the last `seq` and hash, updated in the
//! same transaction as each batch, so deleting the newest records is detected
//! too. See [`Tamper`] for what verify reports.
//!
//! # Security
//!
//! The chain makes edits, deletions and reordering by someone with write
//! access to the file *evident*; it does not prevent them, and someone who
//! rewrites every hash from the first changed record onward, head included,
//! produces a chain that verifies. Copying the head hash somewhere the
//! attacker cannot write (a log shipper, a signed checkpoint) closes that gap.
//!
//! # Tables
//!
//! The database file is shared with the rest of Sigil, so this crate only
//! creates tables prefixed `audit_`: `audit_records`, `audit_head` and
//! `audit_meta` (schema version).
//!
//! # Threading and costs
//!
//! [`AuditLog`] is `Send + Sync`; share it behind an `Arc`. Opening starts one
//! writer thread and holds two SQLite connections: the writer's and one for
//! [`query`](AuditLog::query), [`export`](AuditLog::export) and
//! [`verify`](AuditLog::verify), which take turns on it and do not block
//! writes. `verify` reads the whole log.

#![forbid(unsafe_code)]

mod error;
mod filter;
mod record;
mod store;
mod verify;
mod writer;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

pub use crate::error::AuditError;
pub use crate::filter::{Filter, parse_since};
pub use crate::record::{Actor, GENESIS_HASH, NewRecord, Record, RecordKind, Verdict};
pub use crate::verify::{Tamper, VerifyReport};
pub use crate::writer::Pending;

use crate::writer::Writer;

/// Somewhere audit records go. The enforcer holds one of these.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Queues a record; the returned [`Pending`] resolves once it is durable
    /// (or failed). The record is written even if the `Pending` is dropped.
    fn submit(&self, record: NewRecord) -> Pending;
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn submit(&self, record: NewRecord) -> Pending {
        (**self).submit(record)
    }
}

/// How far a committed record has travelled when its [`Pending`] resolves.
///
/// There is deliberately no `Default`: choosing how durable the audit log is
/// is the operator's decision (`[audit] durability` in `sigil.toml`), and
/// [`AuditLog::open`] takes the stronger one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On the disk: every commit is fsynced (`synchronous=FULL`). Survives a
    /// power cut. Each commit waits for the disk, so a lone record costs one
    /// fsync; concurrent records share it.
    Disk,
    /// With the operating system: committed to the write-ahead log without
    /// waiting for the disk (`synchronous=NORMAL`). Survives any crash or kill
    /// of the process; a crash of the machine may lose the newest commits
    /// (the chain stays intact: what survives verifies).
    Process,
}

impl Durability {
    /// The name used in `sigil.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Disk => "disk",
            Durability::Process => "process",
        }
    }
}

/// The audit log in one SQLite file. See the [crate docs](crate) for how it
/// writes and what it guarantees.
pub struct AuditLog {
    path: Arc<PathBuf>,
    durability: Durability,
    writer: Writer,
    reader: Mutex<Connection>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the log in the SQLite file at `path`, creating the file and the
    /// `audit_` tables if missing, and starts the writer thread. An existing
    /// log's chain continues from its head. The parent directory must exist.
    ///
    /// # Errors
    ///
    /// [`AuditError::Open`] if SQLite cannot open the file or create the
    /// tables; [`AuditError::Unusable`] if WAL mode is unavailable, the tables
    /// come from a newer version, or the writer thread cannot start.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, Durability::Disk)
    }

    /// [`AuditLog::open`] with the given [`Durability`].
    ///
    /// # Errors
    ///
    /// As for [`AuditLog::open`].
    pub fn open_with(path: &Path, durability: Durability) -> Result<AuditLog, AuditError> {
        let conn = store::open_writer(path, durability)?;
        let reader = store::open_reader(path)?;
        let path = Arc::new(path.to_owned());
        let writer = Writer::spawn(conn, Arc::clone(&path), durability)?;
        tracing::debug!(path = %path.display(), durability = durability.name(), "audit log opened");
        Ok(AuditLog {
            path,
            durability,
            writer,
            reader: Mutex::new(reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How durable a record is when its [`Pending`] resolves.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Submits `record` and blocks until it is durable.
    ///
    /// # Errors
    ///
    /// The failed batch's error, such as [`AuditError::Write`];
    /// [`AuditError::InvalidRecord`] if the record cannot be stored (a
    /// `duration_us` above `i64::MAX`).
    pub fn append(&self, record: NewRecord) -> Result<u64, AuditError> {
        self.submit(record).wait()
    }

    /// The records matching `filter`, ordered by `seq` ascending. With a
    /// `limit`, the newest `limit` matches, still ascending.
    ///
    /// # Errors
    ///
    /// [`AuditError::Read`] if SQLite fails, [`AuditError::Corrupt`] if a
    /// stored value cannot be interpreted.
    pub fn query(&self, filter: &Filter) -> Result<Vec<Record>, AuditError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut records = Vec::new();
        store::for_each_record(&reader, &self.path, filter, |record| {
            records.push(record);
            Ok(())
        })?;
        Ok(records)
    }

    /// Writes the records matching `filter` to `out` as JSON lines, one
    /// [`Record`] per line in `seq` order, and returns how many.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), plus [`AuditError::Export`] if writing to
    /// `out` fails.
    pub fn export(&self, filter: &Filter, out: &mut dyn Write) -> Result<u64, AuditError> {
        let export_err = |cause| AuditError::Export {
            path: (*self.path).clone(),
            cause: Arc::new(cause),
        };
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let count = store::for_each_record(&reader, &self.path, filter, |record| {
            serde_json::to_writer(&mut *out, &record)
                .map_err(|e| export_err(std::io::Error::from(e)))?;
            out.write_all(b"\n").map_err(export_err)
        })?;
        out.flush().map_err(export_err)?;
        Ok(count)
    }

    /// Checks the whole chain and reports the first record that breaks it.
    /// An empty log is intact. Runs in one read snapshot, concurrently with
    /// writes.
    ///
    /// # Errors
    ///
    /// [`AuditError::Read`] if SQLite fails. Tampering is not an error: it is
    /// reported in [`VerifyReport::problem`].
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        verify::verify(&mut reader, &self.path)
    }

    /// Commits everything already submitted, stops the writer thread and
    /// closes the database. Dropping the log does the same, but can only log
    /// errors.
    ///
    /// # Errors
    ///
    /// [`AuditError::WriterPanicked`] if the writer thread panicked, or
    /// [`AuditError::Write`] if the writer's connection failed to close.
    pub fn close(mut self) -> Result<(), AuditError> {
        self.writer.shutdown()
    }
}

impl AuditSink for AuditLog {
    fn submit(&self, record: NewRecord) -> Pending {
        self.writer.submit(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_shareable() {
        assert_send_sync::<AuditLog>();
        assert_send_sync::<Arc<dyn AuditSink>>();
        fn assert_send<T: Send>() {}
        assert_send::<Pending>();
    }
}
