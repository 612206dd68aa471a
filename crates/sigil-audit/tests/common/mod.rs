//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use sigil_audit::{Actor, AuditLog, KeyFiles, NewRecord, Verdict};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh directory and the database path inside it.
pub fn temp_db() -> Result<(tempfile::TempDir, PathBuf), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sigil.db");
    Ok((dir, path))
}

/// The key files of the log at `path`: `state/` beside it, as in a Sigil data directory.
pub fn keys(path: &Path) -> KeyFiles {
    KeyFiles::in_dir(&path.parent().unwrap_or(Path::new(".")).join("state"))
}

/// The chain key of the log at `path`, as someone who can read the key file has it.
pub fn chain_key(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(keys(path).chain())
}

/// A decision record whose fields all derive from `i`, so records differ.
pub fn sample(i: u64) -> NewRecord {
    let verdict = if i.is_multiple_of(3) {
        Verdict::Deny
    } else {
        Verdict::Allow
    };
    NewRecord::decision(verdict, format!("rule {i}"))
        .with_actor(Actor {
            user: Some(format!("user{}", i % 2)),
            workspace: Some("ws".to_owned()),
            session: None,
            channel: Some("cli".to_owned()),
        })
        .with_plugin(format!("plugin{}", i % 4), Some("1.0.0"))
        .with_capability(format!("fs.read:/data/{i}"))
        .with_call_id(format!("call-{i}"))
}

/// Appends `sample(1..=n)` to a new log at `path` and closes it.
pub fn fill(path: &Path, n: u64) -> Result<(), sigil_audit::AuditError> {
    let log = AuditLog::open(path, &keys(path))?;
    for i in 1..=n {
        log.append(sample(i))?;
    }
    log.close()
}

/// A second, raw connection to the same file, as an attacker or another
/// part of Sigil would have.
pub fn raw(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// The documented chain value, computed independently of the crate:
/// hex(HMAC-SHA256(key, prev_hash ASCII || canonical JSON)).
pub fn documented_mac(key: &[u8], prev_hash: &str, canonical_json: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(prev_hash.as_bytes());
    mac.update(canonical_json.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// The documented MAC of the chain head.
pub fn documented_head_mac(key: &[u8], seq: i64, hash: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("sigil-audit head\n{seq}\n{hash}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The unkeyed rule of logs from before keyed chains, computed independently:
/// hex(SHA-256(prev_hash ASCII || canonical JSON)). What an attacker without
/// the key recomputes.
pub fn documented_hash(prev_hash: &str, canonical_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json.as_bytes());
    hex(&hasher.finalize())
}

/// The documented canonical JSON for the stored row `seq`, built by hand
/// from the raw columns: the `steps` column's text, when there is one, goes in
/// as it is stored.
pub fn documented_canonical(conn: &Connection, seq: i64) -> rusqlite::Result<String> {
    let has_steps: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('audit_records') WHERE name = 'steps')",
        [],
        |row| row.get(0),
    )?;
    let steps: Option<String> = if has_steps {
        conn.query_row(
            "SELECT steps FROM audit_records WHERE seq = ?1",
            [seq],
            |row| row.get(0),
        )?
    } else {
        None
    };
    let steps = steps.map_or_else(String::new, |text| format!(",\"steps\":{text}"));
    conn.query_row(
        "SELECT time_ms, kind, actor_user, actor_workspace, actor_session, actor_channel, \
         plugin, plugin_version, capability, decision, rule, call_id, duration_us, outcome \
         FROM audit_records WHERE seq = ?1",
        [seq],
        |row| {
            let text = |i: usize| -> rusqlite::Result<String> {
                let value: Option<String> = row.get(i)?;
                Ok(match value {
                    Some(s) => serde_json::Value::String(s).to_string(),
                    None => "null".to_owned(),
                })
            };
            let duration: Option<i64> = row.get(12)?;
            Ok(format!(
                "{{\"v\":1,\"time_ms\":{},\"kind\":{},\"user\":{},\"workspace\":{},\"session\":{},\
                 \"channel\":{},\"plugin\":{},\"plugin_version\":{},\"capability\":{},\
                 \"decision\":{},\"rule\":{},\"call_id\":{},\"duration_us\":{},\"outcome\":{}{steps}}}",
                row.get::<_, i64>(0)?,
                text(1)?,
                text(2)?,
                text(3)?,
                text(4)?,
                text(5)?,
                text(6)?,
                text(7)?,
                text(8)?,
                text(9)?,
                text(10)?,
                text(11)?,
                duration.map_or_else(|| "null".to_owned(), |d| d.to_string()),
                text(13)?,
            ))
        },
    )
}

/// How an attacker recomputes chain values after an edit.
#[derive(Debug, Clone, Copy)]
pub enum Rule<'a> {
    /// SHA-256, the documented rule of logs from before keyed chains: all one can do
    /// without the chain key.
    Unkeyed,
    /// HMAC-SHA256 under this key: the real one (the attacker read the key file) or a guess.
    Keyed(&'a [u8]),
}

impl Rule<'_> {
    pub fn value(self, prev_hash: &str, canonical_json: &str) -> String {
        match self {
            Rule::Unkeyed => documented_hash(prev_hash, canonical_json),
            Rule::Keyed(key) => documented_mac(key, prev_hash, canonical_json),
        }
    }
}

/// Recomputes the chain value of every record from `from` on, relinking each
/// `prev_hash`, and points the head at the last one (with a head MAC under
/// the rule's key, when it has one): a whole rewrite from one record onward.
pub fn rechain(conn: &Connection, from: i64, rule: Rule<'_>) -> rusqlite::Result<()> {
    let mut prev: String = conn.query_row(
        "SELECT prev_hash FROM audit_records WHERE seq = ?1",
        [from],
        |row| row.get(0),
    )?;
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM audit_records WHERE seq >= ?1 ORDER BY seq")?
        .query_map([from], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut last = from - 1;
    for seq in seqs {
        let value = rule.value(&prev, &documented_canonical(conn, seq)?);
        conn.execute(
            "UPDATE audit_records SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, value, seq],
        )?;
        prev = value;
        last = seq;
    }
    let mac = match rule {
        Rule::Unkeyed => None,
        Rule::Keyed(key) => Some(documented_head_mac(key, last, &prev)),
    };
    match mac {
        Some(mac) => conn.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2, mac = ?3",
            rusqlite::params![last, prev, mac],
        )?,
        None => conn.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2",
            rusqlite::params![last, prev],
        )?,
    };
    Ok(())
}

/// Polls `future` to completion on the current thread.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
