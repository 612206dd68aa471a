//! The Rust plugin kit end to end, with the `sigil` binary as a user runs it: a scaffold made by
//! `sigil plugin new --lang rust` passes its own `cargo test` out of the box, and
//! `sigil plugin build` turns a Rust plugin into a component that installs and runs, or, where
//! the `wasm32-wasip2` target is not installed, refuses with the command that installs it.
//!
//! Both branches assert something real. Which one runs depends on the machine: the target comes
//! from `rustup target add wasm32-wasip2`, which this suite never runs itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MISSING_TARGET: &str =
    "error: the Rust target wasm32-wasip2 is not installed: `rustup target add wasm32-wasip2`";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where scaffolded plugins build: under the repository's target directory, so their
/// dependencies are compiled once and reused by later runs.
fn scaffold_target() -> PathBuf {
    repo().join("target/scaffold-test")
}

fn sigil(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_HOME", home)
        .env("CARGO_TARGET_DIR", scaffold_target())
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

/// Whether this machine's Rust has the standard library for `wasm32-wasip2`.
fn wasip2_installed() -> bool {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .expect("rustc runs");
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(libdir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
}

/// `sigil plugin build DIR`: a component when the target is installed (returned), else the
/// exact refusal naming the install command (asserted, then `None`).
fn build(home: &Path, dir: &Path) -> Option<PathBuf> {
    let out = sigil(home, &["plugin", "build", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if wasip2_installed() {
        assert!(out.status.success(), "sigil plugin build failed:\n{stderr}");
        let wasm = dir.join("plugin.wasm");
        let bytes = std::fs::read(&wasm).unwrap();
        // A component, not a core module: the version field after `\0asm` says so.
        assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{}", wasm.display());
        Some(wasm)
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr.trim_end().lines().last(),
            Some(MISSING_TARGET),
            "{stderr}"
        );
        assert!(!dir.join("plugin.wasm").exists());
        eprintln!(
            "wasm32-wasip2 is not installed here: checked that `sigil plugin build` says how to \
             install it; run `rustup target add wasm32-wasip2` to build and run the component too"
        );
        None
    }
}

#[test]
fn a_fresh_rust_plugin_passes_its_own_tests_and_builds_or_says_how() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    ok(
        home.path(),
        &[
            "plugin",
            "new",
            "greeter-rs",
            "--kind",
            "tool",
            "--tier",
            "wasm",
            "--lang",
            "rust",
            "--dir",
            work.path().to_str().unwrap(),
        ],
    );
    let plugin = work.path().join("greeter-rs");
    for file in [
        "plugin.toml",
        "Cargo.toml",
        "src/lib.rs",
        "tests/tools.rs",
        "README.md",
        "vendor/sigil-pdk/Cargo.toml",
        "vendor/sigil-pdk/src/lib.rs",
        "vendor/sigil-pdk/src/testing.rs",
        "vendor/sigil-pdk/wit/tool.wit",
        "vendor/sigil-pdk/wit/deps/http/http.wit",
    ] {
        assert!(plugin.join(file).is_file(), "{file} scaffolded");
    }
    let manifest = std::fs::read_to_string(plugin.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"greeter-rs\"") && manifest.contains("\n[workspace]\n"),
        "its own workspace:\n{manifest}"
    );
    let tests = std::fs::read_to_string(plugin.join("tests/tools.rs")).unwrap();
    assert!(tests.contains("greeter_rs::plugin()") && !tests.contains("{{"));

    let lint = ok(home.path(), &["plugin", "lint", plugin.to_str().unwrap()]);
    assert!(lint.contains("ok (greeter-rs 0.1.0)"), "{lint}");

    // Its own tests pass out of the box, natively, against the kit written beside it.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let test = Command::new(cargo)
        .arg("test")
        .current_dir(&plugin)
        .env("CARGO_TARGET_DIR", scaffold_target())
        // No debug info: the first, uncached run compiles all of the kit's dependencies, and
        // this leaves less to compile and link.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "cargo test in the scaffold failed:\n{stdout}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        stdout.contains("running 4 tests") && stdout.contains("test result: ok. 4 passed"),
        "{stdout}"
    );

    let Some(_) = build(home.path(), &plugin) else {
        return;
    };
    let installed = ok(
        home.path(),
        &["plugin", "install", plugin.to_str().unwrap(), "--yes"],
    );
    assert!(
        installed.contains("greeter-rs is running; tools: greet"),
        "{installed}"
    );
    let out = ok(
        home.path(),
        &[
            "tool",
            "invoke",
            "greeter-rs/greet",
            "--input",
            r#"{"name":"ada","excited":true}"#,
        ],
    );
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value, serde_json::json!({"greeting": "hello, ada!"}));
}

/// examples/hello-rust through the host: kv counting across calls, and validate-pre refusing.
#[test]
fn the_rust_example_builds_and_runs_in_the_host_or_says_how() {
    let home = tempfile::tempdir().unwrap();
    let example = repo().join("examples/hello-rust");
    let lint = ok(home.path(), &["plugin", "lint", example.to_str().unwrap()]);
    assert!(lint.contains("ok (hello-rust 0.1.0)"), "{lint}");

    let Some(_) = build(home.path(), &example) else {
        return;
    };
    let installed = ok(
        home.path(),
        &["plugin", "install", example.to_str().unwrap(), "--yes"],
    );
    assert!(installed.contains("hello-rust is running"), "{installed}");
    let invoke = |input: &str| {
        sigil(
            home.path(),
            &["tool", "invoke", "hello-rust/greet", "--input", input],
        )
    };
    for times in 1..=2 {
        let out = invoke(r#"{"name":"ada"}"#);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"greeting": "hello, ada", "times": times})
        );
    }
    let blank = invoke(r#"{"name":" "}"#);
    assert_eq!(blank.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&blank.stderr).contains("`name` is blank"),
        "{}",
        String::from_utf8_lossy(&blank.stderr)
    );
}
