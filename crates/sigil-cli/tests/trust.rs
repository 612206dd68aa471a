//! Signed plugins through the `sigil` binary: a key made and trusted, a real process plugin
//! signed, installed with its consent audited, listed as verified; tampering, unknown
//! signers and the tier policy, each as the operator meets them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MANIFEST: &str = r#"
id = "echo"
name = "Echo"
version = "0.1.0"
description = "Echoes its input from a sandboxed process."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [{ capability = "kv.read:echo.*", reason = "reads its own notes" }]

[execution]
tier = "process"
entry = "plugin"

[execution.limits]
timeout_ms = 10000
"#;

struct Sigil {
    home: PathBuf,
}

/// This build's `sigil`, hard-linked once into a directory of its own when the tests start: the
/// process tier then uses the binary itself as its sandbox entrypoint, and a later build writing
/// a new `target/debug/sigil` does not change the binary under test.
fn sigil_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("trust-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("sigil");
        if !bin.exists() {
            std::fs::hard_link(env!("CARGO_BIN_EXE_sigil"), &bin).unwrap();
        }
        bin
    })
}

impl Sigil {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(sigil_bin())
            .args(args)
            .env("SIGIL_HOME", &self.home)
            .env("TEST_KEY_PASSWORD", "correct horse")
            .env_remove("SIGIL_LOG")
            .env_remove("SIGIL_SANDBOX_INIT")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "sigil {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "sigil {args:?} should exit 1: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The `sigil plugin list` line of `id` and the indented lines under it.
    fn listed(&self, id: &str) -> String {
        let listing = self.ok(&["plugin", "list"]);
        let mut lines = listing
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{id} ")));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("{id} not listed:\n{listing}"));
        let rest: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
        format!("{first}\n{}", rest.join("\n"))
    }

    fn config(&self) -> PathBuf {
        self.home.join("sigil.toml")
    }
}

fn echo_plugin(at: &Path) -> PathBuf {
    let fixtures = sigil_process_guests::build().unwrap();
    std::fs::create_dir_all(at).unwrap();
    std::fs::copy(&fixtures.echo, at.join("plugin")).unwrap();
    std::fs::write(at.join("plugin.toml"), MANIFEST).unwrap();
    at.to_path_buf()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_signed_plugin_installs_as_verified_with_its_consent_audited() {
    sigil_bin();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sigil = Sigil {
        home: work.path().join("home"),
    };
    let keys = work.path().join("keys");
    let out = sigil.ok(&["trust", "keygen", "--out", s(&keys.join("release.key"))]);
    assert!(out.contains("unencrypted"), "{out}");
    let plugin = echo_plugin(&work.path().join("echo"));
    let out = sigil.ok(&[
        "plugin",
        "sign",
        s(&plugin),
        "--key",
        s(&keys.join("release.key")),
    ]);
    assert!(out.contains("signed 2 file(s)"), "{out}");

    // minisign's own tool verifies what sigil wrote.
    let out = Command::new("minisign")
        .args(["-V", "-m", "SIGIL-DIGESTS", "-p"])
        .arg(keys.join("release.pub"))
        .current_dir(&plugin)
        .output()
        .expect("the minisign command (Debian package `minisign`) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not trusted yet: verify says so and fails.
    let out = sigil.fails(&["plugin", "verify", s(&plugin)]);
    assert!(out.contains("not in the trust store"), "{out}");
    let out = sigil.ok(&["trust", "add", s(&keys.join("release.pub"))]);
    assert!(out.contains("trusting key `release`"), "{out}");
    let listed_keys = sigil.ok(&["trust", "list"]);
    assert!(listed_keys.starts_with("release "), "{listed_keys}");
    let out = sigil.ok(&["plugin", "verify", s(&plugin)]);
    assert!(
        out.contains("2 file(s) match SIGIL-DIGESTS, signed by trusted key `release`"),
        "{out}"
    );

    let out = sigil.ok(&["plugin", "install", s(&plugin), "--yes"]);
    assert!(
        out.contains("kv.read:echo.*") && out.contains("reads its own notes"),
        "{out}"
    );
    assert!(
        out.contains("trust: verified, signed by trusted key `release`"),
        "{out}"
    );
    let line = sigil.listed("echo");
    assert!(
        line.contains("running")
            && line.contains("verified")
            && line.contains("signed by trusted key `release`"),
        "{line}"
    );
    let status = sigil.ok(&["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.contains("echo") && l.contains("running") && l.contains("verified")),
        "{status}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&sigil.ok(&["plugin", "inspect", "echo", "--json"])).unwrap();
    assert_eq!(inspect["summary"]["trust"]["level"], "verified");
    assert_eq!(inspect["summary"]["trust"]["key"], "release");

    let audit = sigil.ok(&["audit", "export"]);
    let consent: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| {
            r["rule"]
                .as_str()
                .unwrap_or("")
                .starts_with("install consent")
        })
        .collect();
    assert_eq!(consent.len(), 1, "{audit}");
    let record = &consent[0];
    assert_eq!(record["plugin"], "echo");
    assert_eq!(record["actor"]["user"], "local");
    assert_eq!(record["actor"]["channel"], "cli");
    let rule = record["rule"].as_str().unwrap();
    assert!(
        rule.contains("kv.read:echo.*") && rule.contains("verified, signed by key `release`"),
        "{rule}"
    );
    sigil.ok(&["audit", "verify"]);

    // Tampering after install: one byte changed, then a file added. The plugin stops loading
    // and the error names the file.
    let installed = sigil.home.join("plugins/echo");
    let mut bytes = std::fs::read(installed.join("plugin.toml")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = b' ';
    std::fs::write(installed.join("plugin.toml"), &bytes).unwrap();
    let line = sigil.listed("echo");
    assert!(
        line.contains("error") && line.contains("plugin.toml was changed after signing"),
        "{line}"
    );
    let out = sigil.fails(&["tool", "invoke", "echo/echo", "--input", "{}"]);
    assert!(out.contains("echo"), "{out}");

    let mut restored = bytes.clone();
    restored[last] = b'\n';
    std::fs::write(installed.join("plugin.toml"), &restored).unwrap();
    assert!(sigil.listed("echo").contains("running"));
    std::fs::write(installed.join("sneaky.sh"), "#!/bin/sh\n").unwrap();
    let line = sigil.listed("echo");
    assert!(
        line.contains("error") && line.contains("sneaky.sh was added after signing"),
        "{line}"
    );
    let out = sigil.fails(&["plugin", "verify", s(&installed)]);
    assert!(out.contains("sneaky.sh was added after signing"), "{out}");

    // The key no longer trusted: the same files load, sandboxed.
    std::fs::remove_file(installed.join("sneaky.sh")).unwrap();
    sigil.ok(&["trust", "remove", "release"]);
    assert!(sigil.listed("echo").contains("sandboxed"));
}

#[test]
fn the_tier_policy_admits_a_process_plugin_only_once_it_is_signed() {
    sigil_bin();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sigil = Sigil {
        home: work.path().join("home"),
    };
    sigil.ok(&["trust", "list"]);
    let plugin = echo_plugin(&work.path().join("echo"));

    // Without a policy an unsigned plugin installs, sandboxed.
    let out = sigil.ok(&["plugin", "install", s(&plugin), "--yes"]);
    assert!(out.contains("trust: sandboxed"), "{out}");
    assert!(sigil.listed("echo").contains("sandboxed"));
    std::fs::remove_dir_all(sigil.home.join("plugins/echo")).unwrap();

    let config = std::fs::read_to_string(sigil.config()).unwrap();
    let strict = config.replace(
        "[trust]\n",
        "[trust]\nsandboxed_tiers = [\"wasm\", \"container\"]\n",
    );
    assert_ne!(strict, config);
    std::fs::write(sigil.config(), &strict).unwrap();

    let out = sigil.fails(&["plugin", "install", s(&plugin), "--yes"]);
    assert!(
        out.contains("tier `process` is not allowed for sandboxed")
            && out.contains("sandboxed_tiers")
            && out.contains("nothing was installed"),
        "{out}"
    );
    assert!(!sigil.home.join("plugins/echo").exists());

    // Signed by a key the operator does not trust: still sandboxed, still refused.
    let keys = work.path().join("keys");
    sigil.ok(&["trust", "keygen", "--out", s(&keys.join("other.key"))]);
    sigil.ok(&[
        "plugin",
        "sign",
        s(&plugin),
        "--key",
        s(&keys.join("other.key")),
    ]);
    let out = sigil.fails(&["plugin", "install", s(&plugin), "--yes"]);
    assert!(out.contains("not allowed for sandboxed"), "{out}");

    // Signed by a trusted key (an encrypted one): installs, runs and answers.
    let out = sigil.ok(&[
        "trust",
        "keygen",
        "--out",
        s(&keys.join("ops.key")),
        "--password-env",
        "TEST_KEY_PASSWORD",
    ]);
    assert!(out.contains("(encrypted)"), "{out}");
    let public = std::fs::read_to_string(keys.join("ops.pub")).unwrap();
    let line = public.lines().nth(1).unwrap();
    sigil.ok(&["trust", "add", line, "--name", "ops"]);
    let out = sigil.fails(&[
        "plugin",
        "sign",
        s(&plugin),
        "--key",
        s(&keys.join("ops.key")),
    ]);
    assert!(
        out.contains("ops.key") && out.contains("needs its password"),
        "{out}"
    );
    sigil.ok(&[
        "plugin",
        "sign",
        s(&plugin),
        "--key",
        s(&keys.join("ops.key")),
        "--password-env",
        "TEST_KEY_PASSWORD",
    ]);
    let out = sigil.ok(&["plugin", "install", s(&plugin), "--yes"]);
    assert!(out.contains("echo is running"), "{out}");
    assert!(sigil.listed("echo").contains("verified"));
    let out = sigil.ok(&[
        "tool",
        "invoke",
        "echo/echo",
        "--input",
        r#"{"said": "hi"}"#,
    ]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value, serde_json::json!({ "said": "hi" }));

    // A policy giving lower trust a tier higher trust lacks is refused when sigil.toml loads.
    let weaker = std::fs::read_to_string(sigil.config()).unwrap().replace(
        "sandboxed_tiers = [\"wasm\", \"container\"]\n",
        "sandboxed_tiers = [\"wasm\", \"process\", \"container\"]\nverified_tiers = [\"wasm\", \"container\"]\n",
    );
    std::fs::write(sigil.config(), &weaker).unwrap();
    let out = sigil.fails(&["plugin", "list"]);
    assert!(
        out.contains(
            "trust.sandboxed_tiers: allows `process`, which trust.verified_tiers does not"
        ),
        "{out}"
    );
}
