//! A deadline holds whatever the plugin does: a compiled-in plugin blocked in a system call
//! (not awaiting anything) ends its call on time with a timeout, recorded as such, and holds
//! none of the runtime's worker threads meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sigil_audit::{Filter, RecordKind};
use sigil_runtime::{
    Builtin, Call, InvokeError, Step, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait,
};

const MANIFEST: &str = r#"
id = "stuck"
name = "Stuck"
version = "1.0.0"
description = "A plugin whose `block` tool blocks its thread until released."
kinds = ["tool"]
engine = "*"

[execution]
tier = "builtin"

[execution.limits]
timeout_ms = 300
"#;

/// Released once: every blocked call returns then.
#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[derive(Debug)]
struct Stuck {
    gate: Arc<Gate>,
}

#[async_trait]
impl ToolPlugin for Stuck {
    fn tools(&self) -> Vec<ToolDescriptor> {
        ["block", "quick"]
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
        if call.tool() == "block" {
            // Blocks the thread it is polled on, as a read of a FIFO without a writer does.
            self.gate.wait();
        }
        Ok(json!({ "tool": call.tool() }))
    }
}

/// More blocked calls than the runtime has worker threads.
const WORKERS: usize = 2;
const BLOCKED: usize = 4;

#[test]
fn a_builtin_blocked_in_a_system_call_times_out_at_its_deadline_while_other_calls_complete() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let builtin = Builtin {
        manifest: MANIFEST,
        plugin: Arc::new(Stuck { gate: gate.clone() }),
    };
    let sigil = Arc::new(common::open(dir.path(), common::CONFIG, vec![builtin]));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    // Should the blocked calls hold the runtime, this ends the wait so the test fails instead
    // of hanging. It never decides the outcome: the calls must have ended long before.
    let watchdog = std::thread::spawn({
        let gate = gate.clone();
        move || {
            std::thread::sleep(Duration::from_secs(60));
            gate.release();
        }
    });

    let (blocked, quick) = rt.block_on(async {
        let actor = sigil.local_actor(Some("alice"), None);
        let blocked: Vec<_> = (0..BLOCKED)
            .map(|_| {
                let (sigil, actor) = (sigil.clone(), actor.clone());
                tokio::spawn(async move { sigil.invoke(&actor, "stuck/block", json!({})).await })
            })
            .collect();
        // Let the blocked calls reach the plugin before the quick one is made.
        tokio::task::yield_now().await;
        // Spawned like the others, so it needs a worker thread too.
        let quick = tokio::spawn({
            let sigil = sigil.clone();
            async move { sigil.invoke(&actor, "stuck/quick", json!({})).await }
        })
        .await
        .unwrap();
        let mut ended = Vec::new();
        for call in blocked {
            ended.push(call.await.unwrap());
        }
        (ended, quick)
    });
    gate.release();

    assert_eq!(quick.unwrap().output, json!({ "tool": "quick" }));
    for ended in blocked {
        assert_eq!(
            ended.unwrap_err(),
            InvokeError::Failed {
                step: Step::Invoke,
                error: "deadline of 300 ms exceeded (execution.limits.timeout_ms)".into(),
                rollback: None,
            }
        );
    }
    let outcomes: Vec<String> = sigil
        .audit()
        .query(&Filter {
            kind: Some(RecordKind::Outcome),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.record.outcome.unwrap())
        .collect();
    let timed_out = outcomes
        .iter()
        .filter(|o| {
            *o == "error: invoke failed: deadline of 300 ms exceeded (execution.limits.timeout_ms)"
        })
        .count();
    assert_eq!(timed_out, BLOCKED, "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ok").count(),
        1,
        "{outcomes:?}"
    );
    drop(rt);
    drop(watchdog);
}

const SLOW_MANIFEST: &str = r#"
id = "slow"
name = "Slow"
version = "1.0.0"
description = "Each step takes two thirds of the call's deadline."
kinds = ["tool"]
engine = "*"

[execution]
tier = "builtin"

[execution.limits]
timeout_ms = 300
"#;

#[derive(Debug)]
struct Slow;

#[async_trait]
impl ToolPlugin for Slow {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![ToolDescriptor {
            name: "steps".into(),
            description: "validates, then works, each for 200 ms".into(),
            input_schema: json!({ "type": "object" }),
            output_schema: None,
            steps: Steps {
                validate_pre: true,
                ..Steps::default()
            },
        }]
    }

    async fn validate_pre(&self, _call: &Call, _input: &Value) -> Result<(), ToolError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }

    async fn invoke(&self, _call: &Call, _input: Value) -> Result<Value, ToolError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(json!({ "done": true }))
    }
}

#[test]
fn one_deadline_covers_every_step_of_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = Builtin {
        manifest: SLOW_MANIFEST,
        plugin: Arc::new(Slow),
    };
    let sigil = common::open(dir.path(), common::CONFIG, vec![builtin]);
    let actor = sigil.local_actor(Some("alice"), None);
    // Each step alone fits the 300 ms; together they do not, and the call ends at the deadline
    // (in its second step, or its first on a machine slow enough).
    let ended = common::rt().block_on(sigil.invoke(&actor, "slow/steps", json!({})));
    match ended {
        Err(InvokeError::Failed { step, error, .. }) => {
            assert!(matches!(step, Step::Invoke | Step::ValidatePre), "{step}");
            assert_eq!(
                error,
                "deadline of 300 ms exceeded (execution.limits.timeout_ms)"
            );
        }
        other => panic!("the call ran past its deadline: {other:?}"),
    }
}
