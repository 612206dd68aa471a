//! The keyed chain and signed checkpoints against attackers holding the database, the chain
//! key, or both; and the upgrade of a log written with the unkeyed layout.

mod common;

use common::{
    Rule, TestResult, chain_key, documented_hash, documented_mac, fill, keys, raw, rechain, sample,
    temp_db,
};
use rusqlite::Connection;
use sigil_audit::{
    AuditError, AuditLog, AuditSink, CHECKPOINT_EVERY, Checkpoint, Filter, GENESIS_HASH, Tamper,
    Verdict,
};

/// Turns record `seq`'s deny into an allow, as the attacker did.
fn flip_to_allow(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    let changed = conn.execute(
        "UPDATE audit_records SET decision = 'allow', rule = 'granted' WHERE seq = ?1 \
         AND decision = 'deny'",
        [seq],
    )?;
    assert_eq!(changed, 1, "record {seq} was a deny");
    Ok(())
}

#[test]
fn a_deny_turned_into_an_allow_with_the_chain_recomputed_without_the_key_is_found() -> TestResult {
    let guessed_keys: [&[u8]; 4] = [b"", &[0u8; 32], b"sigil", b"sigil-audit"];
    let mut rules = vec![("the unkeyed rule", Rule::Unkeyed)];
    for key in guessed_keys {
        rules.push(("a guessed key", Rule::Keyed(key)));
    }
    for (how, rule) in rules {
        let (_dir, path) = temp_db()?;
        // sample(3) is a deny.
        fill(&path, 10)?;
        let log = AuditLog::open(&path, &keys(&path))?;
        assert!(log.verify()?.is_intact());

        let conn = raw(&path)?;
        flip_to_allow(&conn, 3)?;
        rechain(&conn, 3, rule)?;
        drop(conn);

        let denies = log.query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })?;
        assert!(denies.iter().all(|r| r.seq != 3), "the edit took ({how})");
        let report = log.verify()?;
        assert_eq!(report.problem, Some(Tamper::Edited { seq: 3 }), "{how}");
        assert_eq!(
            report.problem.map(|p| p.to_string()).as_deref(),
            Some("record 3 was edited: its content does not match its hash")
        );
        // And writing on refuses to extend the forged head.
        match log.append(sample(11)) {
            Err(AuditError::Unusable { reason, .. }) => {
                assert!(reason.contains("valid MAC"), "{reason}");
            }
            other => return Err(format!("{how}: expected a refused write, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn with_the_key_an_edit_before_an_exported_checkpoint_is_found() -> TestResult {
    let (dir, path) = temp_db()?;
    fill(&path, 10)?;
    let kept_elsewhere = {
        let log = AuditLog::open(&path, &keys(&path))?;
        let checkpoint = log.checkpoint()?;
        assert_eq!(checkpoint.seq, 10);
        assert_eq!(checkpoint.public_key, log.checkpoint_public_key());
        log.append(sample(11))?;
        log.close()?;
        let file = dir.path().join("elsewhere.json");
        std::fs::write(&file, checkpoint.to_json())?;
        std::fs::read_to_string(&file)?
    };

    // The attacker has the database and the chain key, not the checkpoint key: it rewrites
    // record 3 and everything after it with valid MACs, and deletes the checkpoints it cannot
    // sign again.
    let conn = raw(&path)?;
    flip_to_allow(&conn, 3)?;
    rechain(&conn, 3, Rule::Keyed(&chain_key(&path)?))?;
    conn.execute("DELETE FROM audit_checkpoints", [])?;
    drop(conn);

    let log = AuditLog::open(&path, &keys(&path))?;
    // The log alone cannot tell: the attacker held its key.
    assert!(log.verify()?.is_intact());
    let kept = Checkpoint::from_json(&kept_elsewhere)?;
    let report = log.verify_checkpoint(&kept)?;
    assert_eq!(
        report.problem,
        Some(Tamper::CheckpointMismatch { seq: 10, since: 0 })
    );
    assert_eq!(
        report.problem.map(|p| p.to_string()).as_deref(),
        Some(
            "records 1..10 were rewritten after the checkpoint at record 10 was signed: the \
             chain no longer yields its head"
        )
    );
    log.close()?;

    // Deleting the records the checkpoint covers is found too.
    let conn = raw(&path)?;
    conn.execute("DELETE FROM audit_records WHERE seq > 5", [])?;
    rechain(&conn, 1, Rule::Keyed(&chain_key(&path)?))?;
    // Closing signed the rewritten head; the attacker deletes that too.
    conn.execute("DELETE FROM audit_checkpoints", [])?;
    drop(conn);
    let log = AuditLog::open(&path, &keys(&path))?;
    assert!(log.verify()?.is_intact());
    assert_eq!(
        log.verify_checkpoint(&kept)?.problem,
        Some(Tamper::CheckpointBeyondLog { seq: 10, last: 5 })
    );
    Ok(())
}

#[test]
fn an_untouched_log_matches_its_exported_checkpoints() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 4)?;
    let log = AuditLog::open(&path, &keys(&path))?;
    let at_4 = Checkpoint::from_json(&log.checkpoint()?.to_json())?;
    // Asking again without new records returns the same checkpoint.
    assert_eq!(log.checkpoint()?, at_4);
    log.append(sample(5))?;
    assert_eq!(log.verify_checkpoint(&at_4)?.problem, None);
    let stored: Vec<u64> = log.checkpoints()?.iter().map(|c| c.seq).collect();
    // Closing `fill`'s log signed 4; asking signed nothing new.
    assert_eq!(stored, [4]);
    log.close()?;
    let log = AuditLog::open(&path, &keys(&path))?;
    let stored: Vec<u64> = log.checkpoints()?.iter().map(|c| c.seq).collect();
    assert_eq!(stored, [4, 5], "closing signed the head");
    assert!(log.verify()?.is_intact());
    Ok(())
}

#[test]
fn a_forged_checkpoint_is_refused() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 6)?;
    let log = AuditLog::open(&path, &keys(&path))?;
    let genuine = log.checkpoint()?;

    // A checkpoint of this very head, validly signed by the forger's own key.
    let forger = minisign::KeyPair::generate_unencrypted_keypair()?;
    let mut with_its_own_key = Checkpoint {
        public_key: forger.pk.to_base64(),
        signature: String::new(),
        ..genuine.clone()
    };
    with_its_own_key.signature = minisign::sign(
        None,
        &forger.sk,
        std::io::Cursor::new(with_its_own_key.statement()),
        Some("forged"),
        None,
    )?
    .into_string();
    assert!(with_its_own_key.signature_is_valid());
    // And one made by another log, for its own head.
    let (_other_dir, other_path) = temp_db()?;
    let other = AuditLog::open(&other_path, &keys(&other_path))?;
    let forged = other.checkpoint()?;
    let claiming_our_key = Checkpoint {
        public_key: genuine.public_key.clone(),
        ..forged.clone()
    };
    let edited_head = Checkpoint {
        head: "0".repeat(64),
        ..genuine.clone()
    };
    let later_time = Checkpoint {
        time_ms: genuine.time_ms + 1,
        ..genuine.clone()
    };
    for (what, checkpoint) in [
        ("signed by another key", with_its_own_key),
        ("naming our key, signed by another", claiming_our_key),
        ("with its head edited", edited_head),
        ("with its time edited", later_time),
    ] {
        // Through the exported form, as it would arrive.
        let arrived = Checkpoint::from_json(&checkpoint.to_json())?;
        match log.verify_checkpoint(&arrived) {
            Err(e @ AuditError::CheckpointRefused { .. }) => {
                assert!(e.to_string().starts_with("checkpoint refused: "), "{e}");
            }
            other => return Err(format!("{what}: expected a refusal, got {other:?}").into()),
        }
    }
    assert_eq!(log.verify_checkpoint(&genuine)?.problem, None);

    // A forged checkpoint slipped into the database is reported by verify.
    let conn = raw(&path)?;
    conn.execute(
        "INSERT INTO audit_checkpoints (seq, head, time_ms, signature) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![3, GENESIS_HASH, forged.time_ms, forged.signature],
    )?;
    drop(conn);
    assert_eq!(
        log.verify()?.problem,
        Some(Tamper::CheckpointForged { seq: 3 })
    );

    // An export whose statement disagrees with its fields is refused on reading.
    let json = genuine
        .to_json()
        .replacen(&format!("\"seq\": {}", genuine.seq), "\"seq\": 2", 1);
    assert!(matches!(
        Checkpoint::from_json(&json),
        Err(AuditError::CheckpointRefused { .. })
    ));
    Ok(())
}

#[test]
fn periodic_checkpoints_fix_the_chain_against_the_key_holder() -> TestResult {
    let (_dir, path) = temp_db()?;
    let log = AuditLog::open(&path, &keys(&path))?;
    let total = CHECKPOINT_EVERY + 3;
    let pending: Vec<_> = (1..=total).map(|i| log.submit(sample(i))).collect();
    for p in pending {
        p.wait()?;
    }
    let stored: Vec<u64> = log.checkpoints()?.iter().map(|c| c.seq).collect();
    assert_eq!(
        stored,
        [CHECKPOINT_EVERY],
        "signed with the batch that reached it"
    );
    assert!(log.verify()?.is_intact());
    log.close()?;

    // With the chain key: rewrite record 9 onward and delete every checkpoint.
    let conn = raw(&path)?;
    flip_to_allow(&conn, 9)?;
    rechain(&conn, 9, Rule::Keyed(&chain_key(&path)?))?;
    conn.execute("DELETE FROM audit_checkpoints", [])?;
    drop(conn);
    let log = AuditLog::open(&path, &keys(&path))?;
    assert_eq!(
        log.verify()?.problem,
        Some(Tamper::CheckpointMissing {
            seq: CHECKPOINT_EVERY
        })
    );
    Ok(())
}

/// The `audit_` tables exactly as the unkeyed layout (schema version 1) created them.
const UNKEYED_LAYOUT: &str = "
CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
INSERT INTO audit_meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE audit_records (
    seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,
    actor_user TEXT, actor_workspace TEXT, actor_session TEXT, actor_channel TEXT,
    plugin TEXT, plugin_version TEXT, capability TEXT, decision TEXT, rule TEXT NOT NULL,
    call_id TEXT, duration_us INTEGER, outcome TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
) STRICT;
CREATE INDEX audit_records_time_ms ON audit_records (time_ms);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL
) STRICT;
";

/// A database as the unkeyed layout wrote it: `n` records chained with plain SHA-256 and the
/// head, and no key files.
fn unkeyed_log(path: &std::path::Path, n: i64) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL")?;
    conn.execute_batch(UNKEYED_LAYOUT)?;
    let mut prev = GENESIS_HASH.to_owned();
    for seq in 1..=n {
        let decision = if seq % 3 == 0 { "deny" } else { "allow" };
        conn.execute(
            "INSERT INTO audit_records (seq, time_ms, kind, actor_user, plugin, capability, \
             decision, rule, call_id, prev_hash, hash) \
             VALUES (?1, ?2, 'decision', 'alice', 'notes', ?3, ?4, ?5, ?6, ?7, '')",
            rusqlite::params![
                seq,
                1_700_000_000_000_i64 + seq,
                format!("fs.read:/data/{seq}"),
                decision,
                format!("rule {seq}"),
                format!("call-{seq}"),
                prev,
            ],
        )?;
        let hash = documented_hash(&prev, &common::documented_canonical(&conn, seq)?);
        conn.execute(
            "UPDATE audit_records SET hash = ?1 WHERE seq = ?2",
            rusqlite::params![hash, seq],
        )?;
        prev = hash;
    }
    conn.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)",
        rusqlite::params![n, prev],
    )?;
    Ok(())
}

#[test]
fn an_unkeyed_log_is_upgraded_in_place_and_stays_verifiable() -> TestResult {
    let (_dir, path) = temp_db()?;
    unkeyed_log(&path, 6)?;
    let legacy_hashes: Vec<String> = raw(&path)?
        .prepare("SELECT hash FROM audit_records ORDER BY seq")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert!(!keys(&path).chain().exists());

    let log = AuditLog::open(&path, &keys(&path))?;
    assert!(keys(&path).chain().exists() && keys(&path).checkpoint().exists());
    let report = log.verify()?;
    assert_eq!((report.records, report.problem), (6, None));
    // The old records keep their hashes; the upgrade signed a checkpoint of them.
    let records = log.query(&Filter::default())?;
    let kept: Vec<String> = records.iter().map(|r| r.hash.clone()).collect();
    assert_eq!(kept, legacy_hashes);
    let at_upgrade = log.checkpoints()?;
    assert_eq!(at_upgrade.len(), 1);
    assert_eq!(
        (at_upgrade[0].seq, &at_upgrade[0].head),
        (6, &legacy_hashes[5])
    );
    assert_eq!(log.append(sample(7))?, 7);
    assert_eq!(log.append(sample(8))?, 8);
    assert!(log.verify()?.is_intact());
    log.close()?;

    // The new records are keyed, continuing from the last unkeyed hash.
    let conn = raw(&path)?;
    let (prev, hash): (String, String) = conn.query_row(
        "SELECT prev_hash, hash FROM audit_records WHERE seq = 7",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    assert_eq!(prev, legacy_hashes[5]);
    assert_eq!(
        hash,
        documented_mac(
            &chain_key(&path)?,
            &prev,
            &common::documented_canonical(&conn, 7)?
        )
    );

    // The old records need no key to rewrite, yet a rewrite of them is found.
    flip_to_allow(&conn, 3)?;
    rechain(&conn, 3, Rule::Unkeyed)?;
    drop(conn);
    let log = AuditLog::open(&path, &keys(&path))?;
    assert_eq!(
        log.verify()?.problem,
        Some(Tamper::LegacyRewritten { last: 6 })
    );
    Ok(())
}

#[test]
fn a_rewrite_of_only_the_unkeyed_records_is_found_at_the_marker() -> TestResult {
    let (_dir, path) = temp_db()?;
    unkeyed_log(&path, 6)?;
    AuditLog::open(&path, &keys(&path))?.close()?;
    let conn = raw(&path)?;
    flip_to_allow(&conn, 3)?;
    // Recompute 3..=6 by the unkeyed rule, leaving the (empty) keyed part alone.
    rechain(&conn, 3, Rule::Unkeyed)?;
    drop(conn);
    let log = AuditLog::open(&path, &keys(&path))?;
    assert_eq!(
        log.verify()?.problem,
        Some(Tamper::LegacyRewritten { last: 6 })
    );
    Ok(())
}

#[test]
fn a_keyed_log_rewritten_to_look_unkeyed_is_refused_and_reported() -> TestResult {
    let (_dir, path) = temp_db()?;
    fill(&path, 8)?;
    let log = AuditLog::open(&path, &keys(&path))?;

    // The downgrade: every trace of the keyed chain removed, every hash recomputed unkeyed,
    // so the file looks like a log of the old layout, which verifies without a key.
    let conn = raw(&path)?;
    flip_to_allow(&conn, 3)?;
    conn.execute_batch(
        "DROP TABLE audit_chain; DROP TABLE audit_checkpoints;
         ALTER TABLE audit_head DROP COLUMN mac;
         UPDATE audit_meta SET value = '1' WHERE key = 'schema_version';",
    )?;
    rechain(&conn, 1, Rule::Unkeyed)?;
    drop(conn);

    assert_eq!(log.verify()?.problem, Some(Tamper::MarkerInvalid));
    log.close()?;
    match AuditLog::open(&path, &keys(&path)) {
        Err(e @ AuditError::Key { .. }) => {
            let message = e.to_string();
            assert!(message.contains("holds no keyed audit log"), "{message}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn opening_refuses_to_make_new_keys_for_a_log_that_had_them() -> TestResult {
    // The whole log deleted: a new, empty one is not quietly started beside the old key.
    let (_dir, path) = temp_db()?;
    fill(&path, 3)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = path.with_file_name(format!("sigil.db{suffix}"));
        if file.exists() {
            std::fs::remove_file(file)?;
        }
    }
    match AuditLog::open(&path, &keys(&path)) {
        Err(AuditError::Key { reason, .. }) => {
            assert!(reason.contains("holds no keyed audit log"), "{reason}");
            assert!(reason.contains("move the key files"), "{reason}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    // The chain key missing or replaced.
    let (_dir, path) = temp_db()?;
    fill(&path, 3)?;
    let key = chain_key(&path)?;
    std::fs::remove_file(keys(&path).chain())?;
    match AuditLog::open(&path, &keys(&path)) {
        Err(AuditError::Key { reason, .. }) => assert!(reason.contains("is missing"), "{reason}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    std::fs::write(keys(&path).chain(), [0x42u8; 32])?;
    match AuditLog::open(&path, &keys(&path)) {
        Err(AuditError::Key { reason, .. }) => {
            assert!(reason.contains("is not the key"), "{reason}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    std::fs::write(keys(&path).chain(), &key)?;

    // The checkpoint key missing while checkpoints are signed with it.
    std::fs::remove_file(keys(&path).checkpoint())?;
    match AuditLog::open(&path, &keys(&path)) {
        Err(AuditError::Key { reason, .. }) => {
            assert!(reason.contains("checkpoint(s)"), "{reason}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn the_marker_cannot_be_moved_or_removed_without_the_key() -> TestResult {
    for sql in [
        "UPDATE audit_chain SET keyed_from = 100",
        "UPDATE audit_chain SET legacy_head = 'f' || substr(legacy_head, 2)",
        "DELETE FROM audit_chain",
    ] {
        let (_dir, path) = temp_db()?;
        fill(&path, 5)?;
        let log = AuditLog::open(&path, &keys(&path))?;
        raw(&path)?.execute_batch(sql)?;
        assert_eq!(log.verify()?.problem, Some(Tamper::MarkerInvalid), "{sql}");
        log.close()?;
        match AuditLog::open(&path, &keys(&path)) {
            Err(AuditError::Unusable { reason, .. }) => {
                assert!(reason.contains("audit_chain"), "{sql}: {reason}");
            }
            other => return Err(format!("{sql}: expected a refusal, got {other:?}").into()),
        }
    }
    Ok(())
}
