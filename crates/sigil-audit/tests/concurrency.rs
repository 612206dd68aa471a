//! Many concurrent submitters, where records are committed, lists of records written
//! together, and durability across close, drop and reopen.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{TestResult, sample, temp_db};
use sigil_audit::{
    AuditError, AuditLog, AuditSink, Commits, Durability, Filter, NewRecord, Verdict,
};

const THREADS: u64 = 16;
const PER_THREAD: u64 = 250;

fn tagged(thread: u64, i: u64) -> NewRecord {
    NewRecord::decision(Verdict::Allow, format!("t{thread}-r{i}"))
        .with_plugin(format!("p{thread}"), None)
}

/// Both durabilities: with `Process` records are also committed on the submitting threads.
const DURABILITIES: [Durability; 2] = [Durability::Disk, Durability::Process];

fn open(path: &Path, durability: Durability) -> Result<AuditLog, sigil_audit::AuditError> {
    AuditLog::open_with(path, &common::keys(path), durability)
}

#[test]
fn concurrent_submitters_get_distinct_contiguous_seqs() -> TestResult {
    for durability in DURABILITIES {
        concurrent_submitters(durability)?;
    }
    Ok(())
}

fn concurrent_submitters(durability: Durability) -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = open(&path, durability)?;
    let name = durability.name();

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
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "{name}");

    let report = log.verify()?;
    assert_eq!(report.records, total, "{name}");
    assert_eq!(report.problem, None, "{name}");

    // Within one thread, later submissions get later numbers, wherever they were committed.
    for t in 0..THREADS {
        let prefix = format!("t{t}-");
        let mine: Vec<u64> = told
            .iter()
            .filter(|(rule, _)| rule.starts_with(&prefix))
            .map(|(_, seq)| *seq)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{name}: thread {t}");
    }
    // The first commit of all cannot find the connection busy, so with `Process` at least that
    // one ran on its submitter's thread; with `Disk` none does.
    let commits = log.commits();
    match durability {
        Durability::Process => assert!(commits.on_callers >= 1, "{commits:?}"),
        Durability::Disk => assert_eq!(commits.on_callers, 0, "{commits:?}"),
    }
    log.close()?;

    // Every record is there after reopening, under the number its submitter was told.
    let log = open(&path, durability)?;
    let stored: HashMap<String, u64> = log
        .query(&Filter::default())?
        .into_iter()
        .map(|r| (r.record.rule, r.seq))
        .collect();
    assert_eq!(stored.len(), told.len(), "{name}");
    for (rule, seq) in &told {
        assert_eq!(stored.get(rule), Some(seq), "{name}: record `{rule}`");
    }
    assert!(log.verify()?.is_intact(), "{name}");
    Ok(())
}

#[test]
fn a_lone_record_is_committed_on_its_callers_thread_only_with_process_durability() -> TestResult {
    let on = |on_callers, on_writer| Commits {
        on_callers,
        on_writer,
    };
    // After: one append, a checkpoint (always the writer's), another append.
    let cases = [
        (Durability::Process, [on(1, 0), on(1, 1), on(2, 1)]),
        (Durability::Disk, [on(0, 1), on(0, 2), on(0, 3)]),
    ];
    for (durability, expected) in cases {
        let name = durability.name();
        let (_dir, path) = temp_db()?;
        let log = open(&path, durability)?;
        assert_eq!(log.commits(), on(0, 0), "{name}");

        assert_eq!(log.append(sample(1))?, 1, "{name}");
        assert_eq!(log.commits(), expected[0], "{name}");
        // Committed when append returned: the reader's connection sees it.
        let stored = log.query(&Filter::default())?;
        assert_eq!(stored.len(), 1, "{name}");
        assert_eq!(stored[0].record, sample(1), "{name}");

        assert_eq!(log.checkpoint()?.seq, 1, "{name}");
        assert_eq!(log.commits(), expected[1], "{name}");
        // The writer answered only once it was idle again, so the next record is the caller's.
        assert_eq!(log.append(sample(2))?, 2, "{name}");
        assert_eq!(log.commits(), expected[2], "{name}");

        let report = log.verify()?;
        assert_eq!((report.records, report.problem), (2, None), "{name}");
        log.close()?;
    }
    Ok(())
}

#[test]
fn submit_all_writes_its_records_together_among_concurrent_submitters() -> TestResult {
    const GROUP: u64 = 5;
    const GROUPS_PER_THREAD: u64 = 40;
    for durability in DURABILITIES {
        let name = durability.name();
        let (_dir, path) = temp_db()?;
        let log = open(&path, durability)?;

        // One record that cannot be stored fails the whole list, and nothing is written.
        let refused = log.submit_all(vec![
            sample(1),
            NewRecord::outcome("c", "ok").with_duration_us(u64::MAX),
        ]);
        assert!(
            matches!(refused.wait(), Err(AuditError::InvalidRecord { .. })),
            "{name}"
        );
        assert_eq!(log.submit_all(Vec::new()).wait()?, 0, "{name}");
        assert!(log.query(&Filter::default())?.is_empty(), "{name}");

        // Even threads submit lists, odd threads single records, all at once.
        let groups: Vec<(u64, u64, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let log = &log;
                    scope.spawn(move || -> Result<Vec<(u64, u64, u64)>, AuditError> {
                        let mut firsts = Vec::new();
                        for g in 0..GROUPS_PER_THREAD {
                            if t % 2 == 0 {
                                let records = (0..GROUP).map(|i| grouped(t, g, i)).collect();
                                firsts.push((t, g, log.submit_all(records).wait()?));
                            } else {
                                log.append(tagged(t, g))?;
                            }
                        }
                        Ok(firsts)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for handle in handles {
                match handle.join() {
                    Ok(Ok(firsts)) => all.extend(firsts),
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => return Err("a submitter thread panicked".to_owned()),
                }
            }
            Ok(all)
        })?;

        let stored = log.query(&Filter::default())?;
        let lists = THREADS.div_ceil(2);
        let total = lists * GROUPS_PER_THREAD * GROUP + (THREADS - lists) * GROUPS_PER_THREAD;
        assert_eq!(
            stored.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=total).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(groups.len(), usize::try_from(lists * GROUPS_PER_THREAD)?);
        // Each list's records sit at first, first + 1, ... in order, with nothing between them.
        for (t, g, first) in groups {
            for i in 0..GROUP {
                let at = usize::try_from(first + i - 1)?;
                assert_eq!(
                    stored[at].record.rule,
                    grouped(t, g, i).rule,
                    "{name}: list {g} of thread {t}, record {i}"
                );
            }
        }
        let report = log.verify()?;
        assert_eq!((report.records, report.problem), (total, None), "{name}");
        log.close()?;
    }
    Ok(())
}

fn grouped(thread: u64, group: u64, i: u64) -> NewRecord {
    NewRecord::decision(Verdict::Allow, format!("t{thread}-g{group}-r{i}"))
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
    for durability in DURABILITIES {
        let (_dir, path) = temp_db()?;
        let log = open(&path, durability)?;
        let pending: Vec<_> = (1..=300).map(|i| log.submit(sample(i))).collect();
        log.close()?;
        // Every submitter was answered before the writer stopped.
        let mut seqs = pending
            .into_iter()
            .map(|p| p.wait())
            .collect::<Result<Vec<_>, _>>()?;
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "{}", durability.name());
        let log = AuditLog::open(&path, &common::keys(&path))?;
        let report = log.verify()?;
        assert_eq!((report.records, report.problem), (300, None));
        // Closing signed a checkpoint of the last record.
        assert_eq!(log.checkpoints()?.last().map(|c| c.seq), Some(300));
    }
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
