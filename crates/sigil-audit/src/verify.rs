//! Walking the chain and naming the first record that breaks it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use crate::AuditError;
use crate::record::{GENESIS_HASH, chain_hash};
use crate::store::{COLUMNS, RawRow};

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

/// The first place where the stored log disagrees with its own hash chain.
///
/// Records are checked in `seq` order; for each, its content against its
/// hash, then its number against the previous one, then its `prev_hash`
/// against the previous record's hash. Last, the newest record is checked
/// against the chain head, which is updated in the same transaction as every
/// write.
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
        }
    }
}

/// Walks every record in one read transaction, so concurrent writes cannot
/// make the rows and the head disagree.
///
/// # Errors
///
/// [`AuditError::Read`] if SQLite fails.
pub(crate) fn verify(conn: &mut Connection, path: &Path) -> Result<VerifyReport, AuditError> {
    let read_err = |cause| AuditError::Read {
        path: path.to_owned(),
        cause: Arc::new(cause),
    };
    let tx = conn.transaction().map_err(read_err)?;
    let head: Option<(i64, String)> = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(read_err)?;
    let total: i64 = tx
        .query_row("SELECT COUNT(*) FROM audit_records", [], |row| row.get(0))
        .map_err(read_err)?;
    let report = |problem| VerifyReport {
        records: total.unsigned_abs(),
        problem,
    };

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
        raw.canonical().write_json(&mut buf);
        if chain_hash(&raw.prev_hash, &buf) != raw.hash {
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
        last = Some((seq, raw.hash));
    }

    let (last_seq, last_hash) = match &last {
        None => (0, GENESIS_HASH),
        Some((seq, hash)) => (*seq, hash.as_str()),
    };
    let problem = match head {
        None if last.is_none() => None,
        None => Some(Tamper::HeadMissing { last: last_seq }),
        Some((head_seq, head_hash)) => match u64::try_from(head_seq) {
            Err(_) => Some(Tamper::HeadMismatch { seq: last_seq }),
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
    Ok(report(problem))
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
