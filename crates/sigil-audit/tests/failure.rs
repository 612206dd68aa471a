//! A write failure reaches every caller as an error, and the log recovers.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{TestResult, raw, sample, temp_db};
use sigil_audit::{AuditError, AuditLog, AuditSink, Durability, Filter, Pending};

/// Waits for `pending` on another thread so a hang fails the test instead of
/// stalling it.
fn resolve(pending: Pending) -> Result<Result<u64, AuditError>, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(pending.wait());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the record neither committed nor failed within 30s".to_owned())
}

#[test]
fn renamed_table_fails_the_batch_and_the_log_recovers() -> TestResult {
    // With `Process` these batches fail on the submitting thread, with `Disk` on the writer's.
    for durability in [Durability::Disk, Durability::Process] {
        a_failed_batch_fails_its_submitters_only(durability)?;
    }
    Ok(())
}

fn a_failed_batch_fails_its_submitters_only(durability: Durability) -> TestResult {
    let name = durability.name();
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open_with(&path, &common::keys(&path), durability)?;
    for i in 1..=3 {
        log.append(sample(i))?;
    }

    let other = raw(&path)?;
    other.execute_batch("ALTER TABLE audit_records RENAME TO x")?;

    // One record alone, then several submitted together: all fail.
    let single = resolve(log.submit(sample(4)))?;
    let batch: Vec<_> = (5..=12).map(|i| log.submit(sample(i))).collect();
    let mut results = vec![single];
    for pending in batch {
        results.push(resolve(pending)?);
    }
    for result in results {
        match result {
            Err(e @ AuditError::Write { .. }) => {
                let message = e.to_string();
                assert!(
                    message
                        .starts_with(&format!("cannot write audit records to {}", path.display())),
                    "{name}: {message}"
                );
                assert!(message.contains("audit_records"), "{name}: {message}");
            }
            other => return Err(format!("{name}: expected a write error, got {other:?}").into()),
        }
    }

    other.execute_batch("ALTER TABLE x RENAME TO audit_records")?;

    // Nothing from the failed batches was kept, and the chain picks up at 4.
    assert_eq!(resolve(log.submit(sample(13)))??, 4, "{name}");
    assert_eq!(log.append(sample(14))?, 5, "{name}");
    let rules: Vec<String> = log
        .query(&Filter::default())?
        .into_iter()
        .map(|r| r.record.rule)
        .collect();
    assert_eq!(
        rules,
        ["rule 1", "rule 2", "rule 3", "rule 13", "rule 14"],
        "{name}"
    );
    let report = log.verify()?;
    assert_eq!((report.records, report.problem), (5, None), "{name}");
    log.close()?;
    Ok(())
}

#[test]
fn a_locked_database_fails_rather_than_hangs() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    log.append(sample(1))?;

    // Another connection holds the write lock; the writer waits its busy
    // timeout (10s) and then fails the batch.
    let other = raw(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let blocked = log.submit(sample(2));
    match resolve(blocked)? {
        Err(AuditError::Write { .. }) => {}
        other => return Err(format!("expected a write error, got {other:?}").into()),
    }
    other.execute_batch("COMMIT")?;
    assert_eq!(log.append(sample(3))?, 2);
    assert!(log.verify()?.is_intact());
    Ok(())
}

#[test]
fn errors_are_cheap_to_share() {
    fn assert_clone<T: Clone + Send + Sync + std::error::Error>() {}
    assert_clone::<AuditError>();
}
