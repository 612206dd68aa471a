//! Append, query with every filter, export, and the ways to wait for a record.

mod common;

use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestResult, sample, temp_db};
use sigil_audit::{
    Actor, AuditError, AuditLog, AuditSink, Durability, Filter, GENESIS_HASH, NewRecord, Record,
    RecordKind, Verdict, parse_since,
};

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

#[test]
fn append_and_query_round_trip() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    assert_eq!(log.path(), path.as_path());

    let full = NewRecord {
        kind: RecordKind::Outcome,
        actor: Actor {
            user: Some("ada".into()),
            workspace: Some("w1".into()),
            session: Some("s1".into()),
            channel: Some("slack \"#ops\"\n".into()),
        },
        plugin: Some("notes".into()),
        plugin_version: Some("2.0.0".into()),
        capability: Some("net.connect:example.com:443".into()),
        decision: None,
        rule: "ünïcode rule ✓".into(),
        call_id: Some("c-9".into()),
        duration_us: Some(1234),
        outcome: Some("error: timeout".into()),
        steps: Vec::new(),
    };
    let before = SystemTime::now();
    let seq = log.append(full.clone())?;
    let after = SystemTime::now();
    assert_eq!(seq, 1);

    let records = log.query(&Filter::default())?;
    assert_eq!(records.len(), 1);
    let stored = &records[0];
    assert_eq!(stored.seq, 1);
    assert_eq!(stored.record, full);
    assert_eq!(stored.prev_hash, GENESIS_HASH);
    assert_eq!(stored.hash.len(), 64);
    assert!(stored.hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis());
    let time_ms = u128::try_from(stored.time_ms)?;
    assert!(ms(before)? <= time_ms && time_ms <= ms(after)?);

    let second = log.append(sample(2))?;
    assert_eq!(second, 2);
    let records = log.query(&Filter::default())?;
    assert_eq!(records[1].prev_hash, records[0].hash);
    log.close()?;
    Ok(())
}

#[test]
fn every_filter_selects_what_it_names() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    // sample(i): user{i%2}, plugin{i%4}, deny when i%3==0, call-{i}.
    for i in 1..=12 {
        log.append(sample(i))?;
    }
    log.append(NewRecord::outcome("call-6", "ok").with_duration_us(50))?; // seq 13
    sleep(Duration::from_millis(30));
    let mark = SystemTime::now();
    sleep(Duration::from_millis(30));
    log.append(sample(14))?; // seq 14
    log.append(sample(15))?; // seq 15

    let cases: Vec<(&str, Filter, Vec<u64>)> = vec![
        ("everything", Filter::default(), (1..=15).collect()),
        (
            "plugin",
            Filter {
                plugin: Some("plugin1".into()),
                ..Filter::default()
            },
            vec![1, 5, 9],
        ),
        (
            "user",
            Filter {
                user: Some("user0".into()),
                ..Filter::default()
            },
            vec![2, 4, 6, 8, 10, 12, 14],
        ),
        (
            "decision deny",
            Filter {
                decision: Some(Verdict::Deny),
                ..Filter::default()
            },
            vec![3, 6, 9, 12, 15],
        ),
        (
            "kind outcome",
            Filter {
                kind: Some(RecordKind::Outcome),
                ..Filter::default()
            },
            vec![13],
        ),
        (
            "kind decision",
            Filter {
                kind: Some(RecordKind::Decision),
                ..Filter::default()
            },
            (1..=12).chain(14..=15).collect(),
        ),
        (
            "since",
            Filter {
                since: Some(mark),
                ..Filter::default()
            },
            vec![14, 15],
        ),
        (
            "call id",
            Filter {
                call_id: Some("call-6".into()),
                ..Filter::default()
            },
            vec![6, 13],
        ),
        (
            "limit keeps the newest, ascending",
            Filter {
                limit: Some(4),
                ..Filter::default()
            },
            vec![12, 13, 14, 15],
        ),
        (
            "limit zero",
            Filter {
                limit: Some(0),
                ..Filter::default()
            },
            vec![],
        ),
        (
            "limit larger than the log",
            Filter {
                limit: Some(100),
                ..Filter::default()
            },
            (1..=15).collect(),
        ),
        (
            "filters combine",
            Filter {
                user: Some("user0".into()),
                decision: Some(Verdict::Deny),
                limit: Some(1),
                ..Filter::default()
            },
            vec![12],
        ),
        (
            "no match",
            Filter {
                plugin: Some("nobody".into()),
                ..Filter::default()
            },
            vec![],
        ),
    ];
    for (name, filter, expected) in cases {
        let records = log.query(&filter)?;
        assert_eq!(seqs(&records), expected, "filter case `{name}`");
    }
    log.close()?;
    Ok(())
}

#[test]
fn export_writes_json_lines_that_parse_back() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    for i in 1..=9 {
        log.append(sample(i))?;
    }
    log.append(NewRecord::outcome("call-3", "error: \"quoted\"\nline").with_duration_us(7))?;

    let mut out = Vec::new();
    let count = log.export(&Filter::default(), &mut out)?;
    assert_eq!(count, 10);
    let text = String::from_utf8(out)?;
    assert!(text.ends_with('\n'));
    let parsed = text
        .lines()
        .map(serde_json::from_str::<Record>)
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(parsed, log.query(&Filter::default())?);

    // The line format is flat: record fields sit beside seq and the hashes.
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or(""))?;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["kind"], "decision");
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["actor"]["user"], "user1");
    assert_eq!(first["prev_hash"], GENESIS_HASH);

    let mut limited = Vec::new();
    let filter = Filter {
        call_id: Some("call-3".into()),
        limit: Some(5),
        ..Filter::default()
    };
    assert_eq!(log.export(&filter, &mut limited)?, 2);
    let limited: Vec<Record> = String::from_utf8(limited)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(seqs(&limited), vec![3, 10]);
    log.close()?;
    Ok(())
}

#[test]
fn export_reports_a_failing_writer() -> TestResult {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    log.append(sample(1))?;
    let err = log.export(&Filter::default(), &mut Broken);
    match err {
        Err(e @ AuditError::Export { .. }) => {
            let message = e.to_string();
            assert!(
                message.starts_with("cannot write audit export from "),
                "{message}"
            );
            assert!(message.contains("sigil.db"), "{message}");
            assert!(message.contains("disk full"), "{message}");
        }
        other => return Err(format!("expected an export error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn pending_can_be_awaited_or_waited() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;

    let awaited = common::block_on(async {
        let a = log.submit(sample(1));
        let b = log.submit(sample(2));
        Ok::<_, AuditError>((a.await?, b.await?))
    })?;
    assert_eq!(awaited, (1, 2));

    // Polled once, then waited on from the same thread: must not panic.
    let mut pending = log.submit(sample(3));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let first_poll = std::pin::Pin::new(&mut pending).poll(&mut cx);
    if let std::task::Poll::Ready(result) = first_poll {
        assert_eq!(result?, 3);
    } else {
        assert_eq!(pending.wait()?, 3);
    }

    // Dropping a Pending does not cancel the write.
    drop(log.submit(sample(4)));
    assert_eq!(log.append(sample(5))?, 5);
    assert_eq!(log.query(&Filter::default())?.len(), 5);

    // Through the trait object the enforcer holds.
    let sink: std::sync::Arc<dyn AuditSink> = std::sync::Arc::new(log);
    assert_eq!(sink.submit(sample(6)).wait()?, 6);
    Ok(())
}

#[test]
fn unstorable_record_fails_alone() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &common::keys(&path))?;
    let bad = log.submit(NewRecord::outcome("c", "ok").with_duration_us(u64::MAX));
    let good = log.submit(sample(1));
    match bad.wait() {
        Err(e @ AuditError::InvalidRecord { .. }) => {
            assert_eq!(
                e.to_string(),
                format!(
                    "audit record refused: duration_us {} is larger than {}",
                    u64::MAX,
                    i64::MAX
                )
            );
        }
        other => return Err(format!("expected InvalidRecord, got {other:?}").into()),
    }
    assert_eq!(good.wait()?, 1);
    let largest = NewRecord::outcome("c", "ok").with_duration_us(u64::try_from(i64::MAX)?);
    assert_eq!(log.append(largest)?, 2);
    assert!(log.verify()?.is_intact());
    Ok(())
}

#[test]
fn open_names_the_path_when_the_directory_is_missing() -> TestResult {
    let (dir, _) = temp_db()?;
    let path = dir.path().join("missing").join("sigil.db");
    match AuditLog::open(&path, &common::keys(&path)) {
        Err(e @ AuditError::Open { .. }) => {
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("cannot open audit database {}", path.display())),
                "{message}"
            );
        }
        other => return Err(format!("expected an open error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn audit_tables_are_prefixed() -> TestResult {
    let (_dir, path) = temp_db()?;
    common::fill(&path, 1)?;
    let conn = common::raw(&path)?;
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    assert!(!names.is_empty());
    for name in &names {
        assert!(name.starts_with("audit_"), "table or index `{name}`");
    }
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    assert_eq!(mode, "wal");
    Ok(())
}

#[test]
fn parse_since_accepts_timestamps_and_durations() -> TestResult {
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let absolute = [
        ("2026-11-23T10:00:00Z", at(1_795_428_000)),
        ("2026-11-23 10:00:00", at(1_795_428_000)),
        ("  2026-11-23T10:00:00Z  ", at(1_795_428_000)),
        ("1970-01-01T00:00:00Z", at(0)),
        (
            "2026-11-23T10:00:00.250Z",
            at(1_795_428_000) + Duration::from_millis(250),
        ),
    ];
    for (input, expected) in absolute {
        assert_eq!(parse_since(input)?, expected, "input `{input}`");
    }

    let relative = [
        ("15m", 15 * 60),
        ("2h", 2 * 3600),
        ("7d", 7 * 86400),
        ("1h 30m", 5400),
        ("0s", 0),
    ];
    for (input, secs) in relative {
        let before = SystemTime::now();
        let parsed = parse_since(input)?;
        let after = SystemTime::now();
        let ago = Duration::from_secs(secs);
        assert!(
            parsed >= before - ago - Duration::from_secs(1),
            "input `{input}`"
        );
        assert!(parsed <= after - ago, "input `{input}`");
    }

    for input in [
        "",
        "   ",
        "yesterday",
        "15",
        "-5m",
        "2026-13-01T00:00:00Z",
        "10:00",
    ] {
        match parse_since(input) {
            Err(e @ AuditError::InvalidSince { .. }) => {
                let message = e.to_string();
                assert!(
                    message.starts_with(&format!("invalid time `{input}`")),
                    "{message}"
                );
            }
            other => return Err(format!("`{input}` gave {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn open_refuses_a_file_that_is_not_a_database() -> TestResult {
    let (_dir, path) = temp_db()?;
    std::fs::write(&path, vec![0x5a_u8; 8192])?;
    match AuditLog::open(&path, &common::keys(&path)) {
        Err(e @ AuditError::Open { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("not a database"), "{message}");
        }
        other => return Err(format!("expected an open error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn process_durability_commits_and_chains_like_disk_durability() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open_with(&path, &common::keys(&path), Durability::Process)?;
    assert_eq!(log.durability(), Durability::Process);
    let pending: Vec<_> = (0..50).map(|i| log.submit(sample(i))).collect();
    let seqs: Vec<u64> = pending
        .into_iter()
        .map(sigil_audit::Pending::wait)
        .collect::<Result<_, _>>()?;
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());
    log.close()?;

    // The chain continues across a change of durability, and verifies.
    let log = AuditLog::open(&path, &common::keys(&path))?;
    assert_eq!(log.durability(), Durability::Disk);
    assert_eq!(log.append(sample(51))?, 51);
    let report = log.verify()?;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(log.query(&Filter::default())?.len(), 51);
    Ok(())
}
