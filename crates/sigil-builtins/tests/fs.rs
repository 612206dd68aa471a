//! The `fs` builtin reads only where policy allows, and no path trick leads outside.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::json;
use sigil_audit::{Filter, Verdict};
use sigil_runtime::{Home, InvokeError, Runtime};

/// A data directory whose user `reader` may read only `<root>/shared/**`.
fn setup() -> (tempfile::TempDir, Runtime, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let shared = root.join("shared");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("private")).unwrap();
    std::fs::write(shared.join("note.txt"), "shared note\n").unwrap();
    std::fs::write(shared.join("sub/deep.txt"), "deep").unwrap();
    std::fs::write(root.join("private/secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(root.join("private/secret.txt"), shared.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(root.join("private"), shared.join("dirlink")).unwrap();
    let shared = shared.to_str().unwrap().to_string();
    let config = format!(
        "[defaults]\nuser = \"reader\"\nworkspace = \"w\"\n\n[workspaces.w]\nallow = [\"*\"]\n\n\
         [users.reader]\npermissions = [\"tool.fs.*\", \"fs.read:{shared}/**\"]\ndeny = [\"fs.read:{shared}/sub/**\"]\n"
    );
    let home_dir = root.join("home");
    std::fs::create_dir_all(&home_dir).unwrap();
    std::fs::write(home_dir.join("sigil.toml"), config).unwrap();
    let runtime = Runtime::open(
        Home::resolve(Some(&home_dir)).unwrap(),
        sigil_builtins::all(),
    )
    .unwrap();
    (dir, runtime, shared)
}

fn read(sigil: &Runtime, path: &str) -> Result<serde_json::Value, InvokeError> {
    let actor = sigil.local_actor(None, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(sigil.invoke(&actor, "fs/read_text", json!({ "path": path })))
        .map(|i| i.output)
}

fn denied_records(sigil: &Runtime) -> Vec<String> {
    let records = sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap();
    records
        .into_iter()
        .map(|r| r.record.capability.unwrap())
        .collect()
}

#[test]
fn reads_inside_the_granted_directory() {
    let (_dir, sigil, shared) = setup();
    let out = read(&sigil, &format!("{shared}/note.txt")).unwrap();
    assert_eq!(out["text"], "shared note\n");
    assert_eq!(out["truncated"], false);
}

#[test]
fn path_tricks_are_denied_and_audited() {
    let (_dir, sigil, shared) = setup();
    let root = Path::new(&shared)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // (path asked for, capability the denial is recorded under)
    let table = [
        (
            format!("{root}/private/secret.txt"),
            format!("fs.read:{root}/private/secret.txt"),
        ),
        (
            format!("{shared}/../private/secret.txt"),
            format!("fs.read:{root}/private/secret.txt"),
        ),
        (
            format!("{shared}/link.txt"),
            format!("fs.read:{root}/private/secret.txt"),
        ),
        (
            format!("{shared}/dirlink/secret.txt"),
            format!("fs.read:{root}/private/secret.txt"),
        ),
        (
            format!("{shared}/sub/deep.txt"),
            format!("fs.read:{shared}/sub/deep.txt"),
        ),
        ("/etc/shadow".to_string(), "fs.read:/etc/shadow".to_string()),
    ];
    for (i, (path, recorded)) in table.iter().enumerate() {
        let err = read(&sigil, path).unwrap_err();
        assert!(
            matches!(&err, InvokeError::Failed { error, .. } if error.contains("denied `fs.read:")),
            "{path}: {err}"
        );
        let denied = denied_records(&sigil);
        assert_eq!(
            denied.len(),
            i + 1,
            "{path}: one deny recorded per attempt: {denied:?}"
        );
        assert_eq!(denied.last().unwrap(), recorded, "{path}");
    }
    // The secret's text never came back, and a fair read still works afterwards.
    assert_eq!(
        read(&sigil, &format!("{shared}/note.txt")).unwrap()["text"],
        "shared note\n"
    );
}

#[test]
fn list_dir_is_checked_the_same_way() {
    let (_dir, sigil, shared) = setup();
    let actor = sigil.local_actor(None, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listing = rt
        .block_on(sigil.invoke(&actor, "fs/list_dir", json!({ "path": shared })))
        .unwrap()
        .output;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dirlink", "link.txt", "note.txt", "sub"]);
    let err = rt
        .block_on(sigil.invoke(
            &actor,
            "fs/list_dir",
            json!({ "path": format!("{shared}/dirlink") }),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("denied"), "{err}");
}

#[test]
fn text_tools_compute_real_results() {
    let dir = tempfile::tempdir().unwrap();
    let sigil = Runtime::open(
        Home::resolve(Some(dir.path())).unwrap(),
        sigil_builtins::all(),
    )
    .unwrap();
    let actor = sigil.local_actor(None, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = rt
        .block_on(sigil.invoke(&actor, "text/sha256", json!({ "text": "abc" })))
        .unwrap()
        .output;
    assert_eq!(
        digest["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let stats = rt
        .block_on(sigil.invoke(
            &actor,
            "text/stats",
            json!({ "text": "one two\nthree ünï\n" }),
        ))
        .unwrap()
        .output;
    assert_eq!(
        stats,
        json!({ "lines": 2, "words": 4, "chars": 18, "bytes": 20 })
    );
}
