//! Trust levels come from how a plugin arrived, never from its manifest; `[trust]` decides
//! which tiers each level may run in, and may only be stricter for lower trust.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;

use sigil_manifest::Tier;
use sigil_runtime::{
    Config, LoadRequest, Runtime, State, TierLoader, ToolPlugin, Trust, consent_record,
};
use sigil_trust::{KeyPair, SIGNATURE_FILE, sign_dir};

/// A tier that loads every plugin as a probe: what is under test is whether the runtime asks it.
#[derive(Debug)]
struct ProbeTier;

impl TierLoader for ProbeTier {
    fn load(&self, _request: &LoadRequest<'_>) -> Result<Arc<dyn ToolPlugin>, String> {
        Ok(Arc::new(common::Probe::default()))
    }
}

fn write_plugin(dir: &Path, id: &str, tier: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            r#"id = "{id}"
name = "{id}"
version = "1.0.0"
description = "A plugin."
kinds = ["tool"]
engine = "*"

[execution]
tier = "{tier}"
entry = "main.bin"
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.join("main.bin"), format!("code of {id}")).unwrap();
}

fn config_with(trust: &str) -> String {
    format!("{}\n{trust}", common::CONFIG)
}

fn open(home: &Path, config: &str) -> Runtime {
    let home = common::home(home, config);
    Runtime::open_with(
        home,
        vec![common::probe().0],
        vec![
            (Tier::Wasm, Arc::new(ProbeTier) as Arc<dyn TierLoader>),
            (Tier::Process, Arc::new(ProbeTier)),
        ],
    )
    .unwrap()
}

fn summary(sigil: &Runtime, id: &str) -> sigil_runtime::PluginSummary {
    sigil.manager().get(id).unwrap().summary()
}

#[test]
fn trust_levels_come_from_signatures_and_broken_ones_stop_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let release = KeyPair::generate_unencrypted().unwrap();
    let stranger = KeyPair::generate_unencrypted().unwrap();

    write_plugin(&plugins.join("plain"), "plain", "wasm");
    write_plugin(&plugins.join("signed"), "signed", "wasm");
    sign_dir(&plugins.join("signed"), &release).unwrap();
    write_plugin(&plugins.join("stranger"), "stranger", "wasm");
    sign_dir(&plugins.join("stranger"), &stranger).unwrap();
    write_plugin(&plugins.join("changed"), "changed", "wasm");
    sign_dir(&plugins.join("changed"), &release).unwrap();
    std::fs::write(plugins.join("changed/main.bin"), "code of changeD").unwrap();
    write_plugin(&plugins.join("added"), "added", "wasm");
    sign_dir(&plugins.join("added"), &release).unwrap();
    std::fs::write(plugins.join("added/helper.so"), "more code").unwrap();
    write_plugin(&plugins.join("garbled"), "garbled", "wasm");
    sign_dir(&plugins.join("garbled"), &release).unwrap();
    std::fs::write(
        plugins.join("garbled").join(SIGNATURE_FILE),
        "untrusted comment: x\n!!\n",
    )
    .unwrap();

    let config = config_with(&format!(
        "[trust.keys]\nrelease = \"{}\"\n",
        release.public().to_base64()
    ));
    let sigil = open(dir.path(), &config);

    assert_eq!(summary(&sigil, "probe").trust, Trust::Trusted);
    for (id, trust) in [
        ("plain", Trust::Sandboxed),
        // An unknown signature counts for nothing: it is as good as none.
        ("stranger", Trust::Sandboxed),
        (
            "signed",
            Trust::Verified {
                key: "release".into(),
                key_id: release.public().id().to_string(),
            },
        ),
    ] {
        let s = summary(&sigil, id);
        assert_eq!(s.state, State::Running, "{id}: {:?}", s.error);
        assert_eq!(s.trust, trust, "{id}");
    }
    for (id, names) in [
        ("changed", "main.bin was changed after signing"),
        ("added", "helper.so was added after signing"),
        ("garbled", "SIGIL-DIGESTS.minisig: not a minisign signature"),
    ] {
        let s = summary(&sigil, id);
        assert_eq!(s.state, State::Error, "{id}");
        let error = s.error.unwrap_or_default();
        assert!(
            error.contains("signature check failed") && error.contains(names),
            "{id}: {error}"
        );
        assert!(
            sigil.tools().iter().all(|t| t.plugin != id),
            "{id} serves no tool"
        );
    }

    // JSON carries the level and the key, for listings and the API.
    let json = serde_json::to_value(summary(&sigil, "signed")).unwrap();
    assert_eq!(json["trust"]["level"], "verified");
    assert_eq!(json["trust"]["key"], "release");
    sigil.close().unwrap();
}

#[test]
fn the_tier_policy_refuses_unsigned_plugins_where_signed_ones_run() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let release = KeyPair::generate_unencrypted().unwrap();
    write_plugin(&plugins.join("unsigned"), "unsigned", "process");
    write_plugin(&plugins.join("signed"), "signed", "process");
    sign_dir(&plugins.join("signed"), &release).unwrap();
    write_plugin(&plugins.join("wasmy"), "wasmy", "wasm");
    // An entry the digest list leaves out (build output) is not covered by the signature.
    write_plugin(&plugins.join("outside"), "outside", "process");
    let manifest = std::fs::read_to_string(plugins.join("outside/plugin.toml")).unwrap();
    std::fs::write(
        plugins.join("outside/plugin.toml"),
        manifest.replace("main.bin", "target/main.bin"),
    )
    .unwrap();
    std::fs::create_dir_all(plugins.join("outside/target")).unwrap();
    std::fs::write(plugins.join("outside/target/main.bin"), "unsigned code").unwrap();
    sign_dir(&plugins.join("outside"), &release).unwrap();

    let config = config_with(&format!(
        "[trust]\nsandboxed_tiers = [\"wasm\", \"container\"]\n\n[trust.keys]\nrelease = \"{}\"\n",
        release.public().to_base64()
    ));
    let sigil = open(dir.path(), &config);

    let refused = summary(&sigil, "unsigned");
    assert_eq!(refused.state, State::Error);
    assert_eq!(refused.trust, Trust::Sandboxed);
    let error = refused.error.unwrap();
    assert!(
        error.contains("tier `process` is not allowed for sandboxed")
            && error.contains("sandboxed_tiers = [\"wasm\", \"container\"]")
            && error.contains("sigil plugin sign"),
        "{error}"
    );
    let signed = summary(&sigil, "signed");
    assert_eq!(signed.state, State::Running, "{:?}", signed.error);
    assert_eq!(signed.trust.level(), "verified");
    assert_eq!(summary(&sigil, "wasmy").state, State::Running);

    let outside = summary(&sigil, "outside");
    assert_eq!(outside.state, State::Error);
    assert!(
        outside
            .error
            .unwrap()
            .contains("execution.entry `target/main.bin` is not in the signed digest list"),
    );
    sigil.close().unwrap();
}

#[test]
fn the_policy_can_only_be_stricter_for_lower_trust() {
    let key = KeyPair::generate_unencrypted().unwrap();
    let cases: [(String, Option<&str>); 9] = [
        (String::new(), None),
        ("[trust]\nsandboxed_tiers = [\"wasm\"]\n".into(), None),
        ("[trust]\nsandboxed_tiers = []\n".into(), None),
        (
            "[trust]\nsandboxed_tiers = [\"wasm\"]\nverified_tiers = [\"wasm\", \"container\"]\n"
                .into(),
            None,
        ),
        (
            "[trust]\nsandboxed_tiers = [\"wasm\", \"process\", \"container\"]\nverified_tiers = [\"wasm\", \"container\"]\n"
                .into(),
            Some("trust.sandboxed_tiers: allows `process`, which trust.verified_tiers does not"),
        ),
        (
            "[trust]\nsandboxed_tiers = [\"wasm\", \"process\"]\nverified_tiers = [\"wasm\", \"process\"]\n".into(),
            None,
        ),
        (
            "[trust]\nverified_tiers = [\"builtin\"]\n".into(),
            Some("trust.verified_tiers: `builtin` is only for plugins compiled into sigil"),
        ),
        (
            "[trust.keys]\nrelease = \"RWnotakey\"\n".into(),
            Some("trust.keys.release: not a minisign public key"),
        ),
        (
            format!(
                "[trust.keys]\na = \"{k}\"\nb = \"{k}\"\n",
                k = key.public().to_base64()
            ),
            Some("trust.keys.b: trusted key `b`: key"),
        ),
    ];
    for (trust, expected) in cases {
        let result = Config::parse(&config_with(&trust), Path::new("sigil.toml"));
        match (result, expected) {
            (Ok(_), None) => {}
            (Err(error), Some(expected)) => {
                let message = error.to_string();
                assert!(message.starts_with("sigil.toml: "), "{message}");
                assert!(message.contains(expected), "{trust}: {message}");
            }
            (Ok(_), Some(expected)) => panic!("{trust}: accepted, expected `{expected}`"),
            (Err(error), None) => panic!("{trust}: {error}"),
        }
    }
    let config = Config::parse(
        &config_with("[trust]\nsandboxed_tiers = [\"wasm\"]\n"),
        Path::new("sigil.toml"),
    )
    .unwrap();
    assert_eq!(config.trust().tiers(&Trust::Sandboxed), [Tier::Wasm]);
    assert_eq!(
        config.trust().tiers(&Trust::Verified {
            key: "k".into(),
            key_id: "0".into()
        }),
        [Tier::Wasm, Tier::Process, Tier::Container]
    );
    assert_eq!(config.trust().tiers(&Trust::Trusted), [Tier::Builtin]);
}

#[test]
fn a_manifest_claiming_trust_is_refused_and_the_consent_record_names_everything() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugins/claims");
    write_plugin(&plugin, "claims", "wasm");
    let text = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    std::fs::write(
        plugin.join("plugin.toml"),
        format!("trust_level = \"trusted\"\n{text}"),
    )
    .unwrap();
    let sigil = open(dir.path(), common::CONFIG);
    assert!(sigil.manager().get("claims").is_none());
    let failures = sigil.manager().failures();
    assert!(
        failures[0]
            .diagnostics
            .iter()
            .any(|d| d.contains("a manifest cannot declare its own trust")),
        "{failures:?}"
    );
    sigil.close().unwrap();

    let manifest = sigil_manifest::parse_str(
        &std::fs::read_to_string(plugin.join("plugin.toml"))
            .unwrap()
            .replace("trust_level = \"trusted\"\n", "")
            .replace(
                "[execution]",
                "[capabilities]\nrequest = [{ capability = \"kv.*\", reason = \"state\" }]\n\n[execution]",
            ),
        sigil_manifest::Format::Toml,
        "plugin.toml",
    )
    .unwrap();
    let actor = sigil_runtime::Actor {
        user: Some("alice".into()),
        ..Default::default()
    };
    let trust = Trust::Verified {
        key: "release".into(),
        key_id: "ABCDEF0123456789".into(),
    };
    let record = consent_record(&actor, &manifest, &["kv.*".to_string()], &trust);
    assert_eq!(record.actor.user.as_deref(), Some("alice"));
    assert_eq!(record.plugin.as_deref(), Some("claims"));
    assert_eq!(record.plugin_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        record.rule,
        "install consent: kv.*; trust: verified, signed by key `release` (ABCDEF0123456789)"
    );
}

#[test]
fn approvals_take_only_a_vouched_for_plugin_at_its_word_about_blast_radius() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let release = KeyPair::generate_unencrypted().unwrap();
    // Both call their `echo` harmless: confined to a VM, reversible, changing nothing.
    let harmless = "\n[actions.echo]\nscope = \"vm\"\nmutates_state = false\nreversible = true\n";
    for id in ["unsigned", "signed"] {
        write_plugin(&plugins.join(id), id, "wasm");
        let manifest = plugins.join(id).join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, format!("{text}{harmless}")).unwrap();
    }
    sign_dir(&plugins.join("signed"), &release).unwrap();
    let config = config_with(&format!(
        "[trust.keys]\nrelease = \"{}\"\n\n[approvals]\nrequire = [\"irreversible\"]\n",
        release.public().to_base64()
    ));
    let sigil = open(dir.path(), &config);
    assert_eq!(summary(&sigil, "unsigned").trust, Trust::Sandboxed);
    assert!(matches!(
        summary(&sigil, "signed").trust,
        Trust::Verified { .. }
    ));

    // The signed plugin's claim stands; the unsigned one's is ignored, so its tool counts as
    // irreversible and waits for a person.
    assert_eq!(sigil.approval_required("signed", "echo"), None);
    let why = sigil.approval_required("unsigned", "echo");
    assert!(
        why.as_deref().is_some_and(|w| w.contains("irreversible")),
        "{why:?}"
    );
}

/// A broken signature is recorded each time the runtime tries to load the plugin, and only
/// then: a runtime that starts nothing (the audit commands, `policy explain`) tries none, so it
/// adds nothing to the log, yet still knows the plugin and its authority.
#[test]
fn a_runtime_that_starts_nothing_records_no_load_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let release = KeyPair::generate_unencrypted().unwrap();
    write_plugin(&plugins.join("changed"), "changed", "wasm");
    sign_dir(&plugins.join("changed"), &release).unwrap();
    std::fs::write(plugins.join("changed/main.bin"), "code of changeD").unwrap();
    let config = config_with(&format!(
        "[trust.keys]\nrelease = \"{}\"\n",
        release.public().to_base64()
    ));
    let refusals = |sigil: &Runtime| {
        sigil
            .audit()
            .query(&sigil_audit::Filter {
                decision: Some(sigil_audit::Verdict::Deny),
                ..sigil_audit::Filter::default()
            })
            .unwrap()
            .iter()
            .filter(|r| r.record.rule.contains("not loaded"))
            .count()
    };

    let sigil = open(dir.path(), &config);
    assert_eq!(refusals(&sigil), 1, "loading records the broken signature");
    sigil.close().unwrap();

    let inactive =
        Runtime::open_inactive(common::home(dir.path(), &config), vec![common::probe().0]).unwrap();
    assert_eq!(
        refusals(&inactive),
        1,
        "a runtime that starts nothing records nothing"
    );
    assert!(inactive.manager().get("changed").is_some());
    inactive.close().unwrap();
}
