//! Changing a running runtime: disable, enable, reload, remove, the events they publish, the
//! decision events of the enforcer, and actor-only checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::json;
use sigil_audit::{Filter, Verdict};
use sigil_policy::{Capability, Decision};
use sigil_runtime::{ControlError, Event, InvokeError, State};

#[test]
fn disable_and_enable_move_through_the_lifecycle_and_publish_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let (probe, _) = common::probe();
    let sigil = common::open(dir.path(), common::CONFIG, vec![probe]);
    let mut events = sigil.subscribe();
    let actor = sigil.local_actor(None, None);
    let rt = common::rt();

    let summary = sigil.disable("probe").unwrap();
    assert_eq!(summary.state, State::Stopped);
    assert_eq!(
        events.try_recv().unwrap(),
        Event::PluginState {
            plugin: "probe".into(),
            from: State::Running,
            to: State::Stopped,
            error: None,
        }
    );
    let refused = rt.block_on(sigil.invoke(&actor, "probe/echo", json!({ "message": "hi" })));
    assert!(
        matches!(
            refused,
            Err(InvokeError::NotRunning {
                state: State::Stopped,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(matches!(
        sigil.disable("probe"),
        Err(ControlError::WrongState {
            state: State::Stopped,
            ..
        })
    ));

    assert_eq!(sigil.enable("probe").unwrap().state, State::Running);
    let mut saw_enable = false;
    while let Ok(event) = events.try_recv() {
        if let Event::PluginState { from, to, .. } = event {
            saw_enable |= from == State::Stopped && to == State::Running;
        }
    }
    assert!(saw_enable);
    let ok = rt.block_on(sigil.invoke(&actor, "probe/echo", json!({ "message": "hi" })));
    assert!(ok.is_ok(), "{ok:?}");

    assert_eq!(sigil.reload("probe").unwrap().state, State::Running);
    assert!(matches!(
        sigil.enable("nope"),
        Err(ControlError::UnknownPlugin(_))
    ));
    assert!(matches!(
        sigil.remove("probe"),
        Err(ControlError::Builtin(_))
    ));
}

#[test]
fn every_committed_decision_is_published_with_its_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let (probe, _) = common::probe();
    let sigil = common::open(dir.path(), common::CONFIG, vec![probe]);
    let mut events = sigil.subscribe();
    let rt = common::rt();
    let bob = sigil.local_actor(Some("bob"), None);
    let denied = rt.block_on(sigil.invoke(&bob, "text/sha256", json!({ "text": "x" })));
    assert!(matches!(denied, Err(InvokeError::Denied { .. })));

    let Event::Decision {
        seq,
        decision,
        capability,
        actor,
        ..
    } = events.try_recv().unwrap()
    else {
        panic!("not a decision event");
    };
    assert_eq!(
        (decision, capability.as_str()),
        (Verdict::Deny, "tool.text.sha256")
    );
    assert_eq!(actor.user.as_deref(), Some("bob"));
    let records = sigil.audit().query(&Filter::default()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].seq, seq);
}

#[test]
fn an_actor_check_involves_no_plugin_and_writes_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let sigil = common::open(dir.path(), common::CONFIG, Vec::new());
    let rt = common::rt();
    let capability = Capability::parse("admin.plugins").unwrap();
    let alice = sigil.local_actor(Some("alice"), None);
    let bob = sigil.local_actor(Some("bob"), None);
    let stranger = sigil.local_actor(Some("stranger"), None);
    assert!(matches!(
        rt.block_on(sigil.enforcer().check_actor(&capability, &alice)),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        rt.block_on(sigil.enforcer().check_actor(&capability, &bob)),
        Decision::Deny { .. }
    ));
    assert!(matches!(
        rt.block_on(sigil.enforcer().check_actor(&capability, &stranger)),
        Decision::Deny { .. }
    ));
    let records = sigil.audit().query(&Filter::default()).unwrap();
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|r| r.record.plugin.is_none()
            && r.record.capability.as_deref() == Some("admin.plugins"))
    );
    assert_eq!(records[1].record.decision, Some(Verdict::Deny));
    assert_eq!(records[1].record.actor.user.as_deref(), Some("bob"));
}
