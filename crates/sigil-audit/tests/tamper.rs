//! Tampering with the file through a second connection, and what verify names.
//!
//! Each case is an attacker with write access to the database; those marked
//! "with the key" have also read the chain key file.

mod common;

use common::{
    Rule, TestResult, chain_key, documented_canonical, documented_head_mac, documented_mac, fill,
    raw, rechain, temp_db,
};
use rusqlite::Connection;
use sigil_audit::{AuditLog, GENESIS_HASH, Tamper};

/// Replaces row `seq` with fake content and a chain value recomputed by `rule`,
/// as an attacker who knows the scheme would.
fn forge(conn: &Connection, seq: i64, rule: Rule<'_>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE audit_records SET rule = 'nothing to see', decision = 'allow' WHERE seq = ?1",
        [seq],
    )?;
    rehash(conn, seq, rule)
}

/// Recomputes row `seq`'s chain value from its stored prev_hash and content.
fn rehash(conn: &Connection, seq: i64, rule: Rule<'_>) -> rusqlite::Result<()> {
    let prev: String = conn.query_row(
        "SELECT prev_hash FROM audit_records WHERE seq = ?1",
        [seq],
        |row| row.get(0),
    )?;
    let hash = rule.value(&prev, &documented_canonical(conn, seq)?);
    conn.execute(
        "UPDATE audit_records SET hash = ?1 WHERE seq = ?2",
        rusqlite::params![hash, seq],
    )?;
    Ok(())
}

/// Appends a well-formed record 11 after 10 without touching the head.
fn append_behind_the_heads_back(conn: &Connection, rule: Rule<'_>) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_records (seq, time_ms, kind, rule, prev_hash, hash) \
         SELECT 11, time_ms, 'decision', 'forged', hash, '' FROM audit_records WHERE seq = 10",
        [],
    )?;
    rehash(conn, 11, rule)
}

/// Deletes records after 7 and points the head at record 7, with a head MAC made by `rule`
/// (the old MAC stays without a key).
fn truncate_to_7(conn: &Connection, rule: Rule<'_>) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM audit_records WHERE seq > 7", [])?;
    let hash: String =
        conn.query_row("SELECT hash FROM audit_records WHERE seq = 7", [], |row| {
            row.get(0)
        })?;
    conn.execute(
        "UPDATE audit_head SET seq = 7, hash = ?1",
        rusqlite::params![hash],
    )?;
    if let Rule::Keyed(key) = rule {
        conn.execute(
            "UPDATE audit_head SET mac = ?1",
            rusqlite::params![documented_head_mac(key, 7, &hash)],
        )?;
    }
    Ok(())
}

/// A change made to the file behind the log's back; the second argument is the chain key,
/// for the cases whose attacker has read it.
type Mutation = Box<dyn Fn(&Connection, &[u8]) -> rusqlite::Result<()>>;

fn exec(sql: &'static str) -> Mutation {
    Box::new(move |conn: &Connection, _: &[u8]| conn.execute_batch(sql))
}

#[test]
fn verify_names_the_first_tampered_record() -> TestResult {
    let cases: Vec<(&str, Mutation, Tamper)> = vec![
        (
            "edit rule",
            exec("UPDATE audit_records SET rule = 'allow all' WHERE seq = 5"),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit decision",
            // sample(5) is an allow.
            exec("UPDATE audit_records SET decision = 'deny' WHERE seq = 5"),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit capability",
            exec("UPDATE audit_records SET capability = 'fs.read:/etc' WHERE seq = 5"),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit time",
            exec("UPDATE audit_records SET time_ms = time_ms + 1 WHERE seq = 5"),
            Tamper::Edited { seq: 5 },
        ),
        (
            "clear actor",
            exec("UPDATE audit_records SET actor_user = NULL WHERE seq = 5"),
            Tamper::Edited { seq: 5 },
        ),
        (
            "edit prev_hash",
            exec("UPDATE audit_records SET prev_hash = upper(prev_hash) WHERE seq = 5"),
            Tamper::Edited { seq: 5 },
        ),
        (
            "delete record 5",
            exec("DELETE FROM audit_records WHERE seq = 5"),
            Tamper::Deleted {
                seq: 6,
                first_missing: 5,
                last_missing: 5,
            },
        ),
        (
            "delete records 4 to 6",
            exec("DELETE FROM audit_records WHERE seq BETWEEN 4 AND 6"),
            Tamper::Deleted {
                seq: 7,
                first_missing: 4,
                last_missing: 6,
            },
        ),
        (
            "delete record 1",
            exec("DELETE FROM audit_records WHERE seq = 1"),
            Tamper::Deleted {
                seq: 2,
                first_missing: 1,
                last_missing: 1,
            },
        ),
        (
            "swap records 5 and 6",
            exec(
                "UPDATE audit_records SET seq = 1000 WHERE seq = 5;
                 UPDATE audit_records SET seq = 5 WHERE seq = 6;
                 UPDATE audit_records SET seq = 6 WHERE seq = 1000;",
            ),
            Tamper::Reordered {
                seq: 5,
                chained_after: 6,
            },
        ),
        (
            "delete record 5 and renumber the rest",
            exec(
                "DELETE FROM audit_records WHERE seq = 5;
                 UPDATE audit_records SET seq = seq - 1 WHERE seq > 5;
                 UPDATE audit_head SET seq = 9;",
            ),
            Tamper::Unlinked { seq: 5 },
        ),
        (
            "delete the last 3 records",
            exec("DELETE FROM audit_records WHERE seq > 7"),
            Tamper::TailDeleted { last: 7, head: 10 },
        ),
        (
            "delete every record",
            exec("DELETE FROM audit_records"),
            Tamper::TailDeleted { last: 0, head: 10 },
        ),
        (
            "rewrite record 5 with a hash recomputed by the unkeyed rule",
            Box::new(|conn: &Connection, _: &[u8]| forge(conn, 5, Rule::Unkeyed)),
            Tamper::Edited { seq: 5 },
        ),
        (
            "rewrite record 5 and every later one by the unkeyed rule",
            Box::new(|conn: &Connection, _: &[u8]| {
                forge(conn, 5, Rule::Unkeyed)?;
                rechain(conn, 5, Rule::Unkeyed)
            }),
            Tamper::Edited { seq: 5 },
        ),
        (
            "rewrite record 5 with the key",
            Box::new(|conn: &Connection, key: &[u8]| forge(conn, 5, Rule::Keyed(key))),
            Tamper::Unlinked { seq: 6 },
        ),
        (
            "rewrite the last record with the key",
            Box::new(|conn: &Connection, key: &[u8]| forge(conn, 10, Rule::Keyed(key))),
            Tamper::HeadMismatch { seq: 10 },
        ),
        (
            "rewrite record 5, every later one and the head with the key",
            Box::new(|conn: &Connection, key: &[u8]| {
                forge(conn, 5, Rule::Keyed(key))?;
                rechain(conn, 5, Rule::Keyed(key))
            }),
            // The checkpoint signed when the log was closed after record 10 no longer matches.
            Tamper::CheckpointMismatch { seq: 10, since: 0 },
        ),
        (
            "append a record behind the head's back by the unkeyed rule",
            Box::new(|conn: &Connection, _: &[u8]| {
                append_behind_the_heads_back(conn, Rule::Unkeyed)
            }),
            Tamper::Edited { seq: 11 },
        ),
        (
            "append a record behind the head's back with the key",
            Box::new(|conn: &Connection, key: &[u8]| {
                append_behind_the_heads_back(conn, Rule::Keyed(key))
            }),
            Tamper::BeyondHead { seq: 11, head: 10 },
        ),
        (
            "delete the last 3 records and roll the head's number back",
            exec(
                "DELETE FROM audit_records WHERE seq > 7;
                 UPDATE audit_head SET seq = 7;",
            ),
            Tamper::HeadForged { seq: 7 },
        ),
        (
            "delete the last 3 records and point the head at record 7",
            Box::new(|conn: &Connection, _: &[u8]| truncate_to_7(conn, Rule::Unkeyed)),
            Tamper::HeadForged { seq: 7 },
        ),
        (
            "delete the last 3 records and point the head at record 7 with the key",
            Box::new(|conn: &Connection, key: &[u8]| truncate_to_7(conn, Rule::Keyed(key))),
            Tamper::CheckpointBeyondLog { seq: 10, last: 7 },
        ),
        (
            "delete every record and reset the head",
            Box::new(|conn: &Connection, _: &[u8]| {
                conn.execute_batch("DELETE FROM audit_records")?;
                conn.execute("UPDATE audit_head SET seq = 0, hash = ?1", [GENESIS_HASH])
                    .map(drop)
            }),
            Tamper::HeadForged { seq: 0 },
        ),
        (
            "delete the head",
            exec("DELETE FROM audit_head"),
            Tamper::HeadMissing { last: 10 },
        ),
        (
            "negative sequence number",
            exec("UPDATE audit_records SET seq = -3 WHERE seq = 3"),
            Tamper::BadSeq { seq: -3 },
        ),
        (
            "rewrite the stored checkpoint's head",
            exec("UPDATE audit_checkpoints SET head = upper(head)"),
            Tamper::CheckpointForged { seq: 10 },
        ),
        (
            "replace the stored checkpoint's signature",
            exec("UPDATE audit_checkpoints SET signature = 'untrusted comment: x'"),
            Tamper::CheckpointForged { seq: 10 },
        ),
    ];

    for (name, mutate, expected) in cases {
        let (_dir, path) = temp_db()?;
        fill(&path, 10)?;
        let log = AuditLog::open(&path, &common::keys(&path))?;
        assert_eq!(
            log.verify()?.problem,
            None,
            "case `{name}` before tampering"
        );

        let conn = raw(&path)?;
        mutate(&conn, &chain_key(&path)?)?;
        drop(conn);

        let report = log.verify()?;
        assert_eq!(report.problem.as_ref(), Some(&expected), "case `{name}`");
        // The same answer from a log opened after the tampering.
        log.close()?;
        let reopened = AuditLog::open(&path, &common::keys(&path))?;
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
        let log = AuditLog::open(&path, &common::keys(&path))?;
        let problem = log.verify()?.problem.map(|p| p.to_string());
        assert_eq!(problem.as_deref(), Some(message), "after `{sql}`");
    }
    Ok(())
}

#[test]
fn empty_log_verifies() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    let report = log.verify()?;
    assert_eq!(report.records, 0);
    assert_eq!(report.problem, None);
    Ok(())
}

#[test]
fn documented_encoding_reproduces_every_stored_chain_value() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 10)?;
    {
        let log = AuditLog::open(&path, &common::keys(&path))?;
        log.append(sigil_audit::NewRecord::outcome("call-3", "ok").with_duration_us(99))?;
        let mut with_steps = sigil_audit::NewRecord::outcome("call-4", "error: \"denied\"");
        with_steps.steps = vec![
            sigil_audit::CallStep::ok("authorise"),
            sigil_audit::CallStep::failed("invoke", "net.connect:\u{e9}x\n"),
        ];
        log.append(with_steps)?;
        log.close()?;
    }
    let key = chain_key(&path)?;
    assert_eq!(key.len(), 32);
    let conn = raw(&path)?;
    let mut prev = GENESIS_HASH.to_owned();
    for seq in 1..=12 {
        let (stored_prev, stored): (String, String) = conn.query_row(
            "SELECT prev_hash, hash FROM audit_records WHERE seq = ?1",
            [seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        assert_eq!(stored_prev, prev, "record {seq}");
        let expected = documented_mac(&key, &prev, &documented_canonical(&conn, seq)?);
        assert_eq!(stored, expected, "record {seq}");
        prev = stored;
    }
    let (head_seq, head_hash, head_mac): (i64, String, String) =
        conn.query_row("SELECT seq, hash, mac FROM audit_head", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    assert_eq!((head_seq, &head_hash), (12, &prev));
    assert_eq!(head_mac, documented_head_mac(&key, 12, &prev));
    Ok(())
}

#[test]
fn writes_fail_closed_without_a_head() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 3)?;
    raw(&path)?.execute_batch("DELETE FROM audit_head")?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    match log.append(common::sample(4)) {
        Err(e @ sigil_audit::AuditError::Unusable { .. }) => {
            assert!(e.to_string().contains("audit_head is missing"), "{e}");
        }
        other => return Err(format!("expected a refused write, got {other:?}").into()),
    }
    assert_eq!(log.verify()?.problem, Some(Tamper::HeadMissing { last: 3 }));
    Ok(())
}
