//! Table-driven tests of the authority decision: every deny reason, and the allow path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sigil_policy::{
    Capability, CapabilitySet, Decision, DenyRule, Layers, Level, PluginAuthority, Scope, decide,
};

fn set(patterns: &[&str]) -> CapabilitySet {
    CapabilitySet::parse(patterns).unwrap()
}

fn scope(name: &str, allow: &[&str], deny: &[&str]) -> Scope {
    Scope {
        name: name.into(),
        allow: set(allow),
        deny: set(deny),
    }
}

struct World {
    plugin: PluginAuthority,
    workspace: Scope,
    user: Scope,
    global_deny: CapabilitySet,
}

fn world() -> World {
    World {
        plugin: PluginAuthority {
            id: "files".into(),
            grants: set(&["fs.*", "net.connect:api.example.com:443", "kv.*"]),
            consent: set(&["fs.*", "net.connect:*.example.com:443"]),
            denies: set(&["fs.write:/etc/**"]),
        },
        workspace: scope(
            "home",
            &["fs.*", "net.*", "kv.*", "tool.*"],
            &["fs.read:/home/*/.ssh/**"],
        ),
        user: scope(
            "alice",
            &["fs.*", "net.*", "tool.files.*", "kv.read"],
            &["fs.read:/secret/**"],
        ),
        global_deny: set(&["fs.write:/boot/**"]),
    }
}

fn run(w: &World, plugin: bool, capability: &str) -> Decision {
    let layers = Layers {
        plugin: plugin.then_some(&w.plugin),
        workspace: &w.workspace,
        user: &w.user,
        global_deny: &w.global_deny,
    };
    decide(&Capability::parse(capability).unwrap(), layers)
}

fn denied(level: Level, holder: &str, pattern: &str) -> Option<DenyRule> {
    Some(DenyRule::Denied {
        level,
        holder: holder.into(),
        pattern: pattern.parse().unwrap(),
    })
}

fn not_granted(level: Level, holder: &str) -> Option<DenyRule> {
    Some(DenyRule::NotGranted {
        level,
        holder: holder.into(),
    })
}

#[test]
fn every_layer_decides_as_the_table_says() {
    // (capability, the plugin is the subject, expected deny rule or None for allow)
    let table: Vec<(&str, bool, Option<DenyRule>)> = vec![
        ("fs.read:/data/x", true, None),
        ("net.connect:api.example.com:443", true, None),
        (
            "fs.write:/boot/grub/grub.cfg",
            true,
            denied(Level::Policy, "sigil.toml", "fs.write:/boot/**"),
        ),
        (
            "fs.write:/etc/passwd",
            true,
            denied(Level::Plugin, "files", "fs.write:/etc/**"),
        ),
        (
            "fs.write:/tmp/../etc/passwd",
            true,
            denied(Level::Plugin, "files", "fs.write:/etc/**"),
        ),
        (
            "fs.read:/home/bob/.ssh/id_ed25519",
            true,
            denied(Level::Workspace, "home", "fs.read:/home/*/.ssh/**"),
        ),
        (
            "fs.read:/secret/plans",
            true,
            denied(Level::User, "alice", "fs.read:/secret/**"),
        ),
        ("exec.run", true, not_granted(Level::Plugin, "files")),
        ("kv.read:k", true, not_granted(Level::Consent, "files")),
        (
            "net.connect:api.example.com:8443",
            true,
            not_granted(Level::Plugin, "files"),
        ),
        ("tool.files.read", false, None),
        ("tool.other.read", false, not_granted(Level::User, "alice")),
        ("msg.send", false, not_granted(Level::Workspace, "home")),
        ("kv.write:k", true, not_granted(Level::Consent, "files")),
        // Without a plugin subject the plugin's own denies do not apply, the others do.
        ("fs.write:/etc/passwd", false, None),
        (
            "fs.write:/boot/x",
            false,
            denied(Level::Policy, "sigil.toml", "fs.write:/boot/**"),
        ),
    ];
    let w = world();
    for (capability, plugin, expected) in table {
        let decision = run(&w, plugin, capability);
        match (&decision, &expected) {
            (Decision::Allow { .. }, None) => {}
            (Decision::Deny { rule }, Some(want)) => assert_eq!(rule, want, "{capability}"),
            _ => panic!("{capability}: got {decision}, expected {expected:?}"),
        }
    }
}

#[test]
fn deny_wins_over_every_allow() {
    let mut w = world();
    w.workspace.deny = set(&["*"]);
    let decision = run(&w, true, "fs.read:/data/x");
    assert_eq!(
        decision,
        Decision::Deny {
            rule: denied(Level::Workspace, "home", "*").unwrap()
        }
    );
}

#[test]
fn an_empty_user_set_denies_everything() {
    let mut w = world();
    w.user = scope("nobody", &[], &[]);
    for capability in ["fs.read:/data/x", "tool.files.read"] {
        assert_eq!(
            run(&w, true, capability),
            Decision::Deny {
                rule: DenyRule::NoPermissions {
                    user: "nobody".into()
                }
            }
        );
    }
}

#[test]
fn empty_plugin_grants_and_consent_deny() {
    let mut w = world();
    w.plugin.consent = set(&[]);
    assert_eq!(
        run(&w, true, "fs.read:/data/x"),
        Decision::Deny {
            rule: not_granted(Level::Consent, "files").unwrap()
        }
    );
    w.plugin.grants = set(&[]);
    assert_eq!(
        run(&w, true, "fs.read:/data/x"),
        Decision::Deny {
            rule: not_granted(Level::Plugin, "files").unwrap()
        }
    );
}

#[test]
fn an_allow_names_the_pattern_of_every_layer() {
    let decision = run(&world(), true, "net.connect:api.example.com:443");
    assert_eq!(
        decision.to_string(),
        "allow: plugin `files` requests `net.connect:api.example.com:443`, consented as \
         `net.connect:*.example.com:443`; workspace `home` allows `net.*`; user `alice` holds `net.*`"
    );
}

#[test]
fn deny_reasons_read_as_sentences() {
    let cases = [
        (
            DenyRule::UnknownPlugin { plugin: "x".into() },
            "plugin `x` is not registered",
        ),
        (
            DenyRule::NoPermissions { user: "bob".into() },
            "user `bob` has no permissions",
        ),
        (
            not_granted(Level::Consent, "files").unwrap(),
            "the operator has not consented to it for plugin `files`",
        ),
        (
            denied(Level::Workspace, "home", "fs.*").unwrap(),
            "workspace `home` denies `fs.*`",
        ),
        (
            DenyRule::AuditFailed {
                error: "disk full".into(),
            },
            "the audit record could not be written, so the call is refused: disk full",
        ),
    ];
    for (rule, text) in cases {
        assert_eq!(rule.to_string(), text);
    }
}
