//! Table-driven tests of the authority decision: every deny reason, and the allow path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sigil_policy::{
    Capability, CapabilitySet, Decision, DenyRule, Layers, Level, Pattern, PluginAuthority, Reach,
    Scope, decide, decide_destination,
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

/// `decide_destination` over a plugin granted `grants` (and consented the same), with
/// `net.connect:127.0.0.1` denied by the operator.
fn destination(grants: &[&str], address: &str, host: &str, reach: Reach<'_>) -> Decision {
    let plugin = PluginAuthority {
        id: "fetcher".into(),
        grants: set(grants),
        consent: set(grants),
        denies: set(&[]),
    };
    let workspace = scope("home", &["*"], &[]);
    let user = scope("alice", &["*"], &[]);
    let global_deny = set(&["net.connect:127.0.0.1"]);
    let layers = Layers {
        plugin: Some(&plugin),
        workspace: &workspace,
        user: &user,
        global_deny: &global_deny,
    };
    decide_destination(
        &Capability::parse(address).unwrap(),
        &Capability::parse(host).unwrap(),
        reach,
        layers,
    )
}

#[test]
fn restricted_addresses_need_a_grant_naming_them_and_denies_hold_on_the_address() {
    let loopback = Reach::Named { class: "loopback" };
    let private = Reach::Named { class: "private" };
    let own = Reach::Closed {
        reason: "127.0.0.2:8080 is where Sigil itself listens",
    };
    let restricted = |level| {
        Some(DenyRule::Restricted {
            class: "private".into(),
            level,
            holder: "fetcher".into(),
        })
    };
    // (grants, address, host as named, reach, expected deny or None for allow)
    // (grants, address, host, reach, expected deny)
    type Row<'a> = (&'a [&'a str], &'a str, &'a str, Reach<'a>, Option<DenyRule>);
    let table: Vec<Row<'_>> = vec![
        // A name resolving to a denied address is denied, whatever the name's grant.
        (
            &["net.connect:localhost:8080"],
            "net.connect:127.0.0.1:8080",
            "net.connect:localhost:8080",
            loopback,
            denied(Level::Policy, "sigil.toml", "net.connect:127.0.0.1"),
        ),
        // Wildcards name nothing.
        (
            &["net.connect:*"],
            "net.connect:10.0.0.5:80",
            "net.connect:intranet.example.com:80",
            private,
            restricted(Level::Plugin),
        ),
        (
            &["net.connect:*.example.com"],
            "net.connect:10.0.0.5:80",
            "net.connect:intranet.example.com:80",
            private,
            restricted(Level::Plugin),
        ),
        (
            &["net.connect:*:80"],
            "net.connect:10.0.0.5:80",
            "net.connect:10.0.0.5:80",
            private,
            restricted(Level::Plugin),
        ),
        // Naming the host or the address reaches it.
        (
            &["net.connect:intranet.example.com:80"],
            "net.connect:10.0.0.5:80",
            "net.connect:intranet.example.com:80",
            private,
            None,
        ),
        (
            &["net.connect:10.0.0.5"],
            "net.connect:10.0.0.5:80",
            "net.connect:10.0.0.5:80",
            private,
            None,
        ),
        (
            &["net.connect:*", "net.connect:10.0.0.5:80"],
            "net.connect:10.0.0.5:80",
            "net.connect:intranet.example.com:80",
            private,
            None,
        ),
        // A public address needs only the grant on the host.
        (
            &["net.connect:*"],
            "net.connect:93.184.215.14:443",
            "net.connect:example.com:443",
            Reach::Open,
            None,
        ),
        // The host's own grant still decides first.
        (
            &["net.connect:other.example.com"],
            "net.connect:93.184.215.14:443",
            "net.connect:example.com:443",
            Reach::Open,
            not_granted(Level::Plugin, "fetcher"),
        ),
        // Sigil's own listener: never, even named.
        (
            &["net.connect:127.0.0.2:8080"],
            "net.connect:127.0.0.2:8080",
            "net.connect:127.0.0.2:8080",
            own,
            Some(DenyRule::Unreachable {
                reason: "127.0.0.2:8080 is where Sigil itself listens".into(),
            }),
        ),
    ];
    for (grants, address, host, reach, expected) in table {
        let decision = destination(grants, address, host, reach);
        let got = match &decision {
            Decision::Allow { .. } => None,
            Decision::Deny { rule } => Some(rule.clone()),
        };
        assert_eq!(got, expected, "{grants:?} {address} via {host}: {decision}");
    }
}

#[test]
fn a_consent_that_names_nothing_keeps_a_restricted_address_closed() {
    let plugin = PluginAuthority {
        id: "fetcher".into(),
        grants: set(&["net.connect:10.0.0.5:80"]),
        consent: set(&["net.*"]),
        denies: set(&[]),
    };
    let (workspace, user, global_deny) = (
        scope("home", &["*"], &[]),
        scope("alice", &["*"], &[]),
        set(&[]),
    );
    let layers = Layers {
        plugin: Some(&plugin),
        workspace: &workspace,
        user: &user,
        global_deny: &global_deny,
    };
    let address = Capability::parse("net.connect:10.0.0.5:80").unwrap();
    let decision = decide_destination(
        &address,
        &address,
        Reach::Named { class: "private" },
        layers,
    );
    assert_eq!(
        decision,
        Decision::Deny {
            rule: DenyRule::Restricted {
                class: "private".into(),
                level: Level::Consent,
                holder: "fetcher".into(),
            }
        }
    );
    assert!(
        decision
            .to_string()
            .contains("consent for `fetcher` names neither")
    );
}

#[test]
fn ipv6_hosts_have_one_spelling_in_grants_and_capabilities() {
    let mapped = Pattern::parse("net.connect:[::FFFF:127.0.0.1]").unwrap();
    assert_eq!(mapped.as_str(), "net.connect:127.0.0.1");
    assert!(mapped.matches(&Capability::parse("net.connect:127.0.0.1:80").unwrap()));
    let long = Pattern::parse("net.connect:[0:0:0:0:0:0:0:1]:80").unwrap();
    assert!(long.matches(&Capability::parse("net.connect:[::1]:80").unwrap()));
    assert!(long.names_host());
    assert!(!Pattern::parse("net.connect:*:80").unwrap().names_host());
    assert!(!Pattern::parse("net.connect:local*").unwrap().names_host());
    assert!(!Pattern::parse("net.*").unwrap().names_host());
}
