//! `sigil plugin new --tier process`, with the `sigil` binary as a user runs it: a Python and a
//! Rust process plugin are scaffolded, pass `sigil plugin lint`, and pass their own tests out
//! of the box (`python3 -m pytest`, `cargo test`); the Rust one builds into its entry with
//! `sigil plugin build`. Unsupported combinations are refused with what is supported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where scaffolded plugins build, shared with the wasm Rust scaffold's test: dependencies are
/// compiled once and reused by later runs.
fn scaffold_target() -> PathBuf {
    repo().join("target/scaffold-test")
}

fn sigil(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_HOME", home)
        .env("CARGO_TARGET_DIR", scaffold_target())
        // `plugin build` builds a native plugin in release; unoptimised, that build of the
        // dependencies takes as long as the test's debug one instead of several times longer.
        // What is checked (that it builds and lands at its entry) does not depend on it.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
        .env_remove("SIGIL_LOG")
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = sigil(home, args);
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Scaffolds `name` as a process plugin in `lang` under `work`, checks the files and the lint.
fn scaffold(home: &Path, work: &Path, name: &str, lang: &str, files: &[&str]) -> PathBuf {
    let dir = work.to_str().unwrap();
    let args = [
        "plugin", "new", name, "--kind", "tool", "--tier", "process", "--lang", lang, "--dir", dir,
    ];
    let created = ok(home, &args);
    let plugin = work.join(name);
    assert!(
        created.contains(&format!("created {}", plugin.display())),
        "{created}"
    );
    for file in files {
        assert!(plugin.join(file).is_file(), "{file} missing");
    }
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    assert!(manifest.contains("tier = \"process\""), "{manifest}");
    assert!(manifest.contains(&format!("id = \"{name}\"")), "{manifest}");
    let lint = ok(home, &["plugin", "lint", plugin.to_str().unwrap()]);
    assert!(lint.contains(&format!(": ok ({name} 0.1.0)")), "{lint}");
    plugin
}

#[test]
fn a_fresh_python_process_plugin_lints_and_passes_its_own_tests() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let plugin = scaffold(
        home.path(),
        work.path(),
        "greeter-proc",
        "python",
        &[
            "plugin.toml",
            "main.py",
            "test_main.py",
            "README.md",
            ".gitignore",
        ],
    );
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    assert!(manifest.contains("entry = \"main.py\""), "{manifest}");
    assert!(manifest.contains("interpreter = \"python3\""), "{manifest}");

    let out = Command::new("python3")
        .args(["-m", "pytest", "-p", "no:cacheprovider"])
        .current_dir(&plugin)
        .output()
        .expect("python3 runs: install it, then run scripts/install-python-kit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pytest failed in the scaffold (is the kit installed? run scripts/install-python-kit):\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains("4 passed") && !summary.contains("failed") && !summary.contains("skipped"),
        "{stdout}"
    );

    // Nothing to build: Sigil runs the sources.
    let built = ok(home.path(), &["plugin", "build", plugin.to_str().unwrap()]);
    assert!(built.contains("nothing to build"), "{built}");
}

#[test]
fn a_fresh_rust_process_plugin_passes_its_own_tests_and_builds_its_entry() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let plugin = scaffold(
        home.path(),
        work.path(),
        "greeter-proc-rs",
        "rust",
        &[
            "plugin.toml",
            "Cargo.toml",
            "src/lib.rs",
            "src/main.rs",
            "tests/process.rs",
            "README.md",
            ".gitignore",
            "vendor/sigil-process-kit/Cargo.toml",
            "vendor/sigil-process-kit/build.rs",
            "vendor/sigil-process-kit/src/lib.rs",
            "vendor/sigil-process-kit/proto/sigil/plugin/v1/plugin.proto",
        ],
    );
    let manifest = std::fs::read_to_string(plugin.join("plugin.toml")).unwrap();
    assert!(
        manifest.contains("entry = \"bin/greeter-proc-rs\""),
        "{manifest}"
    );

    let out = Command::new("cargo")
        .args(["test", "--color", "never"])
        .current_dir(&plugin)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo test failed in the scaffold:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test greet_over_grpc ... ok"), "{stdout}");

    ok(home.path(), &["plugin", "build", plugin.to_str().unwrap()]);
    let entry = plugin.join("bin/greeter-proc-rs");
    let bytes = std::fs::read(&entry).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is no executable",
        entry.display()
    );
}

#[test]
fn unsupported_combinations_are_refused_with_what_is_supported() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_str().unwrap();
    let out = sigil(
        home.path(),
        &[
            "plugin", "new", "nope", "--tier", "process", "--lang", "c", "--dir", dir,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: `--tier process --lang c` cannot be scaffolded; supported: \
         `--tier wasm --lang python|c|rust`, `--tier process --lang python|rust`"
    );
    assert!(!work.path().join("nope").exists());

    let out = sigil(
        home.path(),
        &["plugin", "new", "nope", "--tier", "container", "--dir", dir],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[possible values: wasm, process]"),
        "{stderr}"
    );
    assert!(!work.path().join("nope").exists());
}

/// `sigil plugin new --list` names every tier and language that can be scaffolded, and each one
/// it lists does scaffold: a plugin directory with its manifest, and nothing else created.
#[test]
fn every_combination_the_list_names_scaffolds() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let listed = ok(home.path(), &["plugin", "new", "--list"]);
    assert!(listed.starts_with("kinds: tool"), "{listed}");
    let combinations: Vec<(String, String)> = listed
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (tier, lang) = (words.next()?, words.next()?);
            ["wasm", "process"]
                .contains(&tier)
                .then(|| (tier.to_string(), lang.to_string()))
        })
        .collect();
    assert_eq!(combinations.len(), 5, "{listed}");
    assert!(
        std::fs::read_dir(work.path()).unwrap().next().is_none(),
        "--list created something"
    );
    for (i, (tier, lang)) in combinations.iter().enumerate() {
        let name = format!("listed-{i}");
        let dir = work.path().to_str().unwrap();
        ok(
            home.path(),
            &[
                "plugin", "new", &name, "--tier", tier, "--lang", lang, "--dir", dir,
            ],
        );
        assert!(
            work.path().join(&name).join("plugin.toml").is_file(),
            "{tier}/{lang} made no manifest"
        );
    }
}
