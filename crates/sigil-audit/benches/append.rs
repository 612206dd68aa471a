//! Durable append throughput: group commit from several threads, against a
//! baseline of one transaction (and one fsync) per record.
//!
//! Every measured record has been committed with `synchronous=FULL` by the
//! time its iteration ends.

#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot write should stop loudly"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sigil_audit::{Actor, AuditLog, AuditSink, NewRecord, Verdict};

const GROUP_RECORDS: u64 = 1_000;
const GROUP_THREADS: u64 = 4;
const BASELINE_RECORDS: u64 = 50;

fn record(i: u64) -> NewRecord {
    NewRecord::decision(
        if i.is_multiple_of(7) {
            Verdict::Deny
        } else {
            Verdict::Allow
        },
        "grant fs.read:/data/** for plugin notes",
    )
    .with_actor(Actor {
        user: Some("ada".to_owned()),
        workspace: Some("default".to_owned()),
        session: Some("s-42".to_owned()),
        channel: Some("cli".to_owned()),
    })
    .with_plugin("notes", Some("1.4.2"))
    .with_capability(format!("fs.read:/data/notes/{i}.md"))
    .with_call_id(format!("call-{i}"))
}

fn durable_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys = sigil_audit::KeyFiles::in_dir(&dir.path().join("state"));
    let log = AuditLog::open(&dir.path().join("sigil.db"), &keys).expect("open audit log");
    let mut group = c.benchmark_group("durable_append");

    group.throughput(Throughput::Elements(GROUP_RECORDS));
    group.bench_function(
        BenchmarkId::new("group_commit_4_threads", GROUP_RECORDS),
        |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for t in 0..GROUP_THREADS {
                        let log = &log;
                        scope.spawn(move || {
                            let per_thread = GROUP_RECORDS / GROUP_THREADS;
                            let pending: Vec<_> = (0..per_thread)
                                .map(|i| log.submit(record(t * per_thread + i)))
                                .collect();
                            for p in pending {
                                black_box(p.wait().expect("record committed"));
                            }
                        });
                    }
                });
            });
        },
    );

    group.throughput(Throughput::Elements(BASELINE_RECORDS));
    group.bench_function(
        BenchmarkId::new("one_commit_per_record", BASELINE_RECORDS),
        |b| {
            b.iter(|| {
                for i in 0..BASELINE_RECORDS {
                    black_box(log.append(record(i)).expect("record committed"));
                }
            });
        },
    );

    group.finish();
    log.close().expect("close audit log");
}

criterion_group!(benches, durable_append);
criterion_main!(benches);
