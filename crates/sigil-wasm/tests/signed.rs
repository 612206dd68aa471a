//! A verified WebAssembly plugin runs only the component its signature covers: the tier checks
//! the bytes it compiles against the signed digest list, so a component changed after the
//! runtime checked the directory, even while the plugin loads, is never loaded as verified,
//! and every refusal is in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sigil_audit::{Filter, Verdict};
use sigil_runtime::{Home, Runtime, State, Trust};
use sigil_trust::{KeyPair, sign_dir};
use sigil_wasm::WasmTier;

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sigil: Runtime,
}

/// The hostile component installed as `hostile` and signed by a key the operator trusts.
fn signed_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let plugin_dir = root.join("home/plugins/hostile");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::copy(sigil_guests::HOSTILE, plugin_dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        r#"
id = "hostile"
name = "Hostile"
version = "0.1.0"
description = "Signed, then changed."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "plugin.wasm"
"#,
    )
    .unwrap();
    let release = KeyPair::generate_unencrypted().unwrap();
    sign_dir(&plugin_dir, &release).unwrap();
    std::fs::write(
        root.join("home/sigil.toml"),
        format!(
            r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

[trust.keys]
release = "{}"
"#,
            release.public().to_base64()
        ),
    )
    .unwrap();
    World {
        sigil: open(&root),
        _dir: dir,
        root,
    }
}

fn open(root: &Path) -> Runtime {
    let home = Home::resolve(Some(&root.join("home"))).unwrap();
    let tier = WasmTier::new(root.join("home/cache/wasm")).unwrap();
    Runtime::open_with(
        home,
        Vec::new(),
        vec![(sigil_manifest::Tier::Wasm, Arc::new(tier))],
    )
    .unwrap()
}

fn summary(sigil: &Runtime) -> sigil_runtime::PluginSummary {
    sigil.manager().get("hostile").unwrap().summary()
}

/// Writes `bytes` to `path` in one step (a reader sees the old file or the new, never half),
/// through a file beside the plugin's directory, not in it.
fn replace(path: &Path, bytes: &[u8]) {
    let next = path.parent().unwrap().with_extension("next");
    std::fs::write(&next, bytes).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// The deny records of `hostile` whose rule says `needle`.
fn refusals(sigil: &Runtime, needle: &str) -> usize {
    sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.record.plugin.as_deref() == Some("hostile") && r.record.rule.contains(needle))
        .count()
}

#[test]
fn a_component_changed_after_verification_is_never_reloaded_as_verified() {
    let w = signed_world();
    assert_eq!(summary(&w.sigil).trust.level(), "verified");
    let component = w.root.join("home/plugins/hostile/plugin.wasm");
    replace(&component, &std::fs::read(sigil_guests::HELLO).unwrap());

    let error = w.sigil.reload("hostile").unwrap_err().to_string();
    assert!(
        error.contains("plugin.wasm was changed after signing"),
        "{error}"
    );
    assert_eq!(
        refusals(&w.sigil, "plugin.wasm was changed after signing"),
        1
    );
    // The generation loaded from the signed bytes still serves them.
    let listed = summary(&w.sigil);
    assert!(!listed.tools.iter().any(|t| t == "greet"), "{listed:?}");

    // Started afresh, the plugin is not loaded, not verified, and the log says why.
    let World { _dir, root, sigil } = w;
    drop(sigil);
    let sigil = open(&root);
    let listed = summary(&sigil);
    assert_eq!(listed.state, State::Error, "{listed:?}");
    assert_eq!(listed.trust, Trust::Sandboxed);
    assert_eq!(refusals(&sigil, "plugin.wasm was changed after signing"), 2);
}

/// Raises its flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_component_swapped_while_it_loads_is_never_run_as_verified() {
    let w = signed_world();
    let component = w.root.join("home/plugins/hostile/plugin.wasm");
    let signed = std::fs::read(&component).unwrap();
    let other = std::fs::read(sigil_guests::HELLO).unwrap();
    let stop = AtomicBool::new(false);
    let (mut loaded, mut refused) = (0, 0);
    std::thread::scope(|scope| {
        // Flips the component between the signed bytes and others, as fast as it can, until
        // the loop below ends, however it ends.
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                replace(&component, &other);
                replace(&component, &signed);
            }
        });
        let _stop = Stop(&stop);
        for _ in 0..200 {
            match w.sigil.reload("hostile") {
                Ok(listed) => {
                    loaded += 1;
                    assert_eq!(listed.trust.level(), "verified");
                    assert!(
                        listed.tools.iter().any(|t| t == "echo")
                            && !listed.tools.iter().any(|t| t == "greet"),
                        "a component other than the signed one loaded as verified: {listed:?}"
                    );
                }
                Err(error) => {
                    refused += 1;
                    assert!(
                        error.to_string().contains("changed after signing"),
                        "{error}"
                    );
                }
            }
        }
    });
    // Every refusal is on the record.
    assert_eq!(
        refusals(&w.sigil, "changed after signing"),
        refused,
        "{loaded} loaded"
    );
}
