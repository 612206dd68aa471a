//! Hook dispatch in the runtime, with a compiled-in hook plugin beside the probe: each verdict
//! and each way a hook can fail, what the tool then receives, the payloads hooks see, and the
//! audit record of each hook run. (The process tier's hooks, in their sandbox, are tested in
//! `crates/sigil-process/tests/hooks.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sigil_audit::{Filter, RecordKind, Verdict};
use sigil_runtime::{
    ApprovalDecision, Builtin, Call, HookEvent, HookVerdict, InvokeError, Runtime, State,
    ToolDescriptor, ToolError, ToolPlugin, async_trait,
};

const GATE_MANIFEST: &str = r#"
id = "gate"
name = "Gate"
version = "0.3.0"
description = "A hook whose verdict the probe's `message` chooses."
kinds = ["hook"]
engine = "*"

[execution]
tier = "builtin"

[[hooks]]
event = "before_tool_execute"
timeout_ms = 200

[[hooks]]
event = "after_tool_execute"
timeout_ms = 200
"#;

/// The payloads the gate saw, by event.
type Seen = Arc<Mutex<Vec<(HookEvent, Value)>>>;

#[derive(Debug, Default)]
struct Gate {
    seen: Seen,
}

#[async_trait]
impl ToolPlugin for Gate {
    fn tools(&self) -> Vec<ToolDescriptor> {
        Vec::new()
    }

    fn handles_hooks(&self) -> bool {
        true
    }

    async fn invoke(&self, _call: &Call, _input: Value) -> Result<Value, ToolError> {
        Err(ToolError::Failed("the gate has no tools".into()))
    }

    async fn on_event(
        &self,
        call: &Call,
        event: HookEvent,
        payload: &Value,
        _timeout: Duration,
    ) -> Result<HookVerdict, ToolError> {
        assert_eq!(call.plugin(), "gate");
        assert_eq!(call.tool(), event.as_str());
        assert_eq!(Some(call.call_id()), payload["call_id"].as_str());
        self.seen.lock().unwrap().push((event, payload.clone()));
        if event == HookEvent::AfterToolExecute {
            // Ignored: after-hooks observe.
            return Ok(HookVerdict::Deny("too late to deny".into()));
        }
        let message = payload["input"]["message"].as_str().unwrap_or_default();
        let mut patched = payload.clone();
        Ok(match message {
            "panic" => panic!("the gate panics on purpose"),
            "error" => return Err(ToolError::Failed("the gate is broken".into())),
            "hang" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                HookVerdict::Allow
            }
            "deny" => HookVerdict::Deny("not this one".into()),
            "ask" => HookVerdict::Ask("a human should decide".into()),
            "not-object" => HookVerdict::Patch(json!("hello")),
            "no-input" => HookVerdict::Patch(json!({ "plugin": "probe" })),
            "extra-field" => {
                patched["input"]["extra"] = json!(1);
                HookVerdict::Patch(patched)
            }
            "retarget" => {
                // Only `input` is taken from a patch: the target stays.
                patched["tool"] = json!("forbidden");
                patched["input"]["message"] = json!("retargeted");
                HookVerdict::Patch(patched)
            }
            "shout" => {
                patched["input"]["message"] = json!("SHOUT");
                HookVerdict::Patch(patched)
            }
            _ => HookVerdict::Allow,
        })
    }
}

fn sigil() -> (tempfile::TempDir, Runtime, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let (probe, _) = common::probe();
    let gate = Gate::default();
    let seen = gate.seen.clone();
    let runtime = common::open(
        dir.path(),
        common::CONFIG,
        vec![
            probe,
            Builtin {
                manifest: GATE_MANIFEST,
                plugin: Arc::new(gate),
            },
        ],
    );
    let state = runtime.manager().get("gate").unwrap().lifecycle().state();
    assert_eq!(state, State::Running);
    (dir, runtime, seen)
}

fn echo(sigil: &Runtime, message: &str) -> Result<sigil_runtime::Invocation, InvokeError> {
    let actor = sigil.local_actor(Some("alice"), None);
    common::rt().block_on(sigil.invoke(&actor, "probe/echo", json!({ "message": message })))
}

/// (decision, rule) of the gate's decision records, and the outcomes of its after-hook runs,
/// for the last call.
fn gate_records(sigil: &Runtime) -> (Vec<(Option<Verdict>, String)>, Vec<String>) {
    let records = sigil
        .audit()
        .query(&Filter {
            plugin: Some("gate".into()),
            ..Filter::default()
        })
        .unwrap();
    let last_call = records.last().unwrap().record.call_id.clone();
    let of_call = records
        .iter()
        .filter(|r| r.record.call_id == last_call)
        .map(|r| &r.record);
    let mut decisions = Vec::new();
    let mut observed = Vec::new();
    for record in of_call {
        match record.kind {
            RecordKind::Outcome => {
                assert_eq!(
                    record.capability.as_deref(),
                    Some("hook.after_tool_execute")
                );
                assert_eq!(record.rule, "hook gate: observed after_tool_execute");
                observed.push(record.outcome.clone().unwrap_or_default());
            }
            _ => {
                assert_eq!(record.kind, RecordKind::Decision);
                assert_eq!(
                    record.capability.as_deref(),
                    Some("hook.before_tool_execute")
                );
                assert_eq!(record.plugin_version.as_deref(), Some("0.3.0"));
                decisions.push((record.decision, record.rule.clone()));
            }
        }
    }
    (decisions, observed)
}

/// The probe's `message`, the call's result, and the gate's decision record.
type Case = (&'static str, Result<Value, InvokeError>, (Verdict, String));

#[test]
fn each_verdict_and_failure_of_a_before_hook_decides_the_call() {
    let denied = |reason: &str| {
        Err(InvokeError::HookDenied {
            hook: "gate".into(),
            reason: reason.into(),
        })
    };
    let schema_break = "its patch was rejected: the patched input does not match the input schema of `probe/echo`: at `/`: Additional properties are not allowed ('extra' was unexpected)";
    let cases: Vec<Case> = vec![
        (
            "hello",
            Ok(json!({ "message": "hello" })),
            (Verdict::Allow, "hook gate: allow".into()),
        ),
        (
            "shout",
            Ok(json!({ "message": "SHOUT" })),
            (Verdict::Allow, "hook gate: patched the input".into()),
        ),
        (
            "retarget",
            Ok(json!({ "message": "retargeted" })),
            (Verdict::Allow, "hook gate: patched the input".into()),
        ),
        (
            "deny",
            denied("not this one"),
            (Verdict::Deny, "hook gate: deny: not this one".into()),
        ),
        (
            "extra-field",
            denied(schema_break),
            (
                Verdict::Deny,
                format!(
                    "hook gate: patch rejected: {}",
                    schema_break.trim_start_matches("its patch was rejected: ")
                ),
            ),
        ),
        (
            "not-object",
            denied("its patch was rejected: a patch must be the event's payload, a JSON object with `input`"),
            (
                Verdict::Deny,
                "hook gate: patch rejected: a patch must be the event's payload, a JSON object with `input`".into(),
            ),
        ),
        (
            "no-input",
            denied("its patch was rejected: the patched payload has no `input`"),
            (
                Verdict::Deny,
                "hook gate: patch rejected: the patched payload has no `input`".into(),
            ),
        ),
        (
            "error",
            denied("failed: the gate is broken"),
            (Verdict::Deny, "hook gate: failed: the gate is broken".into()),
        ),
        (
            "panic",
            denied("failed: the hook panicked"),
            (Verdict::Deny, "hook gate: failed: the hook panicked".into()),
        ),
        (
            "hang",
            denied("timed out after 200 ms (hooks.timeout_ms)"),
            (
                Verdict::Deny,
                "hook gate: timed out after 200 ms (hooks.timeout_ms)".into(),
            ),
        ),
    ];
    let (_dir, sigil, _) = sigil();
    for (message, expected, (verdict, rule)) in cases {
        let result = echo(&sigil, message).map(|i| i.output);
        assert_eq!(result, expected, "{message}");
        let (decisions, observed) = gate_records(&sigil);
        assert_eq!(decisions, vec![(Some(verdict), rule)], "{message}");
        // After-hooks run only for calls that reached the tool; their verdict changes nothing.
        let expected_observed: Vec<String> = if expected.is_ok() {
            vec!["ok".into()]
        } else {
            Vec::new()
        };
        assert_eq!(observed, expected_observed, "{message}");
    }
}

#[test]
fn hooks_see_the_call_but_never_more_and_after_hooks_see_the_result() {
    let (_dir, sigil, seen) = sigil();
    let mut events = sigil.subscribe();
    let done = echo(&sigil, "shout").unwrap();
    // The hook's decision is published like the enforcer's, once recorded.
    let mut published = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let sigil_runtime::Event::Decision {
            plugin,
            capability,
            rule,
            call_id,
            ..
        } = event
        {
            published.push((plugin, capability, rule, call_id));
        }
    }
    assert!(
        published.contains(&(
            Some("gate".to_string()),
            "hook.before_tool_execute".to_string(),
            "hook gate: patched the input".to_string(),
            Some(done.call_id.clone())
        )),
        "{published:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let actor = json!({ "user": "alice", "workspace": "home", "session": null, "channel": "cli" });
    assert_eq!(
        seen[0],
        (
            HookEvent::BeforeToolExecute,
            json!({
                "plugin": "probe",
                "tool": "echo",
                "input": { "message": "shout" },
                "actor": actor,
                "call_id": done.call_id,
            })
        )
    );
    // The after-hook sees the input the tool ran with (the patched one) and its output.
    assert_eq!(
        seen[1],
        (
            HookEvent::AfterToolExecute,
            json!({
                "plugin": "probe",
                "tool": "echo",
                "input": { "message": "SHOUT" },
                "output": { "message": "SHOUT" },
                "actor": actor,
                "call_id": done.call_id,
            })
        )
    );
}

#[test]
fn a_failed_call_is_observed_with_its_error() {
    let (_dir, sigil, seen) = sigil();
    let actor = sigil.local_actor(Some("alice"), None);
    let error = common::rt()
        .block_on(sigil.invoke(&actor, "probe/bad_output", json!({})))
        .unwrap_err();
    let seen = seen.lock().unwrap().clone();
    let (event, payload) = seen.last().unwrap();
    assert_eq!(*event, HookEvent::AfterToolExecute);
    assert_eq!(payload["error"], json!(error.to_string()));
    assert!(payload.get("output").is_none());
}

#[derive(Debug)]
struct Deaf;

#[async_trait]
impl ToolPlugin for Deaf {
    fn tools(&self) -> Vec<ToolDescriptor> {
        Vec::new()
    }

    async fn invoke(&self, _call: &Call, _input: Value) -> Result<Value, ToolError> {
        Ok(json!({}))
    }
}

#[test]
fn a_hook_plugin_that_cannot_receive_its_events_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let without_kind = GATE_MANIFEST
        .replace("id = \"gate\"", "id = \"nokind\"")
        .replace("kinds = [\"hook\"]", "kinds = [\"tool\"]");
    let deaf = GATE_MANIFEST.replace("id = \"gate\"", "id = \"deaf\"");
    let sigil = common::open(
        dir.path(),
        common::CONFIG,
        vec![
            Builtin {
                manifest: Box::leak(without_kind.into_boxed_str()),
                plugin: Arc::new(Gate::default()),
            },
            Builtin {
                manifest: Box::leak(deaf.into_boxed_str()),
                plugin: Arc::new(Deaf),
            },
        ],
    );
    let error = |id: &str| {
        let entry = sigil.manager().get(id).unwrap();
        assert_eq!(entry.lifecycle().state(), State::Error, "{id}");
        entry.lifecycle().error().unwrap_or_default()
    };
    assert_eq!(
        error("nokind"),
        "subscribes to hook events (`[[hooks]]`) but its manifest's `kinds` does not list `hook`"
    );
    assert_eq!(
        error("deaf"),
        "subscribes to hook events (`[[hooks]]`), but the `builtin` tier does not deliver them to this plugin"
    );
}

/// Runs `probe/echo` with message `ask` while a person decides the pending approval the gate's
/// `ask` verdict creates; returns the call's result and the pending approval's reason.
fn asked_and_decided(
    sigil: &Runtime,
    decision: ApprovalDecision,
) -> (Result<Value, InvokeError>, String) {
    let actor = sigil.local_actor(Some("alice"), None);
    let decider = sigil.local_actor(Some("bob"), None);
    common::rt().block_on(async {
        let call = sigil.invoke(&actor, "probe/echo", json!({ "message": "ask" }));
        let decide = async {
            loop {
                if let Some(pending) = sigil.pending_approvals().pop() {
                    sigil
                        .decide_approval(&pending.id, decision, &decider, None)
                        .await
                        .unwrap();
                    return pending.reason;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let (result, reason) = tokio::join!(call, decide);
        (result.map(|i| i.output), reason)
    })
}

#[test]
fn a_hook_asking_for_approval_makes_the_call_wait_for_a_person() {
    let (_dir, sigil, _) = sigil();
    let asked = (
        Some(Verdict::Allow),
        "hook gate: asks for a person's approval: a human should decide".to_string(),
    );

    let (result, reason) = asked_and_decided(&sigil, ApprovalDecision::Approve);
    assert_eq!(reason, "hook gate asks: a human should decide");
    assert_eq!(result, Ok(json!({ "message": "ask" })));
    let (decisions, observed) = gate_records(&sigil);
    assert_eq!(decisions, vec![asked.clone()]);
    assert_eq!(observed, vec!["ok".to_string()]);

    let (result, _) = asked_and_decided(&sigil, ApprovalDecision::Deny);
    match result {
        Err(InvokeError::ApprovalDenied {
            plugin,
            tool,
            approval,
            ..
        }) => {
            assert_eq!((plugin.as_str(), tool.as_str()), ("probe", "echo"));
            assert!(approval.is_some());
        }
        other => panic!("a denied approval let the call through: {other:?}"),
    }
    let (decisions, observed) = gate_records(&sigil);
    assert_eq!(decisions, vec![asked]);
    assert!(observed.is_empty(), "the denied call reached the tool");
    // The approval's request and decision are recorded under the call's id.
    let records = sigil.audit().query(&Filter::default()).unwrap();
    let approvals: Vec<_> = records
        .iter()
        .filter(|r| r.record.kind == RecordKind::Approval)
        .map(|r| r.record.decision)
        .collect();
    assert_eq!(
        approvals,
        vec![None, Some(Verdict::Allow), None, Some(Verdict::Deny)]
    );
}
