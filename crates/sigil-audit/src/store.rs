//! The SQLite side: batch inserts, checkpoints and row decoding. The tables and
//! the connections are set up in [`crate::schema`].

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use crate::checkpoint::{CHECKPOINT_EVERY, Checkpoint};
use crate::filter::unix_ms;
use crate::keys::Keys;
use crate::record::{CANONICAL_VERSION, Canonical};
use crate::{Actor, AuditError, CallStep, Filter, NewRecord, Record, RecordKind, Verdict};

/// Every column of `audit_records`, in the order [`RawRow::from_row`] reads them.
pub(crate) const COLUMNS: &str = "seq, time_ms, kind, actor_user, actor_workspace, \
    actor_session, actor_channel, plugin, plugin_version, capability, decision, rule, \
    call_id, duration_us, outcome, prev_hash, hash, steps";

const INSERT: &str = "INSERT INTO audit_records (seq, time_ms, kind, actor_user, \
    actor_workspace, actor_session, actor_channel, plugin, plugin_version, capability, \
    decision, rule, call_id, duration_us, outcome, prev_hash, hash, steps) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// One record waiting to be written: its submit time, content, the canonical
/// JSON of both and its `steps` column (serialised by the submitter, before it
/// queues or commits).
#[derive(Debug)]
pub(crate) struct Queued<'a> {
    pub time_ms: i64,
    pub record: &'a NewRecord,
    pub canonical_json: &'a [u8],
    pub steps_json: Option<&'a str>,
}

/// The `steps` column's value for `steps`: their compact JSON, exactly as the canonical
/// encoding embeds it, or `None` (NULL) when there are none.
///
/// # Errors
///
/// [`AuditError::InvalidRecord`] if they cannot be serialised (plain strings and booleans
/// always can).
pub(crate) fn steps_json(steps: &[CallStep]) -> Result<Option<String>, AuditError> {
    if steps.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(steps)
        .map(Some)
        .map_err(|e| AuditError::InvalidRecord {
            reason: format!("its steps cannot be encoded: {e}"),
        })
}

/// Reads a stored `steps` value back: the steps, if `text` is exactly what [`steps_json`]
/// writes for them; anything else (other JSON, the same steps spelled differently, an empty
/// list) was not written by the log.
fn parse_steps(text: &str) -> Option<Vec<CallStep>> {
    let steps: Vec<CallStep> = serde_json::from_str(text).ok()?;
    match steps_json(&steps) {
        Ok(Some(written)) if written == text => Some(steps),
        _ => None,
    }
}

/// Whether a batch also signs a checkpoint of the head it ends at (someone asked for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignHead {
    /// Only the periodic checkpoints the batch reaches.
    No,
    /// Also a checkpoint of the head after the batch (or the existing one at that record).
    Yes,
}

/// What a committed batch produced.
#[derive(Debug)]
pub(crate) struct Written {
    /// The sequence number given to the batch's first record.
    pub first: u64,
    /// The checkpoint asked for with [`SignHead::Yes`].
    pub checkpoint: Option<Checkpoint>,
}

/// Writes `records` in one transaction, chained after the committed head,
/// with the periodic checkpoints they reach and, with [`SignHead::Yes`], a
/// checkpoint of the new head.
///
/// The head is read inside the write transaction rather than kept in memory,
/// so after a failed batch the next one continues from what is actually
/// committed, and a second writer on the same file cannot fork the chain. Its
/// MAC must verify: chaining on after a head rolled back behind the log's back
/// would give the rollback valid MACs.
///
/// # Errors
///
/// [`AuditError::Write`] if anything fails; the transaction is then rolled
/// back and none of `records` is stored. [`AuditError::Unusable`] if the
/// chain head row is missing or its MAC does not verify,
/// [`AuditError::CheckpointFailed`] if a checkpoint cannot be signed.
pub(crate) fn write_batch(
    conn: &mut Connection,
    path: &Path,
    keys: &Keys,
    records: &[Queued<'_>],
    sign_head: SignHead,
) -> Result<Written, AuditError> {
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
    let (head_seq, mut prev_hash) = read_head(&tx, path, keys)?;
    let first = head_seq + 1;
    let mut seq = first;
    let mut periodic: Vec<(u64, String)> = Vec::new();
    {
        let mut insert = tx.prepare_cached(INSERT).map_err(write_err)?;
        for queued in records {
            let record = queued.record;
            let canonical = record.canonical(queued.time_ms)?;
            let hash = keys.chain.record_mac(&prev_hash, queued.canonical_json);
            insert
                .execute(params![
                    sql_int(seq),
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
                    queued.steps_json,
                ])
                .map_err(write_err)?;
            if seq.is_multiple_of(CHECKPOINT_EVERY) {
                periodic.push((seq, hash.clone()));
            }
            prev_hash = hash;
            seq += 1;
        }
    }
    let last = seq - 1;
    if last != head_seq {
        tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2, mac = ?3 WHERE id = 1")
            .and_then(|mut stmt| {
                stmt.execute(params![
                    sql_int(last),
                    prev_hash,
                    keys.chain.head_mac(last, &prev_hash)
                ])
            })
            .map_err(write_err)?;
    }
    let now = unix_ms(SystemTime::now());
    for (at, head) in &periodic {
        let checkpoint = sign(keys, path, *at, head, now)?;
        insert_checkpoint(&tx, &checkpoint).map_err(write_err)?;
    }
    let checkpoint = match sign_head {
        SignHead::No => None,
        SignHead::Yes => Some(
            match stored_checkpoint(&tx, keys, last).map_err(write_err)? {
                Some(existing) => existing,
                None => {
                    let checkpoint = sign(keys, path, last, &prev_hash, now)?;
                    insert_checkpoint(&tx, &checkpoint).map_err(write_err)?;
                    checkpoint
                }
            },
        ),
    };
    tx.commit().map_err(write_err)?;
    Ok(Written { first, checkpoint })
}

/// Signs a checkpoint of the head if records were added since the newest stored
/// one; for a clean shutdown. Returns it, or `None` if nothing was new.
///
/// # Errors
///
/// As for [`write_batch`].
pub(crate) fn checkpoint_if_behind(
    conn: &mut Connection,
    path: &Path,
    keys: &Keys,
) -> Result<Option<Checkpoint>, AuditError> {
    let write_err = |cause| AuditError::Write {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK").map_err(write_err)?;
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(write_err)?;
    let (head_seq, head_hash) = read_head(&tx, path, keys)?;
    let newest: Option<i64> = tx
        .prepare_cached("SELECT MAX(seq) FROM audit_checkpoints")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(write_err)?;
    let newest = newest.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    if head_seq <= newest {
        return Ok(None);
    }
    let checkpoint = sign(keys, path, head_seq, &head_hash, unix_ms(SystemTime::now()))?;
    insert_checkpoint(&tx, &checkpoint).map_err(write_err)?;
    tx.commit().map_err(write_err)?;
    Ok(Some(checkpoint))
}

/// The committed head, its MAC checked.
fn read_head(conn: &Connection, path: &Path, keys: &Keys) -> Result<(u64, String), AuditError> {
    let write_err = |cause| AuditError::Write {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    let head: Option<(i64, String, Option<String>)> = conn
        .prepare_cached("SELECT seq, hash, mac FROM audit_head WHERE id = 1")
        .and_then(|mut stmt| {
            stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
        })
        .map_err(write_err)?;
    let Some((head_seq, hash, mac)) = head else {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: "the chain head row in audit_head is missing; run verify".to_owned(),
        });
    };
    let Some(seq) = u64::try_from(head_seq)
        .ok()
        .filter(|s| *s < i64::MAX.unsigned_abs())
    else {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: format!("the chain head's sequence number {head_seq} is out of range"),
        });
    };
    if !mac.is_some_and(|mac| keys.chain.head_mac_matches(seq, &hash, &mac)) {
        return Err(AuditError::Unusable {
            path: path.to_owned(),
            reason: "the chain head in audit_head does not carry a valid MAC, so records may \
                     have been deleted behind the log's back; run verify"
                .to_owned(),
        });
    }
    Ok((seq, hash))
}

fn sign(
    keys: &Keys,
    path: &Path,
    seq: u64,
    head: &str,
    time_ms: i64,
) -> Result<Checkpoint, AuditError> {
    keys.signer
        .sign(seq, head, time_ms)
        .map_err(|reason| AuditError::CheckpointFailed {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
}

/// Stores `checkpoint`, keeping an existing one at the same sequence number.
pub(crate) fn insert_checkpoint(
    conn: &Connection,
    checkpoint: &Checkpoint,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (seq, head, time_ms, signature) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (seq) DO NOTHING",
    )?
    .execute(params![
        sql_int(checkpoint.seq),
        checkpoint.head,
        checkpoint.time_ms,
        checkpoint.signature
    ])?;
    Ok(())
}

fn stored_checkpoint(
    conn: &Connection,
    keys: &Keys,
    seq: u64,
) -> rusqlite::Result<Option<Checkpoint>> {
    conn.prepare_cached(
        "SELECT seq, head, time_ms, signature FROM audit_checkpoints WHERE seq = ?1",
    )?
    .query_row([sql_int(seq)], |row| {
        checkpoint_row(row, keys.signer.public_key())
    })
    .optional()
}

/// The stored checkpoints in `seq` order, each naming `public_key` (the log's).
///
/// A row whose values have the wrong types is returned with a sequence number
/// of its own and an empty signature, so verify reports it as forged.
pub(crate) fn checkpoints(
    conn: &Connection,
    public_key: &str,
) -> rusqlite::Result<Vec<StoredCheckpoint>> {
    let mut stmt =
        conn.prepare("SELECT seq, head, time_ms, signature FROM audit_checkpoints ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let raw_seq: rusqlite::types::Value = row.get(0)?;
        out.push(match checkpoint_row(row, public_key) {
            Ok(checkpoint) => StoredCheckpoint::Readable(checkpoint),
            Err(_) => StoredCheckpoint::Damaged(match raw_seq {
                rusqlite::types::Value::Integer(i) => i,
                _ => -1,
            }),
        });
    }
    Ok(out)
}

/// A row of `audit_checkpoints`.
#[derive(Debug)]
pub(crate) enum StoredCheckpoint {
    /// Its values have the right types.
    Readable(Checkpoint),
    /// A value has the wrong type or range; the raw `seq` (-1 if not an integer).
    Damaged(i64),
}

fn checkpoint_row(row: &Row<'_>, public_key: &str) -> rusqlite::Result<Checkpoint> {
    let seq: i64 = row.get(0)?;
    let seq = u64::try_from(seq).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, seq))?;
    Ok(Checkpoint {
        seq,
        head: row.get(1)?,
        time_ms: row.get(2)?,
        public_key: public_key.to_owned(),
        signature: row.get(3)?,
    })
}

/// A sequence number as SQLite stores it. Numbers come from a head checked to be
/// below `i64::MAX`; one past it would saturate and collide, failing its batch.
pub(crate) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
    /// The `steps` column, decoded: none for NULL; `Err` holds stored text that is not
    /// what the log writes for any steps.
    pub steps: Result<Vec<CallStep>, String>,
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
            steps: match row.get::<_, Option<String>>(17)? {
                None => Ok(Vec::new()),
                Some(text) => parse_steps(&text).ok_or(text),
            },
        })
    }

    /// The canonical encoding of exactly what is stored; `None` if the stored steps are not
    /// what the log writes, so no record could have been written with them.
    pub fn canonical(&self) -> Option<Canonical<'_>> {
        let steps = self.steps.as_deref().ok()?;
        Some(Canonical {
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
            steps,
        })
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
        let steps = self.steps.map_err(|text| corrupt("steps", text))?;
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
                steps,
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
