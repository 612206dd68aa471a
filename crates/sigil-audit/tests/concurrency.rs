//! Many concurrent submitters, and durability across close, drop and reopen.

mod common;

use std::collections::HashMap;

use common::{TestResult, sample, temp_db};
use sigil_audit::{AuditLog, AuditSink, Filter, NewRecord, Verdict};

const THREADS: u64 = 8;
const PER_THREAD: u64 = 500;

fn tagged(thread: u64, i: u64) -> NewRecord {
    NewRecord::decision(Verdict::Allow, format!("t{thread}-r{i}"))
        .with_plugin(format!("p{thread}"), None)
}

#[test]
fn concurrent_submitters_get_distinct_contiguous_seqs() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;

    let told: Vec<(String, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = &log;
                scope.spawn(
                    move || -> Result<Vec<(String, u64)>, sigil_audit::AuditError> {
                        let mut told = Vec::new();
                        if t % 2 == 0 {
                            // One record at a time, each waited for.
                            for i in 0..PER_THREAD {
                                let record = tagged(t, i);
                                let rule = record.rule.clone();
                                told.push((rule, log.append(record)?));
                            }
                        } else {
                            // Everything submitted first, then awaited.
                            let pending: Vec<_> = (0..PER_THREAD)
                                .map(|i| {
                                    let record = tagged(t, i);
                                    (record.rule.clone(), log.submit(record))
                                })
                                .collect();
                            for (rule, p) in pending {
                                told.push((rule, p.wait()?));
                            }
                        }
                        Ok(told)
                    },
                )
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(Ok(told)) => all.extend(told),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("a submitter thread panicked".to_owned()),
            }
        }
        Ok(all)
    })?;

    let total = THREADS * PER_THREAD;
    let mut seqs: Vec<u64> = told.iter().map(|(_, seq)| *seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());

    let report = log.verify()?;
    assert_eq!(report.records, total);
    assert_eq!(report.problem, None);

    // Within one thread, later submissions get later numbers.
    for t in 0..THREADS {
        let prefix = format!("t{t}-");
        let mine: Vec<u64> = told
            .iter()
            .filter(|(rule, _)| rule.starts_with(&prefix))
            .map(|(_, seq)| *seq)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t}");
    }
    log.close()?;

    // Every record is there after reopening, under the number its submitter was told.
    let log = AuditLog::open(&path, &common::keys(&path))?;
    let stored: HashMap<String, u64> = log
        .query(&Filter::default())?
        .into_iter()
        .map(|r| (r.record.rule, r.seq))
        .collect();
    assert_eq!(stored.len(), told.len());
    for (rule, seq) in &told {
        assert_eq!(stored.get(rule), Some(seq), "record `{rule}`");
    }
    assert!(log.verify()?.is_intact());
    Ok(())
}

#[test]
fn acknowledged_records_survive_close_and_the_chain_continues() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    for i in 1..=5 {
        assert_eq!(log.append(sample(i))?, i);
    }
    let before = log.query(&Filter::default())?;
    log.close()?;

    let log = AuditLog::open(&path, &common::keys(&path))?;
    assert_eq!(log.query(&Filter::default())?, before);
    for i in 6..=10 {
        assert_eq!(log.append(sample(i))?, i);
    }
    let all = log.query(&Filter::default())?;
    assert_eq!(all.len(), 10);
    assert_eq!(all[5].prev_hash, all[4].hash);
    let report = log.verify()?;
    assert_eq!((report.records, report.problem), (10, None));
    log.close()?;
    Ok(())
}

#[test]
fn dropping_the_log_commits_everything_submitted() -> TestResult {
    let (_dir, path) = temp_db()?;
    {
        let log = AuditLog::open(&path, &common::keys(&path))?;
        for i in 1..=2000 {
            // Nobody waits: the Pending is dropped at once.
            drop(log.submit(sample(i)));
        }
        // `log` is dropped here without close().
    }
    let log = AuditLog::open(&path, &common::keys(&path))?;
    let records = log.query(&Filter::default())?;
    assert_eq!(records.len(), 2000);
    assert_eq!(records.last().map(|r| r.seq), Some(2000));
    assert!(log.verify()?.is_intact());
    Ok(())
}

#[test]
fn close_commits_pending_records_before_returning() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    let pending: Vec<_> = (1..=300).map(|i| log.submit(sample(i))).collect();
    log.close()?;
    // The writer answered every submitter before it stopped.
    let mut seqs = pending
        .into_iter()
        .map(|p| p.wait())
        .collect::<Result<Vec<_>, _>>()?;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    let log = AuditLog::open(&path, &common::keys(&path))?;
    assert_eq!(log.verify()?.records, 300);
    Ok(())
}

#[test]
fn queries_run_while_writers_write() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    std::thread::scope(|scope| -> TestResult {
        let writer = scope.spawn(|| -> Result<(), sigil_audit::AuditError> {
            for i in 1..=1000 {
                log.append(sample(i))?;
            }
            Ok(())
        });
        // Each snapshot is a consistent prefix of the chain.
        for _ in 0..20 {
            let report = log.verify()?;
            assert_eq!(report.problem, None);
            let records = log.query(&Filter::default())?;
            assert!(records.iter().zip(1..).all(|(r, seq)| r.seq == seq));
        }
        writer.join().map_err(|_| "writer thread panicked")??;
        Ok(())
    })?;
    assert_eq!(log.verify()?.records, 1000);
    Ok(())
}

#[test]
fn two_logs_on_one_file_share_one_chain() -> TestResult {
    // Two processes opening $SIGIL_HOME/sigil.db behave like this.
    let (_dir, path) = temp_db()?;
    let first = AuditLog::open(&path, &common::keys(&path))?;
    let second = AuditLog::open(&path, &common::keys(&path))?;
    let mut seqs = Vec::new();
    for i in 1..=20_u64 {
        let log = if i.is_multiple_of(2) { &first } else { &second };
        seqs.push(log.append(sample(i))?);
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    assert!(first.verify()?.is_intact());
    assert_eq!(second.verify()?.records, 20);
    Ok(())
}
