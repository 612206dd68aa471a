//! `ARCHITECTURE.md` stays true: every source, test and document path it cites exists, and
//! every crate it describes is in the workspace (and every workspace crate under `crates/` is
//! described).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap()
}

/// The texts in backticks.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// A cited path, as a path from the repository root: `crates/x/...`, `sigil-x/...` (a crate),
/// `docs/...`, `sdk/...`, `scripts/...`; `None` for anything else (a module path relative to
/// its crate, a command, a type).
fn cited_path(text: &str) -> Option<PathBuf> {
    if text.contains(' ') || text.contains('*') || text.contains('<') || text.contains('{') {
        return None;
    }
    let looks_like_file = Path::new(text).extension().is_some();
    if !looks_like_file {
        return None;
    }
    for top in [
        "crates/",
        "docs/",
        "sdk/",
        "scripts/",
        "examples/",
        "tests/",
        "proto/",
        "wit/",
    ] {
        if text.starts_with(top) {
            return Some(PathBuf::from(text));
        }
    }
    if text.starts_with("sigil-") && text.contains('/') {
        return Some(Path::new("crates").join(text));
    }
    None
}

#[test]
fn every_path_architecture_cites_exists() {
    let text = architecture();
    let cited: Vec<PathBuf> = quoted(&text).into_iter().filter_map(cited_path).collect();
    // The map cites its code and tests throughout; a parser that finds none checks nothing.
    assert!(
        cited.len() > 40,
        "only {} paths found: {cited:?}",
        cited.len()
    );
    let missing: BTreeSet<String> = cited
        .into_iter()
        .filter(|path| !root().join(path).exists())
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md cites paths that do not exist: {missing:?}"
    );
}

#[test]
fn every_crate_architecture_describes_is_in_the_workspace_and_back() {
    let text = architecture();
    // A crate is described where the map names it: `crates/NAME` in a heading or the text.
    let described: BTreeSet<String> = quoted(&text)
        .into_iter()
        .filter_map(|quote| quote.strip_prefix("crates/"))
        .filter_map(|rest| rest.split('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let not_there: Vec<_> = described.difference(&on_disk).collect();
    assert!(
        not_there.is_empty(),
        "described but not in crates/: {not_there:?}"
    );
    let undescribed: Vec<_> = on_disk.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "crates ARCHITECTURE.md does not describe: {undescribed:?}"
    );
}

#[test]
fn the_call_path_stages_are_listed_in_the_order_the_dispatch_runs_them() {
    let text = architecture();
    // The numbered list whose items start with a stage name in bold: `1. **authorise**: ...`.
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.split_once(". **")?;
            number.trim().parse::<u32>().ok()?;
            Some(rest.split_once("**")?.0)
        })
        .collect();
    let stages: Vec<&str> = sigil_runtime::STAGES.iter().map(|s| s.name()).collect();
    assert_eq!(listed, stages, "ARCHITECTURE.md's stage list");
}
