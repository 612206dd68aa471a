//! A call's audit records are committed when its effects need them: a call that only computes
//! commits its decision with its outcome, in one transaction; a host call with an effect
//! proceeds only once everything before it is durable; and a call whose records cannot be
//! committed does not report success.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sigil_audit::{Filter, Record, RecordKind, Verdict};
use sigil_runtime::{
    Builtin, Call, InvokeError, Runtime, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait,
};

const MANIFEST: &str = r#"
id = "effects"
name = "Effects"
version = "1.0.0"
description = "Tools that pause inside the call so the test can look at the audit log."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [{ capability = "kv.*", reason = "keeps state" }]

[execution]
tier = "builtin"
"#;

/// Tells the test a call reached a point, then waits for the test to let it go on.
#[derive(Debug, Default)]
struct Pause {
    reached: Mutex<Option<mpsc::Sender<String>>>,
    resume: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Pause {
    fn hold(&self, call_id: &str) {
        if let Some(reached) = self.reached.lock().unwrap().as_ref() {
            reached.send(call_id.to_string()).unwrap();
        }
        if let Some(resume) = self.resume.lock().unwrap().as_ref() {
            resume.recv_timeout(Duration::from_secs(30)).unwrap();
        }
    }
}

#[derive(Debug)]
struct Effects {
    pause: Arc<Pause>,
}

#[async_trait]
impl ToolPlugin for Effects {
    fn tools(&self) -> Vec<ToolDescriptor> {
        ["compute", "write", "read"]
            .map(|name| ToolDescriptor {
                name: name.into(),
                description: name.into(),
                input_schema: json!({ "type": "object" }),
                output_schema: None,
                steps: Steps::default(),
            })
            .into()
    }

    async fn invoke(&self, call: &Call, _input: Value) -> Result<Value, ToolError> {
        let mut read = None;
        match call.tool() {
            "write" => call.kv_set("note", b"written").await?,
            "read" => read = call.kv_get("note").await?,
            _ => {}
        }
        self.pause.hold(call.call_id());
        Ok(json!({
            "tool": call.tool(),
            "read": read.map(|v| String::from_utf8_lossy(&v).into_owned()),
        }))
    }
}

struct World {
    _dir: tempfile::TempDir,
    sigil: Arc<Runtime>,
    reached: mpsc::Receiver<String>,
    resume: mpsc::Sender<()>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let pause = Arc::new(Pause::default());
    let (reached_tx, reached) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel();
    *pause.reached.lock().unwrap() = Some(reached_tx);
    *pause.resume.lock().unwrap() = Some(resume_rx);
    let builtin = Builtin {
        manifest: MANIFEST,
        plugin: Arc::new(Effects { pause }),
    };
    let sigil = Arc::new(common::open(dir.path(), common::CONFIG, vec![builtin]));
    World {
        _dir: dir,
        sigil,
        reached,
        resume,
    }
}

impl World {
    /// Starts a call of `tool` on its own thread; returns it once the plugin has paused.
    fn start(
        &self,
        tool: &str,
    ) -> (
        String,
        std::thread::JoinHandle<Result<sigil_runtime::Invocation, InvokeError>>,
    ) {
        let (sigil, target) = (self.sigil.clone(), format!("effects/{tool}"));
        let call = std::thread::spawn(move || {
            let actor = sigil.local_actor(Some("alice"), None);
            common::rt().block_on(sigil.invoke(&actor, &target, json!({})))
        });
        let call_id = self.reached.recv_timeout(Duration::from_secs(30)).unwrap();
        (call_id, call)
    }

    fn records_of(&self, call_id: &str) -> Vec<Record> {
        self.sigil
            .audit()
            .query(&Filter {
                call_id: Some(call_id.into()),
                ..Filter::default()
            })
            .unwrap()
    }
}

fn shape(records: &[Record]) -> Vec<(RecordKind, Option<Verdict>, Option<String>)> {
    records
        .iter()
        .map(|r| {
            (
                r.record.kind,
                r.record.decision,
                r.record.capability.clone(),
            )
        })
        .collect()
}

#[test]
fn a_call_without_effects_commits_its_decision_with_its_outcome() {
    let w = world();
    let (call_id, call) = w.start("compute");
    // The plugin is running: nothing it did can be seen outside it, so nothing is committed.
    assert!(w.records_of(&call_id).is_empty());
    w.resume.send(()).unwrap();
    let done = call.join().unwrap().unwrap();
    assert_eq!(done.output["tool"], "compute");
    let records = w.records_of(&call_id);
    assert_eq!(
        shape(&records),
        [
            (
                RecordKind::Decision,
                Some(Verdict::Allow),
                Some("tool.effects.compute".into())
            ),
            (
                RecordKind::Outcome,
                None,
                Some("tool.effects.compute".into())
            ),
        ]
    );
    // One transaction: nothing of another call between them.
    assert_eq!(records[1].seq, records[0].seq + 1);
    assert_eq!(records[1].record.rule, "completed");
    assert_eq!(
        records[1]
            .record
            .steps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["invoke ok"]
    );
    assert!(w.sigil.audit().verify().unwrap().is_intact());
}

#[test]
fn an_effect_proceeds_only_once_the_records_before_it_are_durable() {
    let w = world();
    let (call_id, call) = w.start("write");
    // The key is written: the decision to call and the write's own decision were committed
    // before it was, and are in the log while the call is still running.
    assert_eq!(
        shape(&w.records_of(&call_id)),
        [
            (
                RecordKind::Decision,
                Some(Verdict::Allow),
                Some("tool.effects.write".into())
            ),
            (
                RecordKind::Decision,
                Some(Verdict::Allow),
                Some("kv.write:note".into())
            ),
        ]
    );
    w.resume.send(()).unwrap();
    call.join().unwrap().unwrap();
    let records = w.records_of(&call_id);
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].record.kind, RecordKind::Outcome);
    assert!(w.sigil.audit().verify().unwrap().is_intact());
}

#[test]
fn a_read_waits_in_the_journal_with_the_rest_of_the_call() {
    let w = world();
    let (call_id, call) = w.start("read");
    // A read changes nothing outside the plugin: its decision waits with the call's.
    assert!(w.records_of(&call_id).is_empty());
    w.resume.send(()).unwrap();
    call.join().unwrap().unwrap();
    let records = w.records_of(&call_id);
    assert_eq!(
        shape(&records)
            .into_iter()
            .map(|(_, _, capability)| capability.unwrap_or_default())
            .collect::<Vec<_>>(),
        ["tool.effects.read", "kv.read:note", "tool.effects.read"]
    );
    assert_eq!(records[2].seq, records[0].seq + 2, "one transaction");
}

#[test]
fn a_call_whose_records_cannot_be_committed_does_not_report_success() {
    let w = world();
    let (call_id, call) = w.start("compute");
    // The database breaks while the plugin runs: the call's decision and outcome cannot be
    // committed, so the caller must not be told it succeeded.
    let raw = rusqlite::Connection::open(w.sigil.audit().path()).unwrap();
    raw.execute_batch("ALTER TABLE audit_records RENAME TO audit_records_moved")
        .unwrap();
    w.resume.send(()).unwrap();
    let ended = call.join().unwrap();
    assert!(
        matches!(ended, Err(InvokeError::Audit(_))),
        "the call reported {ended:?}"
    );
    raw.execute_batch("ALTER TABLE audit_records_moved RENAME TO audit_records")
        .unwrap();
    // Nothing of the call reached the log, and what is there still verifies.
    assert!(w.records_of(&call_id).is_empty());
    assert!(w.sigil.audit().verify().unwrap().is_intact());
}

#[test]
fn an_effect_whose_records_cannot_be_committed_is_denied() {
    let w = world();
    let raw = rusqlite::Connection::open(w.sigil.audit().path()).unwrap();
    raw.execute_batch("ALTER TABLE audit_records RENAME TO audit_records_moved")
        .unwrap();
    let actor = w.sigil.local_actor(Some("alice"), None);
    let ended = common::rt().block_on(w.sigil.invoke(&actor, "effects/write", json!({})));
    raw.execute_batch("ALTER TABLE audit_records_moved RENAME TO audit_records")
        .unwrap();
    // The write's decision could not be made durable, so the write was refused: the key was
    // never set, and the call failed.
    assert!(ended.is_err(), "{ended:?}");
    w.resume.send(()).unwrap();
    let read = common::rt()
        .block_on(w.sigil.invoke(&actor, "effects/read", json!({})))
        .unwrap();
    assert_eq!(
        read.output["read"],
        Value::Null,
        "the key was never written"
    );
    assert!(w.sigil.audit().verify().unwrap().is_intact());
}
