//! The enforcer against a real audit log: every deny reason, one record per decision, and
//! fail-closed when the record cannot be written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use sigil_audit::{Actor, AuditLog, AuditSink, Filter, Verdict};
use sigil_policy::{Capability, CapabilitySet, Decision, PluginAuthority};
use sigil_runtime::{Check, Config, Enforcer, Registration, Subject};

struct Fixture {
    _dir: tempfile::TempDir,
    audit: Arc<AuditLog>,
    enforcer: Enforcer,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(common::CONFIG, std::path::Path::new("sigil.toml")).unwrap();
    let audit = Arc::new(
        AuditLog::open(
            &dir.path().join("sigil.db"),
            &sigil_audit::KeyFiles::in_dir(&dir.path().join("state")),
        )
        .unwrap(),
    );
    let sink: Arc<dyn AuditSink> = audit.clone();
    let enforcer = Enforcer::new(&config, sink);
    enforcer.register(Registration {
        version: "1.0.0".into(),
        authority: PluginAuthority {
            id: "files".into(),
            grants: CapabilitySet::parse(["fs.*", "kv.read"]).unwrap(),
            consent: CapabilitySet::parse(["fs.read:/data/**", "fs.write:/data/out/**"]).unwrap(),
            denies: CapabilitySet::parse(["fs.write:/data/out/locked/**"]).unwrap(),
        },
    });
    Fixture {
        _dir: dir,
        audit,
        enforcer,
    }
}

fn actor(user: Option<&str>, workspace: Option<&str>) -> Actor {
    Actor {
        user: user.map(Into::into),
        workspace: workspace.map(Into::into),
        session: Some("s1".into()),
        channel: None,
    }
}

#[test]
fn every_decision_is_recorded_once_with_its_rule() {
    let f = fixture();
    // (plugin, capability, user, workspace, allowed, rule substring)
    let table = [
        (
            "files",
            "fs.read:/data/a.txt",
            Some("alice"),
            Some("home"),
            true,
            "requests `fs.*`, consented as `fs.read:/data/**`",
        ),
        (
            "files",
            "fs.write:/data/out/x",
            Some("alice"),
            Some("home"),
            true,
            "consented as `fs.write:/data/out/**`",
        ),
        (
            "ghost",
            "fs.read:/data/a.txt",
            Some("alice"),
            Some("home"),
            false,
            "plugin `ghost` is not registered",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            Some("alice"),
            Some("attic"),
            false,
            "workspace `attic` is not configured",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            Some("mallory"),
            Some("home"),
            false,
            "user `mallory` is not configured",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            None,
            Some("home"),
            false,
            "no user was named for the call",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            Some("nobody"),
            Some("home"),
            false,
            "user `nobody` has no permissions",
        ),
        (
            "files",
            "kv.read:banned.k",
            Some("alice"),
            Some("home"),
            false,
            "the operator's policy denies `kv.read:banned.*`",
        ),
        (
            "files",
            "fs.write:/data/out/locked/x",
            Some("alice"),
            Some("home"),
            false,
            "manifest denies `fs.write:/data/out/locked/**`",
        ),
        (
            "files",
            "fs.read:/data/private/k",
            Some("alice"),
            Some("home"),
            false,
            "workspace `home` denies `fs.read:/data/private/**`",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            Some("alice"),
            Some("kids"),
            false,
            "workspace `kids` does not allow it",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            Some("bob"),
            Some("home"),
            false,
            "user `bob` does not hold it",
        ),
        (
            "files",
            "fs.read:/data/a.txt",
            Some("bob"),
            Some("kids"),
            false,
            "user `bob` is not a member of workspace `kids`",
        ),
        (
            "files",
            "net.connect:example.com:443",
            Some("alice"),
            Some("home"),
            false,
            "did not request it",
        ),
        (
            "files",
            "kv.read:k",
            Some("alice"),
            Some("home"),
            false,
            "has not consented to it",
        ),
        (
            "files",
            "fs.read:/etc/shadow",
            Some("alice"),
            Some("home"),
            false,
            "has not consented to it",
        ),
        (
            "files",
            "fs.read:/data/../etc/shadow",
            Some("alice"),
            Some("home"),
            false,
            "has not consented to it",
        ),
    ];
    for (i, (plugin, capability, user, workspace, allowed, rule)) in table.iter().enumerate() {
        let capability = Capability::parse(capability).unwrap();
        let actor = actor(*user, *workspace);
        let call_id = format!("call-{i}");
        let check = Check {
            subject: Subject::Plugin(plugin),
            capability: &capability,
            actor: &actor,
            call_id: Some(&call_id),
        };
        let decision = f.enforcer.check_blocking(&check);
        assert_eq!(decision.is_allowed(), *allowed, "{capability}: {decision}");
        assert!(
            decision.to_string().contains(rule),
            "{capability}: {decision} (wanted {rule})"
        );

        let records = f
            .audit
            .query(&Filter {
                call_id: Some(call_id.clone()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(records.len(), 1, "exactly one record for {capability}");
        let r = &records[0].record;
        assert_eq!(
            r.decision,
            Some(if *allowed {
                Verdict::Allow
            } else {
                Verdict::Deny
            })
        );
        assert_eq!(r.capability.as_deref(), Some(capability.as_str()));
        assert_eq!(r.plugin.as_deref(), Some(*plugin));
        assert_eq!(r.actor, actor);
        assert!(r.rule.contains(rule), "recorded rule {}", r.rule);
    }
    assert_eq!(
        f.audit.query(&Filter::default()).unwrap().len(),
        table.len()
    );
    assert!(f.audit.verify().unwrap().problem.is_none());
}

#[test]
fn calling_into_a_plugin_needs_the_user_and_workspace_but_no_plugin_grant() {
    let f = fixture();
    let capability = Capability::parse("tool.files.read").unwrap();
    let alice = actor(Some("alice"), Some("home"));
    let into = Check {
        subject: Subject::CallInto("files"),
        capability: &capability,
        actor: &alice,
        call_id: None,
    };
    assert!(f.enforcer.check_blocking(&into).is_allowed());
    let acting = Check {
        subject: Subject::Plugin("files"),
        ..into
    };
    assert!(
        !f.enforcer.check_blocking(&acting).is_allowed(),
        "the plugin itself was not granted tool.files.read"
    );
}

#[test]
fn explain_decides_without_recording() {
    let f = fixture();
    let capability = Capability::parse("fs.read:/data/a").unwrap();
    let alice = actor(Some("alice"), Some("home"));
    let check = Check {
        subject: Subject::Plugin("files"),
        capability: &capability,
        actor: &alice,
        call_id: None,
    };
    assert!(f.enforcer.explain(&check).is_allowed());
    assert!(f.audit.query(&Filter::default()).unwrap().is_empty());
}

#[test]
fn an_unregistered_plugin_is_denied() {
    let f = fixture();
    let capability = Capability::parse("fs.read:/data/a").unwrap();
    let alice = actor(Some("alice"), Some("home"));
    let check = Check {
        subject: Subject::Plugin("files"),
        capability: &capability,
        actor: &alice,
        call_id: None,
    };
    assert!(f.enforcer.check_blocking(&check).is_allowed());
    f.enforcer.unregister("files");
    assert!(matches!(
        f.enforcer.check_blocking(&check),
        Decision::Deny { .. }
    ));
}

#[test]
fn when_the_audit_record_cannot_be_written_the_decision_is_deny() {
    let f = fixture();
    let capability = Capability::parse("fs.read:/data/a").unwrap();
    let alice = actor(Some("alice"), Some("home"));
    let check = Check {
        subject: Subject::Plugin("files"),
        capability: &capability,
        actor: &alice,
        call_id: None,
    };
    assert!(f.enforcer.check_blocking(&check).is_allowed());

    // Break the real database underneath the log: its writes now fail.
    let raw = rusqlite::Connection::open(f.audit.path()).unwrap();
    raw.execute_batch("ALTER TABLE audit_records RENAME TO audit_records_moved")
        .unwrap();
    let decision = f.enforcer.check_blocking(&check);
    assert!(
        matches!(
            &decision,
            Decision::Deny {
                rule: sigil_policy::DenyRule::AuditFailed { .. }
            }
        ),
        "{decision}"
    );
    let rt = common::rt();
    assert!(
        !rt.block_on(f.enforcer.check(&check)).is_allowed(),
        "the async path fails closed too"
    );

    // Repaired, it allows again and the chain is intact.
    raw.execute_batch("ALTER TABLE audit_records_moved RENAME TO audit_records")
        .unwrap();
    assert!(f.enforcer.check_blocking(&check).is_allowed());
    assert!(f.audit.verify().unwrap().problem.is_none());
}

#[test]
fn explain_call_answers_as_the_call_would_be_decided_and_records_nothing() {
    let f = fixture();
    let cases = [
        // (plugin, tool, user, workspace, allowed)
        ("files", "read", "alice", "home", true),
        ("files", "read", "bob", "home", false),
        ("files", "read", "alice", "kids", false),
        ("files", "read", "bob", "kids", false),
        ("files", "read", "ghost", "home", false),
        ("ghost", "read", "alice", "home", false),
    ];
    for (plugin, tool, user, workspace, allowed) in cases {
        let who = actor(Some(user), Some(workspace));
        let answer = f.enforcer.explain_call(plugin, tool, &who);
        assert_eq!(
            answer.is_allowed(),
            allowed,
            "{plugin}/{tool} for {user}: {answer:?}"
        );
    }
    assert!(
        f.audit.query(&Filter::default()).unwrap().is_empty(),
        "explaining writes no record"
    );

    // The same answer the recorded check of a call gives.
    for (plugin, tool, user, workspace, _) in cases {
        let who = actor(Some(user), Some(workspace));
        let capability = Capability::parse(&format!("tool.{plugin}.{tool}")).unwrap();
        let check = Check {
            subject: Subject::CallInto(plugin),
            capability: &capability,
            actor: &who,
            call_id: None,
        };
        assert_eq!(
            f.enforcer.explain_call(plugin, tool, &who),
            f.enforcer.check_blocking(&check)
        );
    }

    let odd = f
        .enforcer
        .explain_call("files", "no such tool", &actor(Some("alice"), Some("home")));
    assert!(
        matches!(
            odd,
            Decision::Deny {
                rule: sigil_policy::DenyRule::InvalidCapability { .. }
            }
        ),
        "{odd:?}"
    );
}

#[test]
fn an_actor_outside_its_users_workspaces_is_refused_by_every_check_and_recorded_once() {
    let f = fixture();
    let rt = common::rt();
    // Bob belongs to `home` alone (no `workspaces` field: `[defaults] workspace`); `kids` is
    // configured, but not his.
    let outside = actor(Some("bob"), Some("kids"));
    let inside = actor(Some("bob"), Some("home"));
    let capability = Capability::parse("tool.probe.echo").unwrap();
    let not_member = "user `bob` is not a member of workspace `kids`";
    assert_eq!(f.enforcer.membership(&inside), Ok(()));
    assert_eq!(
        f.enforcer.membership(&outside).map_err(|r| r.to_string()),
        Err(format!("{not_member} (see `workspaces` in [users.bob])"))
    );
    let explained = f.enforcer.explain_actor(&capability, &outside);
    assert!(explained.to_string().contains(not_member), "{explained}");
    assert!(f.audit.query(&Filter::default()).unwrap().is_empty());

    let refused = rt.block_on(f.enforcer.check_membership(&outside));
    assert!(refused.is_err());
    assert_eq!(rt.block_on(f.enforcer.check_membership(&inside)), Ok(()));
    let decided = rt.block_on(f.enforcer.check_actor(&capability, &outside));
    assert!(decided.to_string().contains(not_member), "{decided}");
    let records = f.audit.query(&Filter::default()).unwrap();
    // The refusal and the actor check; an admitted actor is not recorded.
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.record.decision == Some(Verdict::Deny)
                && r.record.actor.workspace.as_deref() == Some("kids")
                && r.record.rule.contains(not_member))
    );
}
