//! Calls held for a person's approval by blast radius: approved calls run, denied and timed-out
//! calls never reach the plugin, calls outside the rules do not wait, and every step is an
//! audit record sharing the call's id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sigil_audit::{Filter, Record, RecordKind, Verdict};
use sigil_runtime::{
    ApprovalDecision, ApprovalError, ApprovalMode, Builtin, Event, InvokeError, PendingApproval,
    Runtime,
};

/// The probe, with blast radii: `echo` stays in its sandbox, `host` reaches the host
/// (reversibly), the rest declare nothing.
const MANIFEST: &str = r#"
id = "probe"
name = "Probe"
version = "1.2.3"
description = "A plugin whose tools misbehave on request."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [{ capability = "kv.*", reason = "keeps state" }]

[execution]
tier = "builtin"

[execution.limits]
timeout_ms = 300

[actions.echo]
scope = "vm"
mutates_state = false
reversible = true

[actions.host]
scope = "host"
mutates_state = false
reversible = true
"#;

fn config(timeout_ms: u64) -> String {
    format!(
        r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

[users.bob]
permissions = ["tool.probe.*", "approvals.decide"]

[approvals]
require = ["scope:host", "irreversible"]
timeout_ms = {timeout_ms}
"#
    )
}

fn open(dir: &Path, timeout_ms: u64) -> (Arc<Runtime>, common::Journal) {
    let probe = common::Probe::default();
    let journal = probe.journal.clone();
    let builtin = Builtin {
        manifest: MANIFEST,
        plugin: Arc::new(probe),
    };
    let runtime = common::open(dir, &config(timeout_ms), vec![builtin]);
    (Arc::new(runtime), journal)
}

fn records_of(sigil: &Runtime, call_id: &str) -> Vec<Record> {
    sigil
        .audit()
        .query(&Filter {
            call_id: Some(call_id.into()),
            ..Filter::default()
        })
        .unwrap()
}

/// (kind, verdict, user) of each record of the call, in order.
fn steps(records: &[Record]) -> Vec<(RecordKind, Option<Verdict>, Option<String>)> {
    records
        .iter()
        .map(|r| {
            (
                r.record.kind,
                r.record.decision,
                r.record.actor.user.clone(),
            )
        })
        .collect()
}

fn user(name: &str) -> sigil_audit::Actor {
    sigil_audit::Actor {
        user: Some(name.into()),
        workspace: Some("home".into()),
        session: None,
        channel: Some("test".into()),
    }
}

/// Starts `alice`'s call of `target` in the background and returns it with the approval it
/// waits for, as published.
async fn held_call(
    sigil: &Arc<Runtime>,
    target: &'static str,
    input: serde_json::Value,
) -> (
    tokio::task::JoinHandle<Result<sigil_runtime::Invocation, InvokeError>>,
    PendingApproval,
) {
    let mut events = sigil.subscribe();
    let runtime = sigil.clone();
    let call = tokio::spawn(async move { runtime.invoke(&user("alice"), target, input).await });
    let approval = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Event::ApprovalRequested { approval } = events.recv().await.unwrap() {
                return approval;
            }
        }
    })
    .await
    .expect("no approval_requested event");
    (call, approval)
}

async fn decided_event(events: &mut tokio::sync::broadcast::Receiver<Event>, id: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = events.recv().await.unwrap();
            if matches!(&event, Event::ApprovalDecided { id: i, .. } if i == id) {
                return event;
            }
        }
    })
    .await
    .expect("no approval_decided event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_runs_and_every_step_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    let mut events = sigil.subscribe();
    // `pipeline` declares no blast radius: it is taken as irreversible.
    let (call, approval) = held_call(&sigil, "probe/pipeline", json!({ "message": "hi" })).await;
    assert_eq!(
        (approval.plugin.as_str(), approval.tool.as_str()),
        ("probe", "pipeline")
    );
    assert_eq!(approval.actor.user.as_deref(), Some("alice"));
    assert_eq!(approval.input, json!({ "message": "hi" }));
    assert!(
        approval
            .reason
            .contains("approvals.require[1] `irreversible`")
            && approval.reason.contains("no blast radius declared"),
        "{}",
        approval.reason
    );
    assert!(approval.deadline_ms - approval.created_ms == 60_000);
    assert_eq!(sigil.pending_approvals(), vec![approval.clone()]);
    assert!(
        journal.lock().unwrap().is_empty(),
        "the plugin ran before approval"
    );

    // The caller cannot approve their own call.
    let own = sigil
        .decide_approval(
            &approval.id,
            ApprovalDecision::Approve,
            &user("alice"),
            None,
        )
        .await;
    assert!(
        matches!(own, Err(ApprovalError::OwnCall { ref user, .. }) if user == "alice"),
        "{own:?}"
    );
    assert_eq!(sigil.pending_approvals().len(), 1);

    let decided = sigil
        .decide_approval(
            &approval.id,
            ApprovalDecision::Approve,
            &user("bob"),
            Some("looks fine"),
        )
        .await
        .unwrap();
    assert_eq!(decided.rule, "approved by bob: looks fine");
    let invocation = call.await.unwrap().unwrap();
    assert_eq!(invocation.call_id, approval.call_id);
    assert_eq!(invocation.output, json!({ "done": true }));
    assert_eq!(
        *journal.lock().unwrap(),
        vec!["validate_pre", "invoke", "validate_post {\"done\":true}"]
    );
    assert!(sigil.pending_approvals().is_empty());
    let Event::ApprovalDecided {
        decision,
        decided_by,
        call_id,
        ..
    } = decided_event(&mut events, &approval.id).await
    else {
        unreachable!()
    };
    assert_eq!(
        (decision, decided_by.as_deref(), call_id.as_str()),
        (
            ApprovalDecision::Approve,
            Some("bob"),
            approval.call_id.as_str()
        )
    );

    let records = records_of(&sigil, &approval.call_id);
    assert_eq!(
        steps(&records),
        vec![
            (
                RecordKind::Decision,
                Some(Verdict::Allow),
                Some("alice".into())
            ),
            (RecordKind::Approval, None, Some("alice".into())),
            (
                RecordKind::Approval,
                Some(Verdict::Allow),
                Some("bob".into())
            ),
            (RecordKind::Outcome, None, Some("alice".into())),
        ]
    );
    assert!(records[1].record.rule.contains(&approval.id));
    assert!(
        records[1]
            .record
            .rule
            .contains("approvals.require[1] `irreversible`")
    );
    assert_eq!(
        records[1].record.capability.as_deref(),
        Some("tool.probe.pipeline")
    );
    assert_eq!(records[2].record.rule, "approved by bob: looks fine");
    assert_eq!(records[3].record.outcome.as_deref(), Some("ok"));

    // Deciding again, or an id that never was, is an error.
    let again = sigil
        .decide_approval(&approval.id, ApprovalDecision::Deny, &user("bob"), None)
        .await;
    assert!(
        matches!(&again, Err(ApprovalError::AlreadyDecided { outcome, .. }) if outcome == "approved by bob: looks fine"),
        "{again:?}"
    );
    let unknown = sigil
        .decide_approval("nope", ApprovalDecision::Approve, &user("bob"), None)
        .await;
    assert_eq!(unknown.err(), Some(ApprovalError::NotFound("nope".into())));
    assert!(sigil.audit().verify().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_never_reaches_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    let (call, approval) = held_call(&sigil, "probe/pipeline", json!({ "message": "hi" })).await;
    // The caller may withdraw (deny) their own call.
    sigil
        .decide_approval(
            &approval.id,
            ApprovalDecision::Deny,
            &user("alice"),
            Some("  changed my mind "),
        )
        .await
        .unwrap();
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(
        error,
        InvokeError::ApprovalDenied {
            plugin: "probe".into(),
            tool: "pipeline".into(),
            approval: Some(approval.id.clone()),
            reason: "denied by alice: changed my mind".into(),
        }
    );
    assert!(journal.lock().unwrap().is_empty(), "a denied call ran");
    let records = records_of(&sigil, &approval.call_id);
    assert_eq!(
        steps(&records),
        vec![
            (
                RecordKind::Decision,
                Some(Verdict::Allow),
                Some("alice".into())
            ),
            (RecordKind::Approval, None, Some("alice".into())),
            (
                RecordKind::Approval,
                Some(Verdict::Deny),
                Some("alice".into())
            ),
            (RecordKind::Outcome, None, Some("alice".into())),
        ]
    );
    assert_eq!(records[3].record.rule, "stopped at approval");
    assert_eq!(records[3].record.steps.len(), 1);
    assert_eq!(records[3].record.steps[0].step, "approval");
    assert!(!records[3].record.steps[0].ok);
    assert!(
        records[3]
            .record
            .outcome
            .as_deref()
            .unwrap()
            .contains("was not approved: denied by alice")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_decides_times_out_to_deny() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 300);
    let mut events = sigil.subscribe();
    let (call, approval) =
        held_call(&sigil, "probe/host", json!({ "capability": "kv.read:x" })).await;
    assert!(
        approval
            .reason
            .contains("approvals.require[0] `scope:host`"),
        "{}",
        approval.reason
    );
    assert!(
        !approval.reason.contains("irreversible"),
        "{}",
        approval.reason
    );
    let error = call.await.unwrap().unwrap_err();
    let InvokeError::ApprovalDenied { reason, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(reason.contains("timed out after 300 ms"), "{reason}");
    assert!(journal.lock().unwrap().is_empty());
    assert!(sigil.pending_approvals().is_empty());
    let Event::ApprovalDecided {
        decision,
        decided_by,
        ..
    } = decided_event(&mut events, &approval.id).await
    else {
        unreachable!()
    };
    assert_eq!((decision, decided_by), (ApprovalDecision::Deny, None));
    let records = records_of(&sigil, &approval.call_id);
    assert_eq!(
        steps(&records)[1..3],
        [
            (RecordKind::Approval, None, Some("alice".into())),
            (
                RecordKind::Approval,
                Some(Verdict::Deny),
                Some("alice".into())
            ),
        ]
    );
    assert!(records[2].record.rule.contains("(approvals.timeout_ms)"));
    // Too late to decide.
    let late = sigil
        .decide_approval(&approval.id, ApprovalDecision::Approve, &user("bob"), None)
        .await;
    assert!(
        matches!(late, Err(ApprovalError::AlreadyDecided { .. })),
        "{late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_outside_the_rules_runs_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, _) = open(dir.path(), 60_000);
    let invocation = sigil
        .invoke(&user("alice"), "probe/echo", json!({ "message": "hi" }))
        .await
        .unwrap();
    assert_eq!(invocation.output, json!({ "message": "hi" }));
    let kinds: Vec<RecordKind> = records_of(&sigil, &invocation.call_id)
        .iter()
        .map(|r| r.record.kind)
        .collect();
    assert_eq!(kinds, vec![RecordKind::Decision, RecordKind::Outcome]);
    // A call the enforcer denies is never held either.
    let denied = sigil
        .invoke(&user("carol"), "probe/pipeline", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(denied, InvokeError::Denied { .. }), "{denied:?}");
    assert!(sigil.pending_approvals().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_nobody_can_decide_the_call_is_refused_at_once_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    sigil.set_approval_mode(ApprovalMode::Refuse);
    let started = std::time::Instant::now();
    let error = sigil
        .invoke(
            &user("alice"),
            "probe/host",
            json!({ "capability": "kv.read:x" }),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    let InvokeError::ApprovalDenied {
        approval, reason, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*approval, None);
    assert!(
        reason.contains("sigil serve") && reason.contains("scope:host"),
        "{reason}"
    );
    assert!(journal.lock().unwrap().is_empty());
    let denials = sigil
        .audit()
        .query(&Filter {
            kind: Some(RecordKind::Approval),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].record.decision, Some(Verdict::Deny));
    assert!(denials[0].record.rule.contains("nobody can decide it here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_withdraws_its_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    let mut events = sigil.subscribe();
    let (call, approval) = held_call(&sigil, "probe/pipeline", json!({ "message": "hi" })).await;
    call.abort();
    let _ = call.await;
    let Event::ApprovalDecided { rule, .. } = decided_event(&mut events, &approval.id).await else {
        unreachable!()
    };
    assert!(rule.contains("withdrawn"), "{rule}");
    assert!(sigil.pending_approvals().is_empty());
    assert!(journal.lock().unwrap().is_empty());
    // The withdrawal's record is written without anyone waiting for it.
    let mut records = Vec::new();
    for _ in 0..200 {
        records = records_of(&sigil, &approval.call_id);
        if records.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(records[2].record.decision, Some(Verdict::Deny));
    assert!(records[2].record.rule.contains("withdrawn"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_configuration_applies_to_calls_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    let relaxed = config(60_000).replace(
        r#"require = ["scope:host", "irreversible"]"#,
        r#"require = ["tool:probe/echo"]"#,
    );
    sigil.reconfigure_approvals(
        &sigil_runtime::Config::parse(&relaxed, Path::new("sigil.toml")).unwrap(),
    );
    // `pipeline` needed an approval before; now it runs at once, and `echo` waits.
    let ran = sigil
        .invoke(&user("alice"), "probe/pipeline", json!({}))
        .await
        .unwrap();
    assert_eq!(ran.output, json!({ "done": true }));
    assert_eq!(journal.lock().unwrap().len(), 3);
    let (call, approval) = held_call(&sigil, "probe/echo", json!({ "message": "hi" })).await;
    assert!(
        approval
            .reason
            .contains("approvals.require[0] `tool:probe/echo`"),
        "{}",
        approval.reason
    );
    sigil
        .decide_approval(&approval.id, ApprovalDecision::Approve, &user("bob"), None)
        .await
        .unwrap();
    assert_eq!(
        call.await.unwrap().unwrap().output,
        json!({ "message": "hi" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_approved_after_its_plugin_was_disabled_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    let (call, approval) = held_call(&sigil, "probe/pipeline", json!({})).await;
    let runtime = sigil.clone();
    let disabled = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || runtime.disable("probe")),
    )
    .await
    .expect("the disable waited for the pending approval");
    assert_eq!(
        disabled.unwrap().unwrap().state,
        sigil_runtime::State::Stopped
    );
    sigil
        .decide_approval(&approval.id, ApprovalDecision::Approve, &user("bob"), None)
        .await
        .unwrap();
    let error = call.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, InvokeError::NotRunning { reason: Some(r), .. } if r.contains("waited for approval")),
        "{error:?}"
    );
    assert!(journal.lock().unwrap().is_empty());
}

#[test]
fn approval_rules_are_checked_when_sigil_toml_loads() {
    for (section, says) in [
        (
            "[approvals]\nrequire = [\"scope:host\", \"scope:moon\"]",
            "approvals.require[1]: `scope:moon`: unknown scope `moon`",
        ),
        (
            "[approvals]\nrequire = [\"tool:fs\"]",
            "approvals.require[0]: `tool:fs`: write the tool as `tool:PLUGIN/TOOL`",
        ),
        (
            "[approvals]\ntimeout_ms = 0",
            "approvals.timeout_ms: must be at least 1",
        ),
        ("[approvals]\nrequires = []", "unknown field `requires`"),
    ] {
        let error = sigil_runtime::Config::parse(section, Path::new("sigil.toml"))
            .err()
            .unwrap_or_else(|| panic!("{section} was accepted"));
        assert!(error.to_string().contains(says), "{section}: {error}");
        assert!(error.to_string().starts_with("sigil.toml: "), "{error}");
    }
    let config = sigil_runtime::Config::parse(
        "[approvals]\nrequire = [\"irreversible\", \"tool:fs/read_text\"]\ntimeout_ms = 1500",
        Path::new("sigil.toml"),
    )
    .unwrap();
    let rules: Vec<String> = config
        .approval_rules()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(rules, vec!["irreversible", "tool:fs/read_text"]);
    assert_eq!(config.approval_timeout(), Duration::from_millis(1500));
    // The default configuration requires nothing.
    let default =
        sigil_runtime::Config::parse(sigil_runtime::DEFAULT_CONFIG, Path::new("sigil.toml"))
            .unwrap();
    assert!(default.approval_rules().is_empty());
    assert_eq!(
        default.approval_timeout(),
        sigil_runtime::DEFAULT_APPROVAL_TIMEOUT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_revoked_while_a_call_waits_stops_it_after_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (sigil, journal) = open(dir.path(), 60_000);
    let (call, approval) = held_call(&sigil, "probe/pipeline", json!({})).await;

    // While a person decides, the operator takes the tool away from alice.
    let revoked = config(60_000).replace(
        "[users.alice]\npermissions = [\"*\"]",
        "[users.alice]\npermissions = [\"kv.*\"]",
    );
    std::fs::write(dir.path().join("sigil.toml"), revoked).unwrap();
    sigil.reload_config(&user("bob")).unwrap();
    sigil
        .decide_approval(&approval.id, ApprovalDecision::Approve, &user("bob"), None)
        .await
        .unwrap();

    match call.await.unwrap() {
        Err(InvokeError::Denied { rule }) => {
            assert!(rule.contains("checked again after the approval"), "{rule}");
        }
        other => panic!("a call whose permission was revoked ran: {other:?}"),
    }
    assert!(journal.lock().unwrap().is_empty(), "the plugin was called");
    let records = records_of(&sigil, &approval.call_id);
    let last = records.last().unwrap();
    assert_eq!(last.record.kind, RecordKind::Outcome);
    assert!(
        last.record
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("checked again after the approval")),
        "{:?}",
        last.record.outcome
    );
}

fn in_workspace(name: &str, workspace: &str) -> sigil_audit::Actor {
    sigil_audit::Actor {
        workspace: Some(workspace.into()),
        ..user(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decider_is_judged_in_the_workspace_of_the_call_whatever_workspace_it_names() {
    let dir = tempfile::tempdir().unwrap();
    // `home` denies approval decisions, `lab` allows them; alice and bob belong to both.
    let text = config(60_000)
        .replace(
            "[workspaces.home]\nallow = [\"*\"]\n",
            "[workspaces.home]\nallow = [\"*\"]\ndeny = [\"approvals.decide\"]\n\n[workspaces.lab]\nallow = [\"*\"]\n",
        )
        .replace(
            "[users.alice]\npermissions = [\"*\"]\n",
            "[users.alice]\npermissions = [\"*\"]\nworkspaces = [\"home\", \"lab\"]\n",
        )
        .replace(
            "[users.bob]\npermissions = [\"tool.probe.*\", \"approvals.decide\"]\n",
            "[users.bob]\npermissions = [\"tool.probe.*\", \"approvals.decide\"]\nworkspaces = [\"home\", \"lab\"]\n",
        );
    assert!(text.contains("[workspaces.lab]") && text.matches("workspaces = ").count() == 2);
    let sigil = Arc::new(common::open(
        dir.path(),
        &text,
        vec![Builtin {
            manifest: MANIFEST,
            plugin: Arc::new(common::Probe::default()),
        }],
    ));
    let held_in = |workspace: &'static str| {
        let runtime = sigil.clone();
        let mut events = sigil.subscribe();
        async move {
            let call = tokio::spawn(async move {
                let alice = in_workspace("alice", workspace);
                runtime.invoke(&alice, "probe/pipeline", json!({})).await
            });
            let approval = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    if let Event::ApprovalRequested { approval } = events.recv().await.unwrap() {
                        return approval;
                    }
                }
            })
            .await
            .expect("no approval_requested event");
            (call, approval)
        }
    };

    // Bob naming `lab`, where he may decide, cannot approve a call made in `home`.
    let (in_home, approval) = held_in("home").await;
    let refused = sigil
        .decide_approval(
            &approval.id,
            ApprovalDecision::Approve,
            &in_workspace("bob", "lab"),
            None,
        )
        .await;
    match refused {
        Err(ApprovalError::Forbidden {
            ref user,
            ref workspace,
            ref rule,
            ..
        }) => {
            assert_eq!((user.as_str(), workspace.as_str()), ("bob", "home"));
            assert!(rule.contains("workspace `home` denies"), "{rule}");
        }
        other => panic!("approved from another workspace: {other:?}"),
    }
    assert_eq!(sigil.pending_approvals().len(), 1);
    let recorded = sigil
        .audit()
        .query(&Filter {
            user: Some("bob".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (
            recorded[0].record.decision,
            recorded[0].record.capability.as_deref(),
            recorded[0].record.actor.workspace.as_deref()
        ),
        (Some(Verdict::Deny), Some("approvals.decide"), Some("home"))
    );

    // A call made in `lab` he approves, even naming `home`; the decision is recorded in `lab`.
    let (in_lab, approval) = held_in("lab").await;
    let decided = sigil
        .decide_approval(
            &approval.id,
            ApprovalDecision::Approve,
            &in_workspace("bob", "home"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(decided.rule, "approved by bob");
    in_lab.await.unwrap().unwrap();
    let records = records_of(&sigil, &approval.call_id);
    assert!(
        records.iter().any(|r| r.record.kind == RecordKind::Approval
            && r.record.decision == Some(Verdict::Allow)
            && r.record.actor.user.as_deref() == Some("bob")
            && r.record.actor.workspace.as_deref() == Some("lab")),
        "{records:?}"
    );

    assert_eq!(sigil.deny_pending_approvals("test over").await, 1);
    assert!(matches!(
        in_home.await.unwrap(),
        Err(InvokeError::ApprovalDenied { .. })
    ));
}
