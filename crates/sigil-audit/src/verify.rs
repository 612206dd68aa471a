//! Walking the chain and naming the first record that breaks it, then checking
//! the chain head and the signed checkpoints against it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use crate::AuditError;
use crate::chain::legacy_hash;
use crate::checkpoint::{CHECKPOINT_EVERY, Checkpoint};
use crate::keys::Keys;
use crate::record::GENESIS_HASH;
use crate::schema::{column_exists, read_marker, table_exists};
use crate::store::{COLUMNS, RawRow, StoredCheckpoint};

/// The result of [`AuditLog::verify`](crate::AuditLog::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records the log holds.
    pub records: u64,
    /// The first problem found, or `None` if the chain is intact.
    pub problem: Option<Tamper>,
}

impl VerifyReport {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// The first place where the stored log disagrees with its own chain.
///
/// First the marker saying where the keyed chain begins must carry a valid
/// MAC. Then records are checked in `seq` order; for each, its content against
/// its chain value (keyed, or unkeyed before the marker), then its number
/// against the previous one, then its `prev_hash` against the previous
/// record's chain value. Then the newest record is checked against the chain
/// head, which is updated (and MACed) in the same transaction as every write.
/// Last, each stored checkpoint must be signed by the log's checkpoint key and
/// match the chain value at its record, and a periodic checkpoint must exist
/// at every multiple of [`CHECKPOINT_EVERY`] the keyed chain has reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// The record's stored content does not hash to its stored hash.
    Edited {
        /// The edited record.
        seq: u64,
    },
    /// Records numbered `first_missing..=last_missing` are gone; `seq` is the
    /// first record after them.
    Deleted {
        /// The first record after the gap.
        seq: u64,
        /// The first missing number.
        first_missing: u64,
        /// The last missing number.
        last_missing: u64,
    },
    /// The record's `prev_hash` is the hash of another record in the log, so
    /// the records were moved around.
    Reordered {
        /// The record in the wrong place.
        seq: u64,
        /// The record its `prev_hash` points to.
        chained_after: u64,
    },
    /// The record's `prev_hash` matches no record in the log: the record
    /// before it was replaced (with a recomputed hash), or records before it
    /// were deleted and the rest renumbered.
    Unlinked {
        /// The record whose link is broken.
        seq: u64,
    },
    /// The newest records were deleted: the log ends at `last`, the head says `head`.
    TailDeleted {
        /// The last record present (0 if none).
        last: u64,
        /// The last record according to the chain head.
        head: u64,
    },
    /// Records exist past the chain head, so they were added outside the
    /// log, or the head was rolled back.
    BeyondHead {
        /// The first record past the head.
        seq: u64,
        /// The last record according to the chain head.
        head: u64,
    },
    /// The newest record's number matches the head but its hash does not.
    HeadMismatch {
        /// The newest record.
        seq: u64,
    },
    /// The chain head row is gone, so deletion of the newest records cannot be ruled out.
    HeadMissing {
        /// The last record present.
        last: u64,
    },
    /// A record carries a sequence number the log never assigns (zero or negative).
    BadSeq {
        /// The stored number.
        seq: i64,
    },
    /// The record of where the keyed chain begins is missing or its MAC does not verify:
    /// the log was rewritten to look like one from before keyed chains, or replaced.
    MarkerInvalid,
    /// The records before the keyed chain no longer end at the chain value the keyed chain
    /// continues from: one or more of them were rewritten (with their unkeyed hashes redone).
    LegacyRewritten {
        /// The last record under the unkeyed rule.
        last: u64,
    },
    /// The chain head's MAC does not verify: the head was rewritten, typically rolled back
    /// after deleting the newest records.
    HeadForged {
        /// The sequence number the head claims.
        seq: u64,
    },
    /// A stored checkpoint is not signed by this log's checkpoint key.
    CheckpointForged {
        /// The record it claims to cover.
        seq: u64,
    },
    /// A signed checkpoint names a chain value the log no longer has at that record: records
    /// after `since` up to `seq` were rewritten after it was signed.
    CheckpointMismatch {
        /// The checkpoint's record.
        seq: u64,
        /// The newest earlier checkpoint that still matches (0 if none).
        since: u64,
    },
    /// A signed checkpoint covers records the log no longer has: the newest were deleted.
    CheckpointBeyondLog {
        /// The checkpoint's record.
        seq: u64,
        /// The last record present (0 if none).
        last: u64,
    },
    /// The periodic checkpoint at a multiple of [`CHECKPOINT_EVERY`] is gone.
    CheckpointMissing {
        /// The multiple.
        seq: u64,
    },
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tamper::Edited { seq } => write!(
                f,
                "record {seq} was edited: its content does not match its hash"
            ),
            Tamper::Deleted {
                seq,
                first_missing,
                last_missing,
            } if first_missing == last_missing => write!(
                f,
                "record {seq} follows a gap: record {first_missing} was deleted"
            ),
            Tamper::Deleted {
                seq,
                first_missing,
                last_missing,
            } => write!(
                f,
                "record {seq} follows a gap: records {first_missing}..{last_missing} were deleted"
            ),
            Tamper::Reordered { seq, chained_after } => write!(
                f,
                "record {seq} is out of order: its prev_hash is the hash of record {chained_after}"
            ),
            Tamper::Unlinked { seq } => write!(
                f,
                "record {seq} does not link to the record before it: that record was replaced, \
                 or records before it were deleted"
            ),
            Tamper::TailDeleted { last, head } => write!(
                f,
                "records after {last} were deleted: the chain head says {head}"
            ),
            Tamper::BeyondHead { seq, head } => write!(
                f,
                "record {seq} lies beyond the chain head, which ends at {head}: \
                 it was added outside the log or the head was rolled back"
            ),
            Tamper::HeadMismatch { seq } => write!(
                f,
                "record {seq} does not match the chain head's hash: it or the head was rewritten"
            ),
            Tamper::HeadMissing { last } => write!(
                f,
                "the chain head is missing: records after {last} may have been deleted"
            ),
            Tamper::BadSeq { seq } => write!(
                f,
                "a record has sequence number {seq}, which the log never assigns"
            ),
            Tamper::MarkerInvalid => write!(
                f,
                "the record of where the keyed chain begins is missing or does not carry a \
                 valid MAC: the log was rewritten without the chain key, or replaced"
            ),
            Tamper::LegacyRewritten { last } => write!(
                f,
                "records up to {last} (from before the log was keyed) were rewritten: they no \
                 longer end at the chain value the keyed records continue from"
            ),
            Tamper::HeadForged { seq } => write!(
                f,
                "the chain head (record {seq}) does not carry a valid MAC: it was rewritten, \
                 and the newest records may have been deleted"
            ),
            Tamper::CheckpointForged { seq } => write!(
                f,
                "the checkpoint at record {seq} is not signed by this log's checkpoint key"
            ),
            Tamper::CheckpointMismatch { seq, since } => write!(
                f,
                "records {}..{seq} were rewritten after the checkpoint at record {seq} was \
                 signed: the chain no longer yields its head",
                since + 1
            ),
            Tamper::CheckpointBeyondLog { seq, last } => write!(
                f,
                "records after {last} were deleted: a signed checkpoint covers records up to {seq}"
            ),
            Tamper::CheckpointMissing { seq } => {
                write!(f, "the periodic checkpoint at record {seq} was deleted")
            }
        }
    }
}

/// Walks every record in one read transaction, so concurrent writes cannot
/// make the rows, the head and the checkpoints disagree; then checks
/// `external`, a checkpoint kept elsewhere, if given (its signature and key
/// are the caller's to check first).
///
/// # Errors
///
/// [`AuditError::Read`] if SQLite fails.
pub(crate) fn verify(
    conn: &mut Connection,
    path: &Path,
    keys: &Keys,
    external: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    let read_err = |cause| AuditError::Read {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    let tx = conn.transaction().map_err(read_err)?;
    let total: i64 = tx
        .query_row("SELECT COUNT(*) FROM audit_records", [], |row| row.get(0))
        .map_err(read_err)?;
    let report = |problem| VerifyReport {
        records: total.unsigned_abs(),
        problem,
    };
    let Some(marker) = read_marker(&tx)
        .map_err(read_err)?
        .filter(|m| m.verifies(&keys.chain))
    else {
        return Ok(report(Some(Tamper::MarkerInvalid)));
    };
    let head_sql = if column_exists(&tx, "audit_head", "mac").map_err(read_err)? {
        "SELECT seq, hash, mac FROM audit_head WHERE id = 1"
    } else {
        "SELECT seq, hash, NULL FROM audit_head WHERE id = 1"
    };
    let head: Option<(i64, String, Option<String>)> = tx
        .query_row(head_sql, [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .map_err(read_err)?;
    let stored = if table_exists(&tx, "audit_checkpoints").map_err(read_err)? {
        crate::store::checkpoints(&tx, keys.signer.public_key()).map_err(read_err)?
    } else {
        Vec::new()
    };

    // The chain values the checkpoints need, filled in during the walk.
    let mut probes: BTreeMap<u64, Option<String>> = stored
        .iter()
        .filter_map(|c| match c {
            StoredCheckpoint::Readable(c) => Some(c.seq),
            StoredCheckpoint::Damaged(_) => None,
        })
        .chain(external.map(|c| c.seq))
        .map(|seq| (seq, None))
        .collect();
    if let Some(genesis) = probes.get_mut(&0) {
        *genesis = Some(GENESIS_HASH.to_owned());
    }

    let mut stmt = tx
        .prepare(&format!("SELECT {COLUMNS} FROM audit_records ORDER BY seq"))
        .map_err(read_err)?;
    let mut rows = stmt.query([]).map_err(read_err)?;
    let mut last: Option<(u64, String)> = None;
    let mut buf = Vec::new();
    while let Some(row) = rows.next().map_err(read_err)? {
        let raw_seq: i64 = row.get(0).map_err(read_err)?;
        let Some(seq) = u64::try_from(raw_seq).ok().filter(|s| *s > 0) else {
            return Ok(report(Some(Tamper::BadSeq { seq: raw_seq })));
        };
        let raw = match RawRow::from_row(row) {
            Ok(raw) => raw,
            // A value of the wrong type can only get there by editing.
            Err(e) if is_type_error(&e) => return Ok(report(Some(Tamper::Edited { seq }))),
            Err(e) => return Err(read_err(e)),
        };
        let Some(canonical) = raw.canonical() else {
            // Steps the log never writes can only get there by editing.
            return Ok(report(Some(Tamper::Edited { seq })));
        };
        canonical.write_json(&mut buf);
        let intact = if seq < marker.keyed_from {
            legacy_hash(&raw.prev_hash, &buf) == raw.hash
        } else {
            keys.chain
                .record_mac_matches(&raw.prev_hash, &buf, &raw.hash)
        };
        if !intact {
            return Ok(report(Some(Tamper::Edited { seq })));
        }
        let (expected_seq, expected_prev) = match &last {
            None => (1, GENESIS_HASH),
            Some((last_seq, last_hash)) => (last_seq + 1, last_hash.as_str()),
        };
        if seq != expected_seq {
            return Ok(report(Some(Tamper::Deleted {
                seq,
                first_missing: expected_seq,
                last_missing: seq - 1,
            })));
        }
        if raw.prev_hash != expected_prev {
            let other: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM audit_records WHERE hash = ?1 AND seq <> ?2 \
                     ORDER BY seq LIMIT 1",
                    rusqlite::params![raw.prev_hash, raw_seq],
                    |row| row.get(0),
                )
                .optional()
                .map_err(read_err)?;
            let problem = match other.and_then(|s| u64::try_from(s).ok()) {
                Some(chained_after) => Tamper::Reordered { seq, chained_after },
                None => Tamper::Unlinked { seq },
            };
            return Ok(report(Some(problem)));
        }
        if seq + 1 == marker.keyed_from && raw.hash != marker.legacy_head {
            return Ok(report(Some(Tamper::LegacyRewritten { last: seq })));
        }
        if let Some(probe) = probes.get_mut(&seq) {
            *probe = Some(raw.hash.clone());
        }
        last = Some((seq, raw.hash));
    }

    let (last_seq, last_hash) = match &last {
        None => (0, GENESIS_HASH),
        Some((seq, hash)) => (*seq, hash.as_str()),
    };
    let problem = match head {
        None => Some(Tamper::HeadMissing { last: last_seq }),
        Some((head_seq, head_hash, mac)) => match u64::try_from(head_seq) {
            Err(_) => Some(Tamper::HeadMismatch { seq: last_seq }),
            Ok(head) if !mac.is_some_and(|m| keys.chain.head_mac_matches(head, &head_hash, &m)) => {
                Some(Tamper::HeadForged { seq: head })
            }
            Ok(head) if last_seq < head => Some(Tamper::TailDeleted {
                last: last_seq,
                head,
            }),
            Ok(head) if last_seq > head => Some(Tamper::BeyondHead {
                seq: head + 1,
                head,
            }),
            Ok(_) if head_hash != last_hash => Some(Tamper::HeadMismatch { seq: last_seq }),
            Ok(_) => None,
        },
    };
    if problem.is_some() {
        return Ok(report(problem));
    }

    let checked = Checked {
        keys,
        keyed_from: marker.keyed_from,
        last: last_seq,
        probes: &probes,
    };
    let mut verified = Vec::new();
    if let Some(problem) = checked.stored(&stored, &mut verified) {
        return Ok(report(Some(problem)));
    }
    Ok(report(
        external.and_then(|c| checked.external(c, &verified)),
    ))
}

/// The checkpoint checks, once the records and head are known to be consistent.
struct Checked<'a> {
    keys: &'a Keys,
    keyed_from: u64,
    last: u64,
    probes: &'a BTreeMap<u64, Option<String>>,
}

impl Checked<'_> {
    /// The stored checkpoints, and the periodic ones that must exist, in `seq`
    /// order. Fills `verified` with the records of those that match.
    fn stored(&self, stored: &[StoredCheckpoint], verified: &mut Vec<u64>) -> Option<Tamper> {
        // Multiples of CHECKPOINT_EVERY in keyed_from..=last.
        let mut next_periodic =
            self.keyed_from.div_ceil(CHECKPOINT_EVERY).max(1) * CHECKPOINT_EVERY;
        let mut since = 0;
        for entry in stored {
            let seq = match entry {
                StoredCheckpoint::Readable(c) => c.seq,
                StoredCheckpoint::Damaged(raw) => u64::try_from(*raw).unwrap_or(0),
            };
            if next_periodic < seq && next_periodic <= self.last {
                return Some(Tamper::CheckpointMissing { seq: next_periodic });
            }
            if next_periodic == seq {
                next_periodic += CHECKPOINT_EVERY;
            }
            let StoredCheckpoint::Readable(checkpoint) = entry else {
                return Some(Tamper::CheckpointForged { seq });
            };
            if !self.keys.signer.signed(checkpoint) {
                return Some(Tamper::CheckpointForged { seq });
            }
            if let Some(problem) = self.against_chain(checkpoint, since) {
                return Some(problem);
            }
            verified.push(seq);
            since = seq;
        }
        (next_periodic <= self.last).then_some(Tamper::CheckpointMissing { seq: next_periodic })
    }

    /// A checkpoint kept elsewhere; `verified` lists the stored ones that matched.
    fn external(&self, checkpoint: &Checkpoint, verified: &[u64]) -> Option<Tamper> {
        let since = verified
            .iter()
            .copied()
            .filter(|s| *s < checkpoint.seq)
            .max()
            .unwrap_or(0);
        self.against_chain(checkpoint, since)
    }

    fn against_chain(&self, checkpoint: &Checkpoint, since: u64) -> Option<Tamper> {
        if checkpoint.seq > self.last {
            return Some(Tamper::CheckpointBeyondLog {
                seq: checkpoint.seq,
                last: self.last,
            });
        }
        match self.probes.get(&checkpoint.seq) {
            Some(Some(value)) if *value == checkpoint.head => None,
            _ => Some(Tamper::CheckpointMismatch {
                seq: checkpoint.seq,
                since,
            }),
        }
    }
}

fn is_type_error(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_record() {
        let cases = [
            (
                Tamper::Edited { seq: 42 },
                "record 42 was edited: its content does not match its hash",
            ),
            (
                Tamper::Deleted {
                    seq: 43,
                    first_missing: 41,
                    last_missing: 42,
                },
                "record 43 follows a gap: records 41..42 were deleted",
            ),
            (
                Tamper::Deleted {
                    seq: 6,
                    first_missing: 5,
                    last_missing: 5,
                },
                "record 6 follows a gap: record 5 was deleted",
            ),
            (
                Tamper::Reordered {
                    seq: 7,
                    chained_after: 8,
                },
                "record 7 is out of order: its prev_hash is the hash of record 8",
            ),
            (
                Tamper::TailDeleted {
                    last: 99,
                    head: 120,
                },
                "records after 99 were deleted: the chain head says 120",
            ),
        ];
        for (tamper, message) in cases {
            assert_eq!(tamper.to_string(), message);
        }
    }
}
