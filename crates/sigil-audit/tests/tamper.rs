//! Tampering with the file through a second connection, and what verify names.

mod common;

use common::{TestResult, documented_canonical, documented_hash, fill, raw, temp_db};
use rusqlite::Connection;
use sigil_audit::{AuditLog, GENESIS_HASH, Tamper};

/// Replaces row `seq` with fake content and a hash that is correct for that
/// content, as an attacker who knows the scheme would.
fn forge(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE audit_records SET rule = 'nothing to see', decision = 'allow' WHERE seq = ?1",
        [seq],
    )?;
    rehash(conn, seq)
}

/// Recomputes row `seq`'s hash from its stored prev_hash and content.
fn rehash(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    let prev: String = conn.query_row(
        "SELECT prev_hash FROM audit_records WHERE seq = ?1",
        [seq],
        |row| row.get(0),
    )?;
    let hash = documented_hash(&prev, &documented_canonical(conn, seq)?);
    conn.execute(
        "UPDATE audit_records SET hash = ?1 WHERE seq = ?2",
        rusqlite::params![hash, seq],
    )?;
    Ok(())
}

/// Appends a well-formed record 11 after 10 without touching the head.
fn append_behind_the_heads_back(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_records (seq, time_ms, kind, rule, prev_hash, hash) \
         SELECT 11, time_ms, 'decision', 'forged', hash, '' FROM audit_records WHERE seq = 10",
        [],
    )?;
    rehash(conn, 11)
}

/// A change made to the file behind the log's back.
type Mutation = Box<dyn Fn(&Connection) -> rusqlite::Result<()>>;

fn exec(sql: &'static str) -> impl Fn(&Connection) -> rusqlite::Result<()> {
    move |conn| conn.execute_batch(sql)
}

#[test]
fn verify_names_the_first_tampered_record() -> TestResult {
    let cases: Vec<(&str, Mutation, Tamper)> = vec![
        (
            "edit rule",
            Box::new(exec(
                "UPDATE audit_records SET rule = 'allow all' WHERE seq = 5",
            )),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit decision",
            // sample(5) is an allow.
            Box::new(exec(
                "UPDATE audit_records SET decision = 'deny' WHERE seq = 5",
            )),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit capability",
            Box::new(exec(
                "UPDATE audit_records SET capability = 'fs.read:/etc' WHERE seq = 5",
            )),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit time",
            Box::new(exec(
                "UPDATE audit_records SET time_ms = time_ms + 1 WHERE seq = 5",
            )),
            Tamper::Edited { seq: 5 },
        ),
        (
            "clear actor",
            Box::new(exec(
                "UPDATE audit_records SET actor_user = NULL WHERE seq = 5",
            )),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit prev_hash",
            Box::new(exec(
                "UPDATE audit_records SET prev_hash = upper(prev_hash) WHERE seq = 5",
            )),
            Tamper::Edited { seq: 5 },
        ),
        (
            "delete record 5",
            Box::new(exec("DELETE FROM audit_records WHERE seq = 5")),
            Tamper::Deleted {
                seq: 6,
                first_missing: 5,
                last_missing: 5,
            },
        ),
        (
            "delete records 4 to 6",
            Box::new(exec("DELETE FROM audit_records WHERE seq BETWEEN 4 AND 6")),
            Tamper::Deleted {
                seq: 7,
                first_missing: 4,
                last_missing: 6,
            },
        ),
        (
            "delete record 1",
            Box::new(exec("DELETE FROM audit_records WHERE seq = 1")),
            Tamper::Deleted {
                seq: 2,
                first_missing: 1,
                last_missing: 1,
            },
        ),
        (
            "swap records 5 and 6",
            Box::new(exec(
                "UPDATE audit_records SET seq = 1000 WHERE seq = 5;
                 UPDATE audit_records SET seq = 5 WHERE seq = 6;
                 UPDATE audit_records SET seq = 6 WHERE seq = 1000;",
            )),
            Tamper::Reordered {
                seq: 5,
                chained_after: 6,
            },
        ),
        (
            "delete record 5 and renumber the rest",
            Box::new(exec(
                "DELETE FROM audit_records WHERE seq = 5;
                 UPDATE audit_records SET seq = seq - 1 WHERE seq > 5;
                 UPDATE audit_head SET seq = 9;",
            )),
            Tamper::Unlinked { seq: 5 },
        ),
        (
            "delete the last 3 records",
            Box::new(exec("DELETE FROM audit_records WHERE seq > 7")),
            Tamper::TailDeleted { last: 7, head: 10 },
        ),
        (
            "delete every record",
            Box::new(exec("DELETE FROM audit_records")),
            Tamper::TailDeleted { last: 0, head: 10 },
        ),
        (
            "rewrite record 5 with a matching hash",
            Box::new(|conn: &Connection| forge(conn, 5)),
            Tamper::Unlinked { seq: 6 },
        ),
        (
            "rewrite the last record with a matching hash",
            Box::new(|conn: &Connection| forge(conn, 10)),
            Tamper::HeadMismatch { seq: 10 },
        ),
        (
            "append a record behind the head's back",
            Box::new(append_behind_the_heads_back),
            Tamper::BeyondHead { seq: 11, head: 10 },
        ),
        (
            "delete the last 3 records and roll the head back",
            Box::new(exec(
                "DELETE FROM audit_records WHERE seq > 7;
                 UPDATE audit_head SET seq = 7;",
            )),
            Tamper::HeadMismatch { seq: 7 },
        ),
        (
            "delete the head",
            Box::new(exec("DELETE FROM audit_head")),
            Tamper::HeadMissing { last: 10 },
        ),
        (
            "negative sequence number",
            Box::new(exec("UPDATE audit_records SET seq = -3 WHERE seq = 3")),
            Tamper::BadSeq { seq: -3 },
        ),
    ];

    for (name, mutate, expected) in cases {
        let (_dir, path) = temp_db()?;
        fill(&path, 10)?;
        let log = AuditLog::open(&path)?;
        assert_eq!(
            log.verify()?.problem,
            None,
            "case `{name}` before tampering"
        );

        let conn = raw(&path)?;
        mutate(&conn)?;
        drop(conn);

        let report = log.verify()?;
        assert_eq!(report.problem.as_ref(), Some(&expected), "case `{name}`");
        // The same answer from a log opened after the tampering.
        log.close()?;
        let reopened = AuditLog::open(&path)?;
        assert_eq!(
            reopened.verify()?.problem,
            Some(expected),
            "case `{name}` reopened"
        );
    }
    Ok(())
}

#[test]
fn messages_name_the_exact_record() -> TestResult {
    let cases = [
        (
            "UPDATE audit_records SET rule = 'x' WHERE seq = 5",
            "record 5 was edited: its content does not match its hash",
        ),
        (
            "DELETE FROM audit_records WHERE seq = 5",
            "record 6 follows a gap: record 5 was deleted",
        ),
        (
            "DELETE FROM audit_records WHERE seq IN (4, 5)",
            "record 6 follows a gap: records 4..5 were deleted",
        ),
        (
            "UPDATE audit_records SET seq = 1000 WHERE seq = 5;
             UPDATE audit_records SET seq = 5 WHERE seq = 6;
             UPDATE audit_records SET seq = 6 WHERE seq = 1000;",
            "record 5 is out of order: its prev_hash is the hash of record 6",
        ),
        (
            "DELETE FROM audit_records WHERE seq > 7",
            "records after 7 were deleted: the chain head says 10",
        ),
    ];
    for (sql, message) in cases {
        let (_dir, path) = temp_db()?;
        fill(&path, 10)?;
        raw(&path)?.execute_batch(sql)?;
        let log = AuditLog::open(&path)?;
        let problem = log.verify()?.problem.map(|p| p.to_string());
        assert_eq!(problem.as_deref(), Some(message), "after `{sql}`");
    }
    Ok(())
}

#[test]
fn empty_log_verifies() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path)?;
    let report = log.verify()?;
    assert_eq!(report.records, 0);
    assert_eq!(report.problem, None);
    Ok(())
}

#[test]
fn documented_encoding_reproduces_every_stored_hash() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 10)?;
    {
        let log = AuditLog::open(&path)?;
        log.append(sigil_audit::NewRecord::outcome("call-3", "ok").with_duration_us(99))?;
        log.close()?;
    }
    let conn = raw(&path)?;
    let mut prev = GENESIS_HASH.to_owned();
    for seq in 1..=11 {
        let (stored_prev, stored): (String, String) = conn.query_row(
            "SELECT prev_hash, hash FROM audit_records WHERE seq = ?1",
            [seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        assert_eq!(stored_prev, prev, "record {seq}");
        let expected = documented_hash(&prev, &documented_canonical(&conn, seq)?);
        assert_eq!(stored, expected, "record {seq}");
        prev = stored;
    }
    let (head_seq, head_hash): (i64, String) =
        conn.query_row("SELECT seq, hash FROM audit_head", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    assert_eq!((head_seq, head_hash), (11, prev));
    Ok(())
}

#[test]
fn writes_fail_closed_without_a_head() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 3)?;
    raw(&path)?.execute_batch("DELETE FROM audit_head")?;
    let log = AuditLog::open(&path)?;
    match log.append(common::sample(4)) {
        Err(e @ sigil_audit::AuditError::Unusable { .. }) => {
            assert!(e.to_string().contains("audit_head is missing"), "{e}");
        }
        other => return Err(format!("expected a refused write, got {other:?}").into()),
    }
    assert_eq!(log.verify()?.problem, Some(Tamper::HeadMissing { last: 3 }));
    Ok(())
}
