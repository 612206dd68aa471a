//! The kit's bindings are generated from its own copy of Sigil's WIT package (`wit/` beside
//! `Cargo.toml`, so the crate builds where the repository is not). That copy must be the
//! repository's `wit/`, file for file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn files(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                found.insert(path.strip_prefix(root).unwrap().to_path_buf(), text);
            }
        }
    }
    found
}

#[test]
fn the_vendored_wit_is_the_repository_wit() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = files(&crate_dir.join("../../../wit"));
    let vendored = files(&crate_dir.join("wit"));
    assert!(
        repo.contains_key(Path::new("tool.wit")) && repo.len() >= 3,
        "the repository's wit/ was not found beside sdk/"
    );
    let repo_names: Vec<_> = repo.keys().collect();
    let vendored_names: Vec<_> = vendored.keys().collect();
    assert_eq!(
        vendored_names, repo_names,
        "sdk/rust/sigil-pdk/wit has other files than wit/: copy wit/ over it"
    );
    for (path, text) in &repo {
        assert!(
            vendored[path] == *text,
            "sdk/rust/sigil-pdk/wit/{} differs from wit/{0}: copy wit/ over sdk/rust/sigil-pdk/wit",
            path.display()
        );
    }
}
