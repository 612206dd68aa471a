//! The dispatch path end to end, with a builtin probe plugin that misbehaves on request:
//! every failure is an error value with an audit record, and the next call still works.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{Value, json};
use sigil_audit::{Filter, RecordKind, Verdict};
use sigil_runtime::{InvokeError, Runtime, Step};

fn sigil() -> (tempfile::TempDir, Runtime, common::Journal) {
    let dir = tempfile::tempdir().unwrap();
    let (probe, journal) = common::probe();
    let runtime = common::open(dir.path(), common::CONFIG, vec![probe]);
    (dir, runtime, journal)
}

/// The records of one call: decisions first, then the outcome.
fn records_of(sigil: &Runtime, call_id: &str) -> Vec<sigil_audit::Record> {
    sigil
        .audit()
        .query(&Filter {
            call_id: Some(call_id.into()),
            ..Filter::default()
        })
        .unwrap()
}

fn last_outcome(sigil: &Runtime) -> sigil_audit::NewRecord {
    let records = sigil
        .audit()
        .query(&Filter {
            kind: Some(RecordKind::Outcome),
            ..Filter::default()
        })
        .unwrap();
    records.last().expect("an outcome record").record.clone()
}

fn call(
    sigil: &Runtime,
    user: &str,
    target: &str,
    input: Value,
) -> Result<sigil_runtime::Invocation, InvokeError> {
    let actor = sigil.local_actor(Some(user), None);
    common::rt().block_on(sigil.invoke(&actor, target, input))
}

fn echo_still_works(sigil: &Runtime) {
    let ok = call(
        sigil,
        "alice",
        "probe/echo",
        json!({ "message": "still here" }),
    )
    .unwrap();
    assert_eq!(ok.output, json!({ "message": "still here" }));
}

#[test]
fn a_permitted_call_returns_the_result_with_a_decision_and_an_outcome_record() {
    let (_dir, sigil, _) = sigil();
    let ok = call(&sigil, "alice", "probe/echo", json!({ "message": "hi" })).unwrap();
    assert_eq!(ok.output, json!({ "message": "hi" }));
    let records = records_of(&sigil, &ok.call_id);
    assert_eq!(records.len(), 2);
    let (decision, outcome) = (&records[0].record, &records[1].record);
    assert_eq!(
        (decision.kind, decision.decision),
        (RecordKind::Decision, Some(Verdict::Allow))
    );
    assert_eq!(decision.capability.as_deref(), Some("tool.probe.echo"));
    assert_eq!(decision.plugin_version.as_deref(), Some("1.2.3"));
    assert_eq!(outcome.kind, RecordKind::Outcome);
    assert_eq!(outcome.outcome.as_deref(), Some("ok"));
    assert!(outcome.duration_us.is_some());
}

#[test]
fn a_denied_call_never_reaches_the_plugin_and_is_recorded() {
    let (_dir, sigil, journal) = sigil();
    let err = call(&sigil, "alice", "probe/forbidden", json!({})).unwrap_err();
    assert_eq!(
        err,
        InvokeError::Denied {
            rule: "user `alice` is denied `tool.probe.forbidden`".into()
        }
    );
    let err = call(&sigil, "nobody", "probe/pipeline", json!({})).unwrap_err();
    assert!(
        matches!(err, InvokeError::Denied { ref rule } if rule.contains("no permissions")),
        "{err}"
    );
    assert!(journal.lock().unwrap().is_empty(), "the plugin saw nothing");
    let denies = sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(denies.len(), 2);
    assert!(
        sigil
            .audit()
            .query(&Filter {
                kind: Some(RecordKind::Outcome),
                ..Filter::default()
            })
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unknown_plugins_and_tools_and_bad_targets_are_clear_errors() {
    let (_dir, sigil, _) = sigil();
    let err = call(&sigil, "alice", "ghost/echo", json!({})).unwrap_err();
    assert_eq!(
        err,
        InvokeError::Denied {
            rule: "plugin `ghost` is not registered".into()
        }
    );
    let err = call(&sigil, "alice", "probe/nope", json!({})).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin `probe` has no tool `nope`; it has: echo, host, "),
        "{err}"
    );
    assert_eq!(
        last_outcome(&sigil).outcome.unwrap(),
        format!("error: {err}")
    );
    for target in ["probe", "probe/echo/x", "pro be/echo", "/echo"] {
        assert_eq!(
            call(&sigil, "alice", target, json!({})).unwrap_err(),
            InvokeError::BadTarget(target.into())
        );
    }
}

#[test]
fn arguments_are_validated_against_the_schema_before_the_plugin_sees_them() {
    let (_dir, sigil, _) = sigil();
    let err = call(
        &sigil,
        "alice",
        "probe/echo",
        json!({ "message": 7, "extra": true }),
    )
    .unwrap_err();
    let InvokeError::InvalidArguments { target, errors } = &err else {
        panic!("{err}")
    };
    assert_eq!(target, "probe/echo");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("at `/message`") && e.contains("not of type \"string\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("at `/`") && e.contains("extra")),
        "{errors:?}"
    );
    assert!(
        last_outcome(&sigil)
            .outcome
            .unwrap()
            .contains("invalid arguments")
    );
}

#[test]
fn a_hang_ends_at_the_deadline_and_the_next_call_works() {
    let (_dir, sigil, _) = sigil();
    let err = call(&sigil, "alice", "probe/slow", json!({})).unwrap_err();
    assert_eq!(
        err,
        InvokeError::Failed {
            step: Step::Invoke,
            error: "deadline of 300 ms exceeded (execution.limits.timeout_ms)".into(),
            rollback: None
        }
    );
    assert!(
        last_outcome(&sigil)
            .outcome
            .unwrap()
            .contains("deadline of 300 ms exceeded")
    );
    echo_still_works(&sigil);
}

#[test]
fn an_oversized_result_is_refused_and_the_next_call_works() {
    let (_dir, sigil, _) = sigil();
    let err = call(&sigil, "alice", "probe/big", json!({})).unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds the limit of 1024 bytes (execution.limits.output_bytes)"),
        "{err}"
    );
    assert!(
        last_outcome(&sigil)
            .outcome
            .unwrap()
            .contains("exceeds the limit")
    );
    echo_still_works(&sigil);
}

#[test]
fn a_panicking_plugin_is_an_error_not_a_crash() {
    let (_dir, sigil, _) = sigil();
    let err = call(&sigil, "alice", "probe/panic", json!({})).unwrap_err();
    assert_eq!(
        err,
        InvokeError::Failed {
            step: Step::Invoke,
            error: "the plugin panicked".into(),
            rollback: None
        }
    );
    assert!(last_outcome(&sigil).outcome.unwrap().contains("panicked"));
    echo_still_works(&sigil);
}

#[test]
fn a_result_that_breaks_the_output_schema_is_refused() {
    let (_dir, sigil, _) = sigil();
    let err = call(&sigil, "alice", "probe/bad_output", json!({})).unwrap_err();
    assert!(
        err.to_string()
            .contains("output does not match the tool's output schema"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("\"answer\" is a required property"),
        "{err}"
    );
}

#[test]
fn host_calls_from_a_plugin_pass_the_enforcer_and_share_the_call_id() {
    let (_dir, sigil, _) = sigil();
    let ok = call(
        &sigil,
        "alice",
        "probe/host",
        json!({ "capability": "kv.read:cache.x" }),
    )
    .unwrap();
    assert_eq!(ok.output, json!({ "granted": "kv.read:cache.x" }));
    // (capability asked from inside the plugin, expected error substring)
    let denied = [
        (
            "kv.write:locked.door",
            "manifest denies `kv.write:locked.*`",
        ),
        (
            "kv.read:banned.list",
            "the operator's policy denies `kv.read:banned.*`",
        ),
        (
            "fs.read:/data/private/key",
            "workspace `home` denies `fs.read:/data/private/**`",
        ),
        ("fs.read:/data/../etc/shadow", "did not request it"),
        ("net.connect:example.com:443", "did not request it"),
        ("not a capability", "action segment"),
    ];
    for (capability, reason) in denied {
        let err = call(
            &sigil,
            "alice",
            "probe/host",
            json!({ "capability": capability }),
        )
        .unwrap_err();
        assert!(err.to_string().contains(reason), "{capability}: {err}");
    }
    let records = records_of(&sigil, &ok.call_id);
    let kinds: Vec<_> = records
        .iter()
        .map(|r| (r.record.capability.clone().unwrap(), r.record.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("tool.probe.host".to_string(), RecordKind::Decision),
            ("kv.read:cache.x".to_string(), RecordKind::Decision),
            ("tool.probe.host".to_string(), RecordKind::Outcome),
        ]
    );
    let denied_host_calls = sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        denied_host_calls.len(),
        6,
        "every denied capability was recorded, the one that does not parse too"
    );
}

#[test]
fn a_capability_that_does_not_parse_is_a_recorded_deny() {
    let (_dir, sigil, _) = sigil();
    let long = format!("kv.read:{}\n", "k".repeat(1000));
    // (text the plugin asks for, the capability as recorded)
    let table = [
        ("kv.read:line\nbreak", "kv.read:line\\nbreak".to_string()),
        ("kv.write:nul\0byte", "kv.write:nul\\0byte".to_string()),
        ("fs.read:/data/a\rb", "fs.read:/data/a\\rb".to_string()),
        (
            "fs.read:/data/\u{1b}[2Jx\\y",
            "fs.read:/data/\\u{1b}[2Jx\\\\y".to_string(),
        ),
        (
            long.as_str(),
            format!(
                "kv.read:{}… ({} bytes in all)",
                "k".repeat(sigil_runtime::MALFORMED_TEXT_CHARS - "kv.read:".len()),
                long.len()
            ),
        ),
    ];
    for (asked, recorded) in &table {
        let before = sigil.audit().verify().unwrap().records;
        let err = call(
            &sigil,
            "alice",
            "probe/host",
            json!({ "capability": asked }),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("malformed capability"), "{message}");
        assert!(
            !message.contains('\n') && !message.contains('\0'),
            "{message}"
        );

        let denies = sigil
            .audit()
            .query(&Filter {
                decision: Some(Verdict::Deny),
                plugin: Some("probe".into()),
                ..Filter::default()
            })
            .unwrap();
        let record = denies.last().expect("a deny record").clone();
        assert!(record.seq > before, "{asked:?}: the deny is new");
        assert_eq!(record.record.capability.as_deref(), Some(recorded.as_str()));
        assert!(
            record.record.rule.starts_with(
                "malformed capability: a capability cannot contain control characters"
            ),
            "{}",
            record.record.rule
        );
        assert_eq!(record.record.plugin_version.as_deref(), Some("1.2.3"));
        assert_eq!(record.record.actor.user.as_deref(), Some("alice"));
        // It belongs to the call that asked: the call's own decision shares its id.
        let call_id = record.record.call_id.clone().expect("a call id");
        let kinds: Vec<_> = records_of(&sigil, &call_id)
            .into_iter()
            .map(|r| (r.record.kind, r.record.decision))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (RecordKind::Decision, Some(Verdict::Allow)),
                (RecordKind::Decision, Some(Verdict::Deny)),
                (RecordKind::Outcome, None),
            ],
            "{asked:?}"
        );
    }
    assert!(sigil.audit().verify().unwrap().is_intact());
    echo_still_works(&sigil);
}

#[test]
fn the_pipeline_runs_its_steps_in_order_and_rolls_back_on_failure() {
    // (input, expected error step, expected journal, expected rollback note)
    type Row = (Value, Option<Step>, Vec<&'static str>, Option<&'static str>);
    let table: Vec<Row> = vec![
        (
            json!({}),
            None,
            vec!["validate_pre", "invoke", "validate_post {\"done\":true}"],
            None,
        ),
        (
            json!({ "fail_pre": true }),
            Some(Step::ValidatePre),
            vec!["validate_pre"],
            None,
        ),
        (
            json!({ "fail_invoke": true }),
            Some(Step::Invoke),
            vec!["validate_pre", "invoke", "rollback none"],
            Some("rolled back"),
        ),
        (
            json!({ "fail_post": true }),
            Some(Step::ValidatePost),
            vec![
                "validate_pre",
                "invoke",
                "validate_post {\"done\":true}",
                "rollback {\"done\":true}",
            ],
            Some("rolled back"),
        ),
        (
            json!({ "fail_post": true, "fail_rollback": true }),
            Some(Step::ValidatePost),
            vec![
                "validate_pre",
                "invoke",
                "validate_post {\"done\":true}",
                "rollback {\"done\":true}",
            ],
            Some("rollback failed: cannot undo"),
        ),
    ];
    for (input, step, expected_journal, rollback) in table {
        let (_dir, sigil, journal) = sigil();
        let result = call(&sigil, "alice", "probe/pipeline", input.clone());
        assert_eq!(*journal.lock().unwrap(), expected_journal, "{input}");
        match (result, step) {
            (Ok(ok), None) => assert_eq!(ok.output, json!({ "done": true })),
            (
                Err(InvokeError::Failed {
                    step: got,
                    rollback: rb,
                    ..
                }),
                Some(want),
            ) => {
                assert_eq!(got, want, "{input}");
                assert_eq!(rb.as_deref(), rollback, "{input}");
            }
            (other, _) => panic!("{input}: {other:?}"),
        }
        let outcome = last_outcome(&sigil);
        let steps_recorded: Vec<String> = outcome.steps.iter().map(|s| s.step.clone()).collect();
        let journaled: Vec<String> = expected_journal
            .iter()
            .map(|j| j.split(' ').next().unwrap_or("").replace('_', "-"))
            .collect();
        assert_eq!(steps_recorded, journaled, "{input}");
    }
}
