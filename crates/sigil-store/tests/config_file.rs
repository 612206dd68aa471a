//! The one editor of `sigil.toml`: concurrent edits never lose one another, a refused edit
//! writes nothing, and comments stay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};

use serde_json::json;
use sigil_store::{ConfigFile, ConfigFileError, Edited};

const START: &str = "# The operator's notes.\n[defaults]\nuser = \"local\" # who acts\n";

fn file() -> (tempfile::TempDir, ConfigFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.toml");
    std::fs::write(&path, START).unwrap();
    (dir, ConfigFile::new(path))
}

#[test]
fn edits_from_many_threads_at_once_all_land() {
    let (_dir, file) = file();
    let threads = 16;
    let rounds = 10;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let file = file.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for r in 0..rounds {
                    file.edit::<ConfigFileError>(
                        |settings| {
                            assert!(settings.add_trust_key(&format!("k{t}-{r}"), "RWQ")?);
                            Ok(())
                        },
                        |_| Ok(()),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let text = std::fs::read_to_string(file.path()).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let keys = table["trust"]["keys"].as_table().unwrap();
    assert_eq!(keys.len(), threads * rounds, "{text}");
    assert!(text.starts_with("# The operator's notes.\n"), "{text}");
    assert!(text.contains("user = \"local\" # who acts"), "{text}");
}

#[test]
fn a_refused_edit_writes_nothing_and_an_empty_one_writes_nothing() {
    let (_dir, file) = file();
    let refused = file.edit(
        |settings| settings.set_consent("echo", Some(&["kv.read:echo.*".into()])),
        |_| {
            Err(ConfigFileError::Value {
                message: "does not load".into(),
            })
        },
    );
    assert!(refused.is_err());
    assert_eq!(std::fs::read_to_string(file.path()).unwrap(), START);

    let unchanged = file
        .edit::<ConfigFileError>(|settings| settings.set_consent("echo", None), |_| Ok(()))
        .unwrap();
    assert_eq!(unchanged, Edited::Unchanged);
    assert_eq!(std::fs::read_to_string(file.path()).unwrap(), START);
}

#[test]
fn a_plugin_configuration_is_written_as_a_table_and_null_is_refused_by_place() {
    let (_dir, file) = file();
    file.edit::<ConfigFileError>(
        |settings| settings.set_plugin_config("hello", &json!({ "greeting": "hi", "n": 3 })),
        |_| Ok(()),
    )
    .unwrap();
    let table: toml::Table = std::fs::read_to_string(file.path())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        table["plugins"]["hello"]["config"]["greeting"].as_str(),
        Some("hi")
    );
    assert_eq!(
        table["plugins"]["hello"]["config"]["n"].as_integer(),
        Some(3)
    );

    let error = file
        .edit::<ConfigFileError>(
            |settings| settings.set_plugin_config("hello", &json!({ "deep": { "x": null } })),
            |_| Ok(()),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "at `/deep/x`: null cannot be written to sigil.toml; leave the field out"
    );
}

#[test]
fn a_file_that_is_not_toml_is_named_and_left_alone() {
    let (_dir, file) = file();
    std::fs::write(file.path(), "[defaults\n").unwrap();
    let error = file
        .edit::<ConfigFileError>(|settings| settings.set_consent("x", None), |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&error, ConfigFileError::Syntax { path, .. } if path == file.path()),
        "{error:?}"
    );
    assert!(error.to_string().contains("sigil.toml"), "{error}");
    assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "[defaults\n");
}
