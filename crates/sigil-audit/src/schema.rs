//! The `audit_` tables, the writer's connection, and the keys: created together on a new
//! database, and a log of an older layout upgraded in place.
//!
//! # Layout (schema version 3)
//!
//! - `audit_meta`: `schema_version`.
//! - `audit_records`: one row per record; `prev_hash` and `hash` hold chain values; `steps`
//!   the steps of the call as compact JSON, exactly as the canonical encoding embeds them, or
//!   NULL when the record has none.
//! - `audit_head`: one row, the last `seq`, its chain value `hash`, and `mac`, the chain key's
//!   MAC over both.
//! - `audit_chain`: one row saying where the keyed chain begins: `keyed_from` (the first record
//!   under the keyed rule), `legacy_head` (the chain value it continues from: the last unkeyed
//!   record's hash, or the genesis value), `key_id` (the chain key's public id) and `mac`.
//! - `audit_checkpoints`: signed checkpoints, one per sequence number.
//!
//! # Upgrading a version 1 log
//!
//! Version 1 chained records with plain SHA-256 and had no keys. Opening one keeps every record
//! and hash as it is: it creates the keys, records `keyed_from` = the head's `seq` + 1 and
//! `legacy_head` = the head's hash under a MAC, MACs the head, and signs a checkpoint of it, all
//! in one transaction. Records up to `keyed_from - 1` are then verified with the unkeyed rule and
//! must end at `legacy_head`; the first keyed record's MAC covers `legacy_head` as its
//! `prev_hash`. So a rewrite of the old records, which needs no key, still breaks the log at
//! the marker, and the marker itself cannot be moved without the key. A new database is the same
//! upgrade of an empty log: `keyed_from` = 1.
//!
//! # Upgrading a version 2 log
//!
//! Version 3 adds the nullable `audit_records.steps` column, in place (`ALTER TABLE ... ADD
//! COLUMN`, in the same transaction as the version). Existing records get NULL there, which is
//! what they would have been written with: a record without steps has the same canonical
//! encoding in both versions, so its chain value still verifies. Every log reaches version 3
//! this way, a version 1 log (or a new database) right after its keyed upgrade.
//!
//! # Refusals
//!
//! The keys are created only together with that upgrade. Opening refuses, rather than making
//! new keys, when:
//!
//! - the chain key exists but the database holds no keyed log (it was deleted, replaced, or
//!   rewritten to look like version 1, which needs no key);
//! - the database holds a keyed log but the chain key is missing or is another key;
//! - checkpoints are stored but the checkpoint key is missing.
//!
//! A crash in the instant between writing a new chain key and committing the upgrade leaves the
//! first of these states; the message says how to start over in that case.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::filter::unix_ms;
use crate::keys::{self, KeyFiles, Keys, key_error};
use crate::{AuditError, Durability, GENESIS_HASH};

/// How long a connection waits for another connection's lock on the shared
/// file before giving up with "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Version of the `audit_` tables' layout, kept in `audit_meta`.
const SCHEMA_VERSION: &str = "3";

/// The layout before keyed chains (version 1).
const LEGACY_VERSION: &str = "1";

/// The keyed layout before records kept their steps (version 2).
const KEYED_VERSION: &str = "2";

/// The tables of version 1, which version 2 extends.
const VERSION_1_TABLES: &str = "
CREATE TABLE IF NOT EXISTS audit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_records (
    seq             INTEGER PRIMARY KEY,
    time_ms         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    actor_user      TEXT,
    actor_workspace TEXT,
    actor_session   TEXT,
    actor_channel   TEXT,
    plugin          TEXT,
    plugin_version  TEXT,
    capability      TEXT,
    decision        TEXT,
    rule            TEXT NOT NULL,
    call_id         TEXT,
    duration_us     INTEGER,
    outcome         TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
) STRICT;
-- Only time_ms is indexed: it grows with seq, so new entries land on the
-- last index page. An index on call_id or plugin would put each new record
-- on a different page, multiplying the pages every commit must write and
-- fsync (measured: about 7x lower group-commit throughput); filters on those
-- columns scan instead, which suits an occasional administrative query.
CREATE INDEX IF NOT EXISTS audit_records_time_ms ON audit_records (time_ms);
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;
";

/// What version 2 adds (besides `audit_head.mac`).
const VERSION_2_TABLES: &str = "
CREATE TABLE IF NOT EXISTS audit_chain (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    keyed_from  INTEGER NOT NULL,
    legacy_head TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    mac         TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    head      TEXT NOT NULL,
    time_ms   INTEGER NOT NULL,
    signature TEXT NOT NULL
) STRICT;
";

/// Creates the database file empty, readable and writable by its owner only, unless it
/// exists: SQLite would create it with the umask's mode, and its `-wal` and `-shm` files take
/// the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A missing directory: SQLite's own open error names it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The writer's connection (WAL, `synchronous` from `durability`), with the tables created or
/// upgraded, and the log's keys.
///
/// # Errors
///
/// [`AuditError::Open`] if the file cannot be opened or the tables created,
/// [`AuditError::Unusable`] if WAL cannot be enabled or the tables were made
/// by a newer version or cannot be upgraded, [`AuditError::Key`] if a key is
/// missing, damaged or does not fit the log (see the [module docs](self)).
pub(crate) fn open_writer(
    path: &Path,
    key_files: &KeyFiles,
    durability: Durability,
) -> Result<(Connection, Keys), AuditError> {
    let open_err = |cause| AuditError::Open {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    create_private(path).map_err(|e| AuditError::Unusable {
        path: path.to_owned(),
        reason: format!("cannot create the database file: {e}"),
    })?;
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: format!("write-ahead logging is unavailable (journal mode stays `{mode}`)"),
        });
    }
    // FULL makes every commit fsync the WAL, so an acknowledged record
    // survives a power cut, not just a process crash. NORMAL in WAL mode
    // fsyncs only at checkpoints: a commit survives the process, not the machine.
    let synchronous = match durability {
        Durability::Disk => "FULL",
        Durability::Process => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(open_err)?;

    // The write lock is held from here to the commit, so the keys are read or created by one
    // process at a time, and a second process opening the same new log sees the first one's.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let has_meta = table_exists(&tx, "audit_meta").map_err(open_err)?;
    let version: Option<String> = if has_meta {
        tx.query_row(
            "SELECT value FROM audit_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(open_err)?
    } else {
        None
    };
    let keys = match version.as_deref() {
        None | Some(LEGACY_VERSION) => {
            let keys = upgrade(&tx, path, key_files)?;
            add_steps(&tx, path)?;
            keys
        }
        Some(KEYED_VERSION) => {
            let keys = load_keys(&tx, path, key_files)?;
            add_steps(&tx, path)?;
            keys
        }
        Some(SCHEMA_VERSION) => load_keys(&tx, path, key_files)?,
        Some(other) => {
            return Err(AuditError::Unusable {
                path: path.to_owned(),
                reason: format!(
                    "audit tables have schema version `{}`, this build knows `{SCHEMA_VERSION}`",
                    other.escape_debug()
                ),
            });
        }
    };
    tx.commit().map_err(open_err)?;
    Ok((conn, keys))
}

/// A connection for queries, export and verify; it refuses to write.
///
/// # Errors
///
/// [`AuditError::Open`] if the file cannot be opened.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, AuditError> {
    let open_err = |cause| AuditError::Open {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    Ok(conn)
}

/// Version 1 (or nothing) to version 2: see the [module docs](self). [`add_steps`] then
/// takes it to the current version.
fn upgrade(tx: &Transaction<'_>, path: &Path, key_files: &KeyFiles) -> Result<Keys, AuditError> {
    let open_err = |cause| AuditError::Open {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    if key_files.chain().exists() {
        let dir = key_files
            .chain()
            .parent()
            .map_or_else(String::new, |d| d.display().to_string());
        return Err(key_error(
            key_files.chain(),
            format!(
                "exists, but {} holds no keyed audit log: the log was deleted, replaced or \
                 rewritten without its keys. Restore the database from a copy; to start a new \
                 log instead (also after a crash during the very first open), move the key \
                 files in {dir} aside",
                path.display()
            ),
        ));
    }
    tx.execute_batch(VERSION_1_TABLES).map_err(open_err)?;
    let head: Option<(i64, String)> = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(open_err)?;
    let has_records: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM audit_records)", [], |row| {
            row.get(0)
        })
        .map_err(open_err)?;
    let (head_seq, head_hash) = match head {
        Some((seq, hash)) => (seq, hash),
        None if !has_records => (0, GENESIS_HASH.to_owned()),
        None => {
            return Err(AuditError::Unusable {
                path: path.to_owned(),
                reason: "cannot upgrade the audit log to a keyed chain: its chain head row \
                         (audit_head) is missing, so deleted records could not be ruled out"
                    .to_owned(),
            });
        }
    };
    let head_seq = u64::try_from(head_seq).map_err(|_| AuditError::Unusable {
        path: path.to_owned(),
        reason: format!(
            "cannot upgrade the audit log: its chain head's sequence number {head_seq} is negative"
        ),
    })?;

    // The checkpoint key first: the chain key's existence is what says a log was keyed, so it
    // is written last, just before the commit.
    let signer = match keys::read_signer(key_files.checkpoint())? {
        Some(signer) => signer,
        None => keys::create_signer(key_files.checkpoint())?,
    };
    let chain = keys::create_chain_key(key_files.chain())?;

    if !column_exists(tx, "audit_head", "mac").map_err(open_err)? {
        tx.execute_batch("ALTER TABLE audit_head ADD COLUMN mac TEXT")
            .map_err(open_err)?;
    }
    tx.execute_batch(VERSION_2_TABLES).map_err(open_err)?;
    let keyed_from = head_seq + 1;
    tx.execute(
        "INSERT INTO audit_chain (id, keyed_from, legacy_head, key_id, mac) VALUES (1, ?1, ?2, ?3, ?4)",
        params![
            crate::store::sql_int(keyed_from),
            head_hash,
            chain.id(),
            chain.marker_mac(keyed_from, &head_hash)
        ],
    )
    .map_err(open_err)?;
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET mac = excluded.mac",
        params![
            crate::store::sql_int(head_seq),
            head_hash,
            chain.head_mac(head_seq, &head_hash)
        ],
    )
    .map_err(open_err)?;
    set_version(tx, KEYED_VERSION).map_err(open_err)?;
    if head_seq > 0 {
        let checkpoint = signer
            .sign(head_seq, &head_hash, unix_ms(SystemTime::now()))
            .map_err(|reason| AuditError::CheckpointFailed {
                path: path.to_owned(),
                reason: reason.to_owned(),
            })?;
        crate::store::insert_checkpoint(tx, &checkpoint).map_err(open_err)?;
        tracing::info!(path = %path.display(), legacy_records = head_seq, "audit log upgraded to a keyed chain; records after {head_seq} are keyed");
    }
    Ok(Keys { chain, signer })
}

/// Version 2 to version 3: see the [module docs](self).
fn add_steps(tx: &Transaction<'_>, path: &Path) -> Result<(), AuditError> {
    let open_err = |cause| AuditError::Open {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    if !column_exists(tx, "audit_records", "steps").map_err(open_err)? {
        tx.execute_batch("ALTER TABLE audit_records ADD COLUMN steps TEXT")
            .map_err(open_err)?;
    }
    set_version(tx, SCHEMA_VERSION).map_err(open_err)?;
    tracing::debug!(path = %path.display(), version = SCHEMA_VERSION, "audit tables upgraded");
    Ok(())
}

fn set_version(tx: &Transaction<'_>, version: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO audit_meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [version],
    )?;
    Ok(())
}

/// A keyed log (version 2 or 3): its keys must exist and be the ones it was written with.
fn load_keys(tx: &Transaction<'_>, path: &Path, key_files: &KeyFiles) -> Result<Keys, AuditError> {
    let open_err = |cause| AuditError::Open {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    let marker = read_marker(tx).map_err(open_err)?;
    let Some(chain) = keys::read_chain_key(key_files.chain())? else {
        let since = marker.as_ref().map_or_else(
            || "its keyed records".to_owned(),
            |m| format!("records from {}", m.keyed_from),
        );
        return Err(key_error(
            key_files.chain(),
            format!(
                "is missing, but {} holds a keyed log ({since} are keyed with it): restore the \
                 key file; a new key could neither verify nor continue the log",
                path.display()
            ),
        ));
    };
    let Some(marker) = marker else {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: "the record of where the keyed chain begins (audit_chain) is missing: \
                     the log was tampered with"
                .to_owned(),
        });
    };
    if !marker.verifies(&chain) {
        if marker.key_id != chain.id() {
            return Err(key_error(
                key_files.chain(),
                format!(
                    "is not the key {} was written with (the log names key {}, the file holds \
                     key {}): restore the right key file",
                    path.display(),
                    marker.key_id.escape_debug(),
                    chain.id()
                ),
            ));
        }
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: "the record of where the keyed chain begins (audit_chain) does not carry \
                     a valid MAC: the log was tampered with"
                .to_owned(),
        });
    }
    let signer = match keys::read_signer(key_files.checkpoint())? {
        Some(signer) => signer,
        None => {
            let stored: i64 = tx
                .query_row("SELECT COUNT(*) FROM audit_checkpoints", [], |row| {
                    row.get(0)
                })
                .map_err(open_err)?;
            if stored > 0 {
                return Err(key_error(
                    key_files.checkpoint(),
                    format!(
                        "is missing, but {stored} checkpoint(s) in {} are signed with it: \
                         restore the key file",
                        path.display()
                    ),
                ));
            }
            keys::create_signer(key_files.checkpoint())?
        }
    };
    Ok(Keys { chain, signer })
}

/// The `audit_chain` row.
#[derive(Debug)]
pub(crate) struct Marker {
    pub keyed_from: u64,
    pub legacy_head: String,
    pub key_id: String,
    pub mac: String,
}

impl Marker {
    /// Whether its MAC verifies under `chain`.
    pub fn verifies(&self, chain: &crate::chain::ChainKey) -> bool {
        chain.marker_mac_matches(self.keyed_from, &self.legacy_head, &self.mac)
    }
}

/// The marker, or `None` if its table or row is missing or its values have the wrong type
/// (either way it proves nothing).
pub(crate) fn read_marker(conn: &Connection) -> rusqlite::Result<Option<Marker>> {
    if !table_exists(conn, "audit_chain")? {
        return Ok(None);
    }
    let row = conn
        .query_row(
            "SELECT keyed_from, legacy_head, key_id, mac FROM audit_chain WHERE id = 1",
            [],
            |row| {
                Ok((
                    row.get::<_, i64>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3),
                ))
            },
        )
        .optional()?;
    Ok(match row {
        Some((Ok(keyed_from), Ok(legacy_head), Ok(key_id), Ok(mac))) => {
            u64::try_from(keyed_from).ok().map(|keyed_from| Marker {
                keyed_from,
                legacy_head,
                key_id,
                mac,
            })
        }
        _ => None,
    })
}

pub(crate) fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
        [table],
        |row| row.get(0),
    )
}

pub(crate) fn column_exists(
    conn: &Connection,
    table: &str,
    column: &str,
) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        [table, column],
        |row| row.get(0),
    )
}
