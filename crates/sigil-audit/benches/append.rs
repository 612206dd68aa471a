//! Durable append latency and throughput.
//!
//! - `durable_append`: with `Durability::Disk` (`synchronous=FULL`), group commit from several
//!   threads against a baseline of one transaction (and one fsync) per record.
//! - `lone_append`: one `append` at a time on an otherwise idle log, for each durability: what
//!   one audited step of a call waits for.
//! - `threads_16`: 16 threads, each appending one record at a time in a loop and waiting for it,
//!   for each durability: throughput under contention.
//!
//! Every measured record has been committed, as durably as its log's durability says, by the
//! time its iteration ends.

#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot write should stop loudly"
)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sigil_audit::{Actor, AuditLog, AuditSink, Durability, KeyFiles, NewRecord, Verdict};

const GROUP_RECORDS: u64 = 1_000;
const GROUP_THREADS: u64 = 4;
const BASELINE_RECORDS: u64 = 50;
const CONTENDING_THREADS: u64 = 16;

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

/// A new log in a temporary directory, which must outlive it.
fn open(dir: &tempfile::TempDir, durability: Durability) -> AuditLog {
    let keys = KeyFiles::in_dir(&dir.path().join("state"));
    AuditLog::open_with(&dir.path().join("sigil.db"), &keys, durability).expect("open audit log")
}

fn durable_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = open(&dir, Durability::Disk);
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

fn lone_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("lone_append");
    group.throughput(Throughput::Elements(1));
    for durability in [Durability::Process, Durability::Disk] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = open(&dir, durability);
        let mut i = 0;
        group.bench_function(durability.name(), |b| {
            b.iter(|| {
                i += 1;
                black_box(log.append(record(i)).expect("record committed"))
            });
        });
        log.close().expect("close audit log");
    }
    group.finish();
}

/// `threads` threads each append `per_thread` records, one at a time, starting together;
/// how long until the last is committed.
fn contended(log: &AuditLog, threads: u64, per_thread: u64) -> Duration {
    let start = Barrier::new(usize::try_from(threads).expect("thread count") + 1);
    let began = std::thread::scope(|scope| {
        for t in 0..threads {
            let (log, start) = (log, &start);
            scope.spawn(move || {
                start.wait();
                for i in 0..per_thread {
                    black_box(
                        log.append(record(t * per_thread + i))
                            .expect("record committed"),
                    );
                }
            });
        }
        start.wait();
        Instant::now()
    });
    // `scope` returns only once every thread has finished.
    began.elapsed()
}

fn threads_16(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads_16");
    group.throughput(Throughput::Elements(CONTENDING_THREADS));
    for durability in [Durability::Process, Durability::Disk] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = open(&dir, durability);
        // One iteration is one record from each thread.
        group.bench_function(durability.name(), |b| {
            b.iter_custom(|iters| contended(&log, CONTENDING_THREADS, iters));
        });
        log.close().expect("close audit log");
    }
    group.finish();
}

criterion_group!(benches, durable_append, lone_append, threads_16);
criterion_main!(benches);
