//! A call's steps in their own column: stored, read back, exported, covered by the chain, and
//! added in place to a log of the layout before them (schema version 2).

mod common;

use common::{TestResult, fill, keys, raw, sample, temp_db};
use rusqlite::Connection;
use sigil_audit::{AuditError, AuditLog, AuditSink, CallStep, Filter, NewRecord, Record, Tamper};

/// An outcome record whose call went through three steps, the last one failed.
fn with_steps(call_id: &str) -> NewRecord {
    let mut record = NewRecord::outcome(call_id, "error: invalid output")
        .with_plugin("notes", Some("1.0.0"))
        .with_duration_us(1200);
    record.steps = vec![
        CallStep::ok("authorise"),
        CallStep::ok("invoke"),
        CallStep::failed("output", "schema: `title` is required"),
    ];
    record
}

/// How [`with_steps`]'s steps are stored.
const STORED_STEPS: &str = r#"[{"step":"authorise","ok":true},{"step":"invoke","ok":true},{"step":"output","ok":false,"detail":"schema: `title` is required"}]"#;

/// A closed log of: a record without steps, one with, one without.
fn log_with_steps(path: &std::path::Path) -> Result<(), AuditError> {
    let log = AuditLog::open(path, &keys(path))?;
    log.append(sample(1))?;
    log.append(with_steps("c-2"))?;
    log.append(sample(3))?;
    log.close()
}

fn stored_steps(conn: &Connection) -> rusqlite::Result<Vec<Option<String>>> {
    conn.prepare("SELECT steps FROM audit_records ORDER BY seq")?
        .query_map([], |row| row.get(0))?
        .collect()
}

#[test]
fn a_record_with_steps_round_trips_through_append_query_and_export_and_verifies() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &keys(&path))?;
    assert_eq!(log.append(sample(1))?, 1);
    assert_eq!(log.append(with_steps("c-2"))?, 2);
    assert_eq!(
        log.submit_all(vec![sample(3), with_steps("c-4")]).wait()?,
        3
    );

    let records = log.query(&Filter::default())?;
    let contents: Vec<&NewRecord> = records.iter().map(|r| &r.record).collect();
    assert_eq!(
        contents,
        [
            &sample(1),
            &with_steps("c-2"),
            &sample(3),
            &with_steps("c-4")
        ]
    );

    // Their own column: compact JSON, NULL for a record without steps.
    let stored = stored_steps(&raw(&path)?)?;
    let expected = [None, Some(STORED_STEPS), None, Some(STORED_STEPS)];
    assert_eq!(
        stored.iter().map(Option::as_deref).collect::<Vec<_>>(),
        expected
    );

    // Exported with the record; absent where there are none.
    let mut out = Vec::new();
    assert_eq!(log.export(&Filter::default(), &mut out)?, 4);
    let text = String::from_utf8(out)?;
    let lines = text
        .lines()
        .map(serde_json::from_str::<serde_json::Value>)
        .collect::<Result<Vec<_>, _>>()?;
    assert!(lines[0].get("steps").is_none(), "{}", lines[0]);
    assert_eq!(
        lines[1]["steps"],
        serde_json::from_str::<serde_json::Value>(STORED_STEPS)?
    );
    let parsed = text
        .lines()
        .map(serde_json::from_str::<Record>)
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(parsed, records);

    let report = log.verify()?;
    assert_eq!((report.records, report.problem), (4, None));
    log.close()?;

    let log = AuditLog::open(&path, &keys(&path))?;
    assert_eq!(log.query(&Filter::default())?, records);
    assert!(log.verify()?.is_intact());
    Ok(())
}

#[test]
fn an_edit_of_the_stored_steps_is_found_by_verify() -> TestResult {
    let cases: [(&str, &str, u64); 9] = [
        (
            "a failure's reason changed",
            "UPDATE audit_records SET steps = replace(steps, 'is required', 'was fine') \
             WHERE seq = 2",
            2,
        ),
        (
            "a failed step marked as succeeded",
            "UPDATE audit_records SET steps = replace(steps, '\"ok\":false', '\"ok\":true') \
             WHERE seq = 2",
            2,
        ),
        (
            "the failed step removed",
            "UPDATE audit_records SET steps = \
             '[{\"step\":\"authorise\",\"ok\":true},{\"step\":\"invoke\",\"ok\":true}]' \
             WHERE seq = 2",
            2,
        ),
        (
            "every step removed",
            "UPDATE audit_records SET steps = NULL WHERE seq = 2",
            2,
        ),
        (
            "an empty list in place of the steps",
            "UPDATE audit_records SET steps = '[]' WHERE seq = 2",
            2,
        ),
        (
            "the same steps spelled with spaces",
            "UPDATE audit_records SET steps = replace(steps, ',', ', ') WHERE seq = 2",
            2,
        ),
        (
            "a field the log never writes",
            "UPDATE audit_records SET steps = replace(steps, '\"ok\":true}', \
             '\"ok\":true,\"by\":\"admin\"}') WHERE seq = 2",
            2,
        ),
        (
            "text that is not JSON",
            "UPDATE audit_records SET steps = 'nope' WHERE seq = 2",
            2,
        ),
        (
            "steps given to a record that had none",
            "UPDATE audit_records SET steps = '[{\"step\":\"approve\",\"ok\":true}]' \
             WHERE seq = 1",
            1,
        ),
    ];
    for (what, sql, seq) in cases {
        let (_dir, path) = temp_db()?;
        log_with_steps(&path)?;
        let conn = raw(&path)?;
        let before = stored_steps(&conn)?;
        conn.execute_batch(sql)?;
        assert_ne!(stored_steps(&conn)?, before, "{what}: the edit took");
        drop(conn);

        let log = AuditLog::open(&path, &keys(&path))?;
        let report = log.verify()?;
        assert_eq!(report.problem, Some(Tamper::Edited { seq }), "{what}");
    }
    Ok(())
}

#[test]
fn a_stored_steps_value_the_log_never_writes_is_a_corrupt_record() -> TestResult {
    let (_dir, path) = temp_db()?;
    log_with_steps(&path)?;
    raw(&path)?.execute_batch("UPDATE audit_records SET steps = 'nope' WHERE seq = 2")?;
    let log = AuditLog::open(&path, &keys(&path))?;
    match log.query(&Filter::default()) {
        Err(e @ AuditError::Corrupt { .. }) => {
            assert_eq!(
                e.to_string(),
                format!(
                    "audit database {}: record 2 has invalid steps `nope`",
                    path.display()
                )
            );
        }
        other => return Err(format!("expected a corrupt record, got {other:?}").into()),
    }
    Ok(())
}

/// The columns of `audit_records` in schema version 2, in order.
const VERSION_2_COLUMNS: [&str; 17] = [
    "seq",
    "time_ms",
    "kind",
    "actor_user",
    "actor_workspace",
    "actor_session",
    "actor_channel",
    "plugin",
    "plugin_version",
    "capability",
    "decision",
    "rule",
    "call_id",
    "duration_us",
    "outcome",
    "prev_hash",
    "hash",
];

fn columns(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info('audit_records') ORDER BY cid")?
        .query_map([], |row| row.get(0))?
        .collect()
}

fn schema_version(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT value FROM audit_meta WHERE key = 'schema_version'",
        [],
        |row| row.get(0),
    )
}

#[test]
fn a_version_2_log_gains_the_steps_column_and_its_chain_still_verifies() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 6)?;
    // Version 3 is version 2 with the steps column added, so without it the log is one of
    // version 2, with its keys, head MAC and checkpoints.
    let conn = raw(&path)?;
    conn.execute_batch(
        "ALTER TABLE audit_records DROP COLUMN steps;
         UPDATE audit_meta SET value = '2' WHERE key = 'schema_version';",
    )?;
    assert_eq!(columns(&conn)?, VERSION_2_COLUMNS);
    let hashes = |conn: &Connection| -> rusqlite::Result<Vec<String>> {
        conn.prepare("SELECT hash FROM audit_records ORDER BY seq")?
            .query_map([], |row| row.get(0))?
            .collect()
    };
    let before = hashes(&conn)?;
    drop(conn);

    let log = AuditLog::open(&path, &keys(&path))?;
    let report = log.verify()?;
    assert_eq!((report.records, report.problem), (6, None));
    let conn = raw(&path)?;
    assert_eq!(schema_version(&conn)?, "3");
    let mut upgraded: Vec<&str> = VERSION_2_COLUMNS.to_vec();
    upgraded.push("steps");
    assert_eq!(columns(&conn)?, upgraded);
    assert_eq!(hashes(&conn)?, before);
    assert_eq!(stored_steps(&conn)?, vec![None; 6]);

    // The chain continues, with steps.
    assert_eq!(log.append(with_steps("c-7"))?, 7);
    let report = log.verify()?;
    assert_eq!((report.records, report.problem), (7, None));
    log.close()?;

    // Version 3 opens as it is.
    let log = AuditLog::open(&path, &keys(&path))?;
    assert!(log.verify()?.is_intact());
    let last = log.query(&Filter {
        limit: Some(1),
        ..Filter::default()
    })?;
    assert_eq!(last[0].record, with_steps("c-7"));
    assert_eq!(schema_version(&raw(&path)?)?, "3");
    Ok(())
}

#[test]
fn a_log_of_a_newer_layout_is_refused() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 2)?;
    raw(&path)?.execute_batch("UPDATE audit_meta SET value = '4' WHERE key = 'schema_version'")?;
    match AuditLog::open(&path, &keys(&path)) {
        Err(AuditError::Unusable { reason, .. }) => {
            assert_eq!(
                reason,
                "audit tables have schema version `4`, this build knows `3`"
            );
        }
        other => return Err(format!("expected a refused open, got {other:?}").into()),
    }
    Ok(())
}
