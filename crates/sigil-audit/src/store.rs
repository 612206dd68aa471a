//! The SQLite side: schema, connections, batch inserts and row decoding.
//!
//! Only tables prefixed `audit_` are created, because the file is shared with
//! other parts of Sigil.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row, TransactionBehavior, params, params_from_iter};

use crate::record::{CANONICAL_VERSION, Canonical, GENESIS_HASH, chain_hash};
use crate::{Actor, AuditError, Durability, Filter, NewRecord, Record, RecordKind, Verdict};

/// How long a connection waits for another connection's lock on the shared
/// file before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Version of the `audit_` tables' layout, kept in `audit_meta`.
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('schema_version', '1');
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

/// Every column of `audit_records`, in the order [`RawRow::from_row`] reads them.
pub(crate) const COLUMNS: &str = "seq, time_ms, kind, actor_user, actor_workspace, \
    actor_session, actor_channel, plugin, plugin_version, capability, decision, rule, \
    call_id, duration_us, outcome, prev_hash, hash";

const INSERT: &str = "INSERT INTO audit_records (seq, time_ms, kind, actor_user, \
    actor_workspace, actor_session, actor_channel, plugin, plugin_version, capability, \
    decision, rule, call_id, duration_us, outcome, prev_hash, hash) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

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
        Err(e) => Err(e),
    }
}

/// The writer's connection: WAL, `synchronous` from `durability`, tables created if missing.
///
/// # Errors
///
/// [`AuditError::Open`] if the file cannot be opened or the tables created,
/// [`AuditError::Unusable`] if WAL cannot be enabled or the tables were made
/// by a newer version.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> Result<Connection, AuditError> {
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

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    tx.execute_batch(SCHEMA).map_err(open_err)?;
    let version: String = tx
        .query_row(
            "SELECT value FROM audit_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .map_err(open_err)?;
    if version != SCHEMA_VERSION {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: format!(
                "audit tables have schema version `{version}`, this build knows `{SCHEMA_VERSION}`"
            ),
        });
    }
    // The head row is created together with an empty log only. If it is
    // missing while records exist, recreating it would hide deleted records,
    // so it stays missing: verify reports it and writes fail closed.
    let has_head: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM audit_head)", [], |row| {
            row.get(0)
        })
        .map_err(open_err)?;
    let has_records: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM audit_records)", [], |row| {
            row.get(0)
        })
        .map_err(open_err)?;
    if !has_head && !has_records {
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?1)",
            [GENESIS_HASH],
        )
        .map_err(open_err)?;
    }
    tx.commit().map_err(open_err)?;
    Ok(conn)
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
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    Ok(conn)
}

/// One record waiting to be written: its submit time, content, and the
/// canonical JSON of both (serialised by the submitter, off the writer thread).
#[derive(Debug)]
pub(crate) struct Queued<'a> {
    pub time_ms: i64,
    pub record: &'a NewRecord,
    pub canonical_json: &'a [u8],
}

/// Writes `records` in one transaction, chained after the committed head,
/// and returns the sequence number given to the first.
///
/// The head is read inside the write transaction rather than kept in memory,
/// so after a failed batch the next one continues from what is actually
/// committed, and a second writer on the same file cannot fork the chain.
///
/// # Errors
///
/// [`AuditError::Write`] if anything fails; the transaction is then rolled
/// back and none of `records` is stored. [`AuditError::Unusable`] if the
/// chain head row is missing.
pub(crate) fn write_batch(
    conn: &mut Connection,
    path: &Path,
    records: &[Queued<'_>],
) -> Result<u64, AuditError> {
    let write_err = |cause| AuditError::Write {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    // A rollback that itself failed last time can leave a transaction open;
    // clear it so this batch starts from committed state.
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK").map_err(write_err)?;
    }
    // Dropping `tx` on any early return rolls the batch back.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(write_err)?;
    let head: Option<(i64, String)> = {
        let mut stmt = tx
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
            .map_err(write_err)?;
        let mut rows = stmt.query([]).map_err(write_err)?;
        match rows.next().map_err(write_err)? {
            Some(row) => Some((
                row.get(0).map_err(write_err)?,
                row.get(1).map_err(write_err)?,
            )),
            None => None,
        }
    };
    let Some((head_seq, mut prev_hash)) = head else {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: "the chain head row in audit_head is missing; run verify".to_owned(),
        });
    };
    if !(0..i64::MAX).contains(&head_seq) {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: format!("the chain head's sequence number {head_seq} is out of range"),
        });
    }
    let first = head_seq + 1;
    let mut seq = first;
    {
        let mut insert = tx.prepare_cached(INSERT).map_err(write_err)?;
        for queued in records {
            let record = queued.record;
            let canonical = record.canonical(queued.time_ms)?;
            let hash = chain_hash(&prev_hash, queued.canonical_json);
            insert
                .execute(params![
                    seq,
                    queued.time_ms,
                    canonical.kind,
                    canonical.user,
                    canonical.workspace,
                    canonical.session,
                    canonical.channel,
                    canonical.plugin,
                    canonical.plugin_version,
                    canonical.capability,
                    canonical.decision,
                    canonical.rule,
                    canonical.call_id,
                    canonical.duration_us,
                    canonical.outcome,
                    prev_hash,
                    hash,
                ])
                .map_err(write_err)?;
            prev_hash = hash;
            seq += 1;
        }
    }
    tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")
        .and_then(|mut stmt| stmt.execute(params![seq - 1, prev_hash]))
        .map_err(write_err)?;
    tx.commit().map_err(write_err)?;
    Ok(first.unsigned_abs())
}

/// A stored row as SQLite returned it, before interpretation.
#[derive(Debug)]
pub(crate) struct RawRow {
    pub seq: i64,
    pub time_ms: i64,
    pub kind: String,
    pub user: Option<String>,
    pub workspace: Option<String>,
    pub session: Option<String>,
    pub channel: Option<String>,
    pub plugin: Option<String>,
    pub plugin_version: Option<String>,
    pub capability: Option<String>,
    pub decision: Option<String>,
    pub rule: String,
    pub call_id: Option<String>,
    pub duration_us: Option<i64>,
    pub outcome: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl RawRow {
    /// Reads a row selected with [`COLUMNS`].
    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            seq: row.get(0)?,
            time_ms: row.get(1)?,
            kind: row.get(2)?,
            user: row.get(3)?,
            workspace: row.get(4)?,
            session: row.get(5)?,
            channel: row.get(6)?,
            plugin: row.get(7)?,
            plugin_version: row.get(8)?,
            capability: row.get(9)?,
            decision: row.get(10)?,
            rule: row.get(11)?,
            call_id: row.get(12)?,
            duration_us: row.get(13)?,
            outcome: row.get(14)?,
            prev_hash: row.get(15)?,
            hash: row.get(16)?,
        })
    }

    /// The canonical encoding of exactly what is stored.
    pub fn canonical(&self) -> Canonical<'_> {
        Canonical {
            v: CANONICAL_VERSION,
            time_ms: self.time_ms,
            kind: &self.kind,
            user: self.user.as_deref(),
            workspace: self.workspace.as_deref(),
            session: self.session.as_deref(),
            channel: self.channel.as_deref(),
            plugin: self.plugin.as_deref(),
            plugin_version: self.plugin_version.as_deref(),
            capability: self.capability.as_deref(),
            decision: self.decision.as_deref(),
            rule: &self.rule,
            call_id: self.call_id.as_deref(),
            duration_us: self.duration_us,
            outcome: self.outcome.as_deref(),
        }
    }

    /// Interprets the row as a [`Record`].
    ///
    /// # Errors
    ///
    /// [`AuditError::Corrupt`] naming the column whose value is not valid.
    pub fn into_record(self, path: &Path) -> Result<Record, AuditError> {
        let seq_value = self.seq;
        let corrupt = |column: &'static str, value: String| AuditError::Corrupt {
            path: path.to_owned(),
            seq: u64::try_from(seq_value).unwrap_or(0),
            column,
            value,
        };
        let seq = u64::try_from(self.seq).map_err(|_| corrupt("seq", self.seq.to_string()))?;
        let kind: RecordKind = self
            .kind
            .parse()
            .map_err(|_| corrupt("kind", self.kind.clone()))?;
        let decision = match &self.decision {
            None => None,
            Some(text) => Some(
                text.parse::<Verdict>()
                    .map_err(|_| corrupt("decision", text.clone()))?,
            ),
        };
        let duration_us = match self.duration_us {
            None => None,
            Some(us) => {
                Some(u64::try_from(us).map_err(|_| corrupt("duration_us", us.to_string()))?)
            }
        };
        Ok(Record {
            seq,
            time_ms: self.time_ms,
            record: NewRecord {
                kind,
                actor: Actor {
                    user: self.user,
                    workspace: self.workspace,
                    session: self.session,
                    channel: self.channel,
                },
                plugin: self.plugin,
                plugin_version: self.plugin_version,
                capability: self.capability,
                decision,
                rule: self.rule,
                call_id: self.call_id,
                duration_us,
                outcome: self.outcome,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Calls `visit` with each record matching `filter`, in ascending `seq`
/// order, and returns how many there were.
///
/// # Errors
///
/// [`AuditError::Read`] or [`AuditError::Corrupt`] from reading, or whatever
/// `visit` returns.
pub(crate) fn for_each_record(
    conn: &Connection,
    path: &Path,
    filter: &Filter,
    mut visit: impl FnMut(Record) -> Result<(), AuditError>,
) -> Result<u64, AuditError> {
    let read_err = |cause| AuditError::Read {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    let (tail, values) = filter.to_sql();
    let sql = format!("SELECT {COLUMNS} FROM audit_records{tail}");
    let mut stmt = conn.prepare(&sql).map_err(read_err)?;
    let mut rows = stmt.query(params_from_iter(values)).map_err(read_err)?;
    let mut count = 0u64;
    if filter.limit.is_some() {
        // The limited query returns the newest matches first.
        let mut newest_first = Vec::new();
        while let Some(row) = rows.next().map_err(read_err)? {
            newest_first.push(RawRow::from_row(row).map_err(read_err)?);
        }
        for raw in newest_first.into_iter().rev() {
            visit(raw.into_record(path)?)?;
            count += 1;
        }
    } else {
        while let Some(row) = rows.next().map_err(read_err)? {
            visit(RawRow::from_row(row).map_err(read_err)?.into_record(path)?)?;
            count += 1;
        }
    }
    Ok(count)
}
