//! Sigil's tamper-evident audit log: one record per policy decision (and per
//! call outcome), chained with a keyed MAC, in embedded SQLite, committed in
//! batches through one connection, with signed checkpoints.
//!
//! ```
//! use sigil_audit::{AuditLog, AuditSink, Filter, KeyFiles, NewRecord, Verdict};
//!
//! let dir = tempfile::tempdir()?;
//! // The keys live outside the database; they are created with a new log.
//! let keys = KeyFiles::in_dir(&dir.path().join("state"));
//! let log = AuditLog::open(&dir.path().join("sigil.db"), &keys)?;
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
//!
//! // A signed checkpoint, to keep somewhere the database's attacker cannot write.
//! let exported = log.checkpoint()?.to_json();
//! let kept = sigil_audit::Checkpoint::from_json(&exported)?;
//! assert!(log.verify_checkpoint(&kept)?.is_intact());
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
//! machine. All writes go through one connection. Records are written in
//! batches, each in one transaction committed once, and only then is each
//! caller's [`Pending`] resolved with the record's sequence number. A record
//! whose `Pending` resolved `Ok` is committed, as durably as the log's
//! [`Durability`] says.
//!
//! Where a batch is committed depends on what a commit costs:
//!
//! - With `Disk` (a commit waits for an fsync), always on a writer thread.
//!   Callers [`submit`](AuditSink::submit) concurrently; the writer takes
//!   everything queued (up to 4,096 submits), writes it, commits, and takes
//!   what queued meanwhile. So records arriving while a commit waits for the
//!   disk share the next fsync (group commit), and a lone record is committed
//!   at once, without waiting for others to join it.
//! - With `Process` (a commit costs tens of microseconds), a record that finds
//!   the writer idle (nothing queued, its last batch a lone submit, the
//!   connection free) is committed by its caller, on the caller's thread, and
//!   [`submit`](AuditSink::submit) returns a [`Pending`] that has already
//!   resolved. Otherwise it is queued for the writer thread as with `Disk`,
//!   which keeps each thread's records in the order it submitted them and lets
//!   records arriving together share a commit.
//!
//! If a batch fails, it is rolled back and every caller in it gets the error;
//! the enforcer turns that into a deny. The next batch starts again from what
//! is committed. [`AuditLog::close`] and dropping an [`AuditLog`] both let the
//! writer commit everything already submitted before the thread is joined; a
//! submit cannot come later, since both need the log itself.
//!
//! # The keyed chain
//!
//! Records are numbered `1, 2, 3, ...` (`seq`). Each stores `prev_hash`, the
//! previous record's chain value (64 zeros, [`GENESIS_HASH`], for record 1),
//! and its own chain value
//!
//! ```text
//! hash = hex(HMAC-SHA256(chain_key, prev_hash || canonical))
//! ```
//!
//! where `chain_key` is 32 random bytes kept in a file outside the database
//! ([`KeyFiles`]), `prev_hash` enters as its 64 lowercase hex characters in
//! ASCII and `canonical` is this JSON object, compact (no whitespace), keys in
//! exactly this order, absent values as `null`, strings escaped as
//! `serde_json` does:
//!
//! ```text
//! {"v":1,"time_ms":<i64>,"kind":"decision"|"outcome"|"approval","user":..,"workspace":..,
//!  "session":..,"channel":..,"plugin":..,"plugin_version":..,"capability":..,
//!  "decision":"allow"|"deny"|null,"rule":<string>,"call_id":..,
//!  "duration_us":<i64>|null,"outcome":..}
//! ```
//!
//! A record with [`steps`](NewRecord::steps) has one more key at the end,
//! `"steps"`, their list in order, each step's keys in this order and its
//! `detail` left out when absent:
//!
//! ```text
//! ..,"outcome":..,"steps":[{"step":<string>,"ok":true|false,"detail":<string>},..]}
//! ```
//!
//! A record without steps has no `"steps"` key at all, so its encoding is the
//! one records had before they could carry steps.
//!
//! `seq` itself is not covered: a record's place is fixed by the link to its
//! predecessor. The encoding is rebuilt by [`AuditLog::verify`] from the stored
//! columns, so it checks exactly what is in the database.
//!
//! A one-row `audit_head` table holds the last `seq` and chain value, with a
//! MAC over both, updated in the same transaction as each batch, so deleting
//! the newest records is detected too. See [`Tamper`] for what verify reports.
//!
//! Logs written before keyed chains (plain SHA-256, schema version 1) are
//! upgraded in place when first opened: their records keep their hashes and
//! are verified with the old rule up to a MACed marker, and the keyed chain
//! continues from their last hash. See *Upgrading* below.
//!
//! # Checkpoints
//!
//! The writer signs [`Checkpoint`]s (sequence number, chain value, time) with a
//! second key kept outside the database, an Ed25519 key in minisign's format:
//! every [`CHECKPOINT_EVERY`] records, at a clean shutdown, on demand
//! ([`AuditLog::checkpoint`]), and when a log is upgraded. They are stored in
//! the database, and one exported ([`Checkpoint::to_json`]) and kept elsewhere
//! proves later edits ([`AuditLog::verify_checkpoint`]).
//!
//! # Security
//!
//! Tampering is made *evident*, not impossible. Who can do what:
//!
//! - Write access to the database alone: any edit, insertion, reordering or
//!   deletion of records is found, including a deny turned into an allow with
//!   every hash recomputed by the unkeyed rule, since a new chain value needs
//!   the chain key. So is a rolled-back head (its MAC), a moved or deleted
//!   marker, and a deleted periodic checkpoint. Not found: putting back an
//!   older copy of the whole database, or deleting the newest records and
//!   putting back the head row of an older copy (it carries a valid MAC)
//!   together with deleting the checkpoints past it, unless a checkpoint
//!   kept elsewhere covers them.
//! - The database and the chain key: the chain can be rewritten with valid
//!   MACs. Found: changes covered by a stored checkpoint (it no longer matches)
//!   or at or before a periodic checkpoint (deleting it is reported), and by any
//!   checkpoint kept elsewhere. Not found: changes to the records after the
//!   newest periodic checkpoint, once the other checkpoints past it are deleted.
//! - The database and the checkpoint key, without the chain key: no more than
//!   with the database alone (new checkpoints cannot make records verify).
//! - Both keys and the database: everything can be rewritten, except what a
//!   checkpoint kept elsewhere covers.
//! - A checkpoint kept elsewhere: every record up to its `seq` is fixed; their
//!   edit or deletion is found by [`AuditLog::verify_checkpoint`], whoever holds
//!   which key.
//!
//! # Upgrading
//!
//! A log of schema version 1 (plain SHA-256, no keys) keeps every record and
//! hash. Its first open under this version creates the keys and, in one
//! transaction, records `keyed_from` = the head's `seq` + 1 and `legacy_head` =
//! the head's hash in `audit_chain` under a MAC, MACs the head, and signs a
//! checkpoint of it. Records before `keyed_from` are verified with the unkeyed
//! rule and must end at `legacy_head`, which the first keyed record's MAC
//! covers; so rewriting them (which needs no key) is still found, and the marker
//! cannot be moved without the key. A new database is the upgrade of an empty
//! log (`keyed_from` = 1).
//!
//! A log of schema version 2 (keyed, before records kept their steps) gains a
//! nullable `steps` column in `audit_records` and becomes version 3, in place;
//! its records, which have no steps, keep their encoding and chain values.
//! A build that knows only version 2 refuses the upgraded log.
//!
//! Opening refuses rather than make new keys when the chain key exists but the
//! database holds no keyed log (deleted, replaced, or rewritten to look like
//! version 1), when a keyed log's chain key is missing or another key, and
//! when checkpoints are stored but the checkpoint key is missing.
//!
//! # Tables
//!
//! The database file is shared with the rest of Sigil, so this crate only
//! creates tables prefixed `audit_`: `audit_records`, `audit_head`,
//! `audit_chain` (where the keyed chain begins), `audit_checkpoints` and
//! `audit_meta` (schema version).
//!
//! # Threading and costs
//!
//! [`AuditLog`] is `Send + Sync`; share it behind an `Arc`. Opening starts a
//! writer thread and a checkpoint thread, and holds three SQLite connections: the writer's, behind a
//! mutex, which every commit uses on whichever thread makes it; and one for
//! [`query`](AuditLog::query), [`export`](AuditLog::export) and
//! [`verify`](AuditLog::verify), which take turns on it and do not block
//! writes. `verify` reads the whole log. Each connection prepares its
//! statements once and keeps them.
//!
//! A submit serialises its records' canonical encoding on the calling thread,
//! then:
//!
//! - committed by the caller (`Process`, writer idle): one transaction on the
//!   calling thread, without an fsync (tens of microseconds; the checkpoint
//!   thread below copies the write-ahead log, so the commit does not). `submit` returns once it has committed, so it blocks its
//!   caller that long, also on an async executor's thread; if another process
//!   holds the database's write lock, for as long as SQLite's busy timeout
//!   (10 s) at most, as the writer thread would wait.
//! - otherwise (`Disk`, or `Process` while others commit): a hand-off to the
//!   writer thread and back, and a share of one commit, which with `Disk`
//!   includes an fsync (milliseconds on many disks). `submit` does not block;
//!   the [`Pending`] is awaited or [waited](Pending::wait) for.
//!
//! So with `Process` a call whose records are submitted together
//! ([`AuditSink::submit_all`]) on an idle log costs one transaction on its own
//! thread and no thread hand-off.
//!
//! A third connection, on a thread of its own, copies the write-ahead log into
//! the database every 256 commits (a `PASSIVE` checkpoint, beside the commits),
//! so no committer pays for that copy and its fsync; a commit finishes it only
//! when the log reaches 16 MiB, which a load that never pauses can cause.

#![forbid(unsafe_code)]

mod chain;
mod checkpoint;
mod error;
mod filter;
mod keys;
mod record;
mod schema;
mod store;
mod verify;
mod writer;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

pub use crate::checkpoint::{CHECKPOINT_EVERY, CHECKPOINT_FORMAT, Checkpoint};
pub use crate::error::AuditError;
pub use crate::filter::{Filter, parse_since};
pub use crate::keys::{CHAIN_KEY_FILE, CHECKPOINT_KEY_FILE, KeyFiles};
pub use crate::record::{Actor, CallStep, GENESIS_HASH, NewRecord, Record, RecordKind, Verdict};
pub use crate::verify::{Tamper, VerifyReport};
#[doc(hidden)]
pub use crate::writer::Commits;
pub use crate::writer::Pending;

use crate::keys::Keys;
use crate::writer::Writer;

/// Somewhere audit records go. The enforcer holds one of these.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Submits a record; the returned [`Pending`] resolves once it is durable
    /// (or failed). The record is written even if the `Pending` is dropped.
    fn submit(&self, record: NewRecord) -> Pending;

    /// Submits `records` to be written in one transaction, in order, with nothing between
    /// them; the returned [`Pending`] resolves to the first one's `seq` once all are durable,
    /// or fails for all. An empty list resolves at once, to 0.
    fn submit_all(&self, records: Vec<NewRecord>) -> Pending;
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn submit(&self, record: NewRecord) -> Pending {
        (**self).submit(record)
    }

    fn submit_all(&self, records: Vec<NewRecord>) -> Pending {
        (**self).submit_all(records)
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
    /// (the chain stays intact: what survives verifies). A commit being cheap,
    /// a record submitted while the writer is idle is committed on the
    /// submitting thread (see the [crate docs](crate#durability-and-group-commit)).
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
    key_files: KeyFiles,
    keys: Arc<Keys>,
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
    /// Opens the log in the SQLite file at `path` with its keys in
    /// `key_files`, creating the file, the `audit_` tables and the keys if
    /// missing (and upgrading a log from before keyed chains), and starts the
    /// writer thread. An existing log's chain continues from its head. The
    /// database's parent directory must exist; the keys' is created (mode 0700).
    ///
    /// # Errors
    ///
    /// [`AuditError::Open`] if SQLite cannot open the file or create the
    /// tables; [`AuditError::Unusable`] if WAL mode is unavailable, the tables
    /// come from a newer version or cannot be upgraded, or the writer thread
    /// cannot start; [`AuditError::Key`] if a key file is damaged, missing for
    /// an existing log, or present for a log that is gone (see [`KeyFiles`]).
    pub fn open(path: &Path, key_files: &KeyFiles) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, key_files, Durability::Disk)
    }

    /// [`AuditLog::open`] with the given [`Durability`].
    ///
    /// # Errors
    ///
    /// As for [`AuditLog::open`].
    pub fn open_with(
        path: &Path,
        key_files: &KeyFiles,
        durability: Durability,
    ) -> Result<AuditLog, AuditError> {
        let (conn, keys) = schema::open_writer(path, key_files, durability)?;
        let keys = Arc::new(keys);
        let reader = schema::open_reader(path)?;
        let path = Arc::new(path.to_owned());
        let writer = Writer::spawn(conn, Arc::clone(&path), Arc::clone(&keys), durability)?;
        tracing::debug!(path = %path.display(), durability = durability.name(), "audit log opened");
        Ok(AuditLog {
            path,
            key_files: key_files.clone(),
            keys,
            durability,
            writer,
            reader: Mutex::new(reader),
        })
    }

    /// Where the log's keys are.
    pub fn key_files(&self) -> &KeyFiles {
        &self.key_files
    }

    /// The public half of the checkpoint key, minisign's base64 line: what an
    /// exported checkpoint must name, and what `minisign -P` takes.
    pub fn checkpoint_public_key(&self) -> &str {
        self.keys.signer.public_key()
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

    /// Checks the whole chain with the chain key, the head, and every stored
    /// checkpoint, and reports the first problem (see [`Tamper`] for the
    /// order). An empty log is intact. Runs in one read snapshot, concurrently
    /// with writes.
    ///
    /// # Errors
    ///
    /// [`AuditError::Read`] if SQLite fails. Tampering is not an error: it is
    /// reported in [`VerifyReport::problem`].
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        verify::verify(&mut reader, &self.path, &self.keys, None)
    }

    /// [`AuditLog::verify`], then checks `checkpoint`, one kept elsewhere: the
    /// chain up to its `seq` must still yield its head.
    ///
    /// # Errors
    ///
    /// [`AuditError::CheckpointRefused`] if `checkpoint` does not name this
    /// log's checkpoint key or its signature does not verify (a forged
    /// checkpoint, or this log's key was replaced); [`AuditError::Read`] if
    /// SQLite fails. A log that no longer matches is reported in
    /// [`VerifyReport::problem`].
    pub fn verify_checkpoint(&self, checkpoint: &Checkpoint) -> Result<VerifyReport, AuditError> {
        let ours = self.keys.signer.public_key();
        if checkpoint.public_key.trim() != ours {
            return Err(AuditError::CheckpointRefused {
                reason: format!(
                    "it names checkpoint key {}, but this log's checkpoint key is {ours}: it was \
                     signed by another key, or this log's key was replaced",
                    checkpoint.public_key.trim().escape_debug()
                ),
            });
        }
        if !self.keys.signer.signed(checkpoint) {
            return Err(AuditError::CheckpointRefused {
                reason: format!(
                    "its signature of record {} does not verify with this log's checkpoint key",
                    checkpoint.seq
                ),
            });
        }
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        verify::verify(&mut reader, &self.path, &self.keys, Some(checkpoint))
    }

    /// Signs a checkpoint of the head once everything submitted before has
    /// committed, stores it and returns it; the existing one if the head is
    /// already checkpointed.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unusable`] if the head is missing or its MAC does not
    /// verify (nothing is signed then), [`AuditError::CheckpointFailed`],
    /// [`AuditError::Write`] or [`AuditError::WriterStopped`].
    pub fn checkpoint(&self) -> Result<Checkpoint, AuditError> {
        self.writer.checkpoint()
    }

    /// The stored checkpoints in `seq` order, each naming this log's
    /// checkpoint key. Their signatures are not checked here ([`AuditLog::verify`]
    /// does); a damaged row is left out.
    ///
    /// # Errors
    ///
    /// [`AuditError::Read`] if SQLite fails.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, AuditError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let stored =
            store::checkpoints(&reader, self.keys.signer.public_key()).map_err(|cause| {
                AuditError::Read {
                    path: (*self.path).clone(),
                    cause: Arc::new(cause),
                }
            })?;
        Ok(stored
            .into_iter()
            .filter_map(|c| match c {
                store::StoredCheckpoint::Readable(c) => Some(c),
                store::StoredCheckpoint::Damaged(_) => None,
            })
            .collect())
    }

    /// How many batches were committed on submitting threads and on the writer thread.
    #[doc(hidden)]
    pub fn commits(&self) -> Commits {
        self.writer.commits()
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
        self.writer.submit(vec![record])
    }

    fn submit_all(&self, records: Vec<NewRecord>) -> Pending {
        self.writer.submit(records)
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
