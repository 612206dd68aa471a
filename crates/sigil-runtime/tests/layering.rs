//! The crate graph keeps the architecture: dependencies point from the edges to the core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// The triple of the machine the tests run on, as `rustc` names it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("`{rustc} -vV` names no host: {text}"))
        .to_string()
}

/// Every package `root` depends on for its library (normal dependencies, transitively).
///
/// The graph is filtered to the host platform: resolving every platform's packages would
/// need crates that a build never downloads (and so fail on a fresh machine), and a crate
/// pulled in only on another platform cannot bend this build's layering anyway.
fn closure(root: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, Vec<&str>> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (node["id"].as_str().unwrap(), deps)
        })
        .collect();
    let start = names
        .iter()
        .find(|(_, n)| **n == root)
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in nodes.get(id).into_iter().flatten() {
            if seen.insert(names[dep].to_string()) {
                stack.push(dep);
            }
        }
    }
    seen
}

#[test]
fn the_policy_core_depends_on_nothing_that_does_io() {
    let deps = closure("sigil-policy");
    for forbidden in [
        "tokio",
        "rusqlite",
        "serde_json",
        "sigil-audit",
        "sigil-runtime",
        "sigil-manifest",
    ] {
        assert!(
            !deps.contains(forbidden),
            "sigil-policy depends on {forbidden}: {deps:?}"
        );
    }
}

#[test]
fn the_runtime_knows_no_tier_or_protocol_implementation() {
    let deps = closure("sigil-runtime");
    for forbidden in [
        "wasmtime",
        "tonic",
        "axum",
        "hyper",
        "reqwest",
        "sigil-builtins",
    ] {
        assert!(
            !deps.contains(forbidden),
            "sigil-runtime depends on {forbidden}"
        );
    }
}

#[test]
fn the_manifest_and_audit_crates_stay_independent_of_the_runtime() {
    for krate in ["sigil-manifest", "sigil-audit"] {
        let deps = closure(krate);
        for forbidden in ["sigil-runtime", "tokio"] {
            assert!(!deps.contains(forbidden), "{krate} depends on {forbidden}");
        }
    }
}

#[test]
fn the_signature_crate_knows_nothing_of_manifests_tiers_or_the_runtime() {
    let deps = closure("sigil-trust");
    for forbidden in [
        "sigil-runtime",
        "sigil-manifest",
        "sigil-audit",
        "tokio",
        "rusqlite",
    ] {
        assert!(
            !deps.contains(forbidden),
            "sigil-trust depends on {forbidden}"
        );
    }
}

/// The packages `root` names as normal dependencies in its own `Cargo.toml`.
fn direct(root: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == root)
        .unwrap_or_else(|| panic!("no package {root}"));
    package["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"].is_null())
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_store_depends_on_no_other_sigil_crate_and_does_no_async_work() {
    let deps = closure("sigil-store");
    for dep in &deps {
        assert!(
            !dep.starts_with("sigil"),
            "sigil-store depends on {dep}: {deps:?}"
        );
    }
    for forbidden in ["tokio", "rusqlite"] {
        assert!(
            !deps.contains(forbidden),
            "sigil-store depends on {forbidden}"
        );
    }
}

#[test]
fn sigil_toml_is_edited_only_by_the_store() {
    // `toml_edit` is how `sigil.toml` is changed with its comments kept; only the store's
    // one editor may do that. The command line uses it for the scaffolds it writes elsewhere.
    for krate in ["sigil-runtime", "sigil-gateway", "sigil-mcp", "sigil"] {
        let deps = direct(krate);
        assert!(
            !deps.contains("toml_edit"),
            "{krate} edits TOML itself; sigil.toml has one editor, sigil_store::ConfigFile"
        );
    }
}
