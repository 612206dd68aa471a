//! Sigil's data directory is private to its user whatever the umask: the real `sigil` binary,
//! run from a shell with `umask 022` as an operator's login shell has it, creates every
//! directory `0700` and every file `0600` (an executable plugin file `0700`); `sigil doctor`
//! names what an operator widened, and an existing data directory open to others is narrowed
//! when Sigil opens it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ECHO_MANIFEST: &str = r#"
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

/// This build's `sigil`, hard-linked into a directory of its own: the process tier uses the
/// binary itself as its sandbox entrypoint, and a later build does not change it under test.
fn sigil_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("modes-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("sigil");
        if !bin.exists() {
            std::fs::hard_link(env!("CARGO_BIN_EXE_sigil"), &bin).unwrap();
        }
        bin
    })
}

/// A shell command line run with `umask 022`, `$SIGIL` naming the binary.
fn shell(home: &Path, script: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask 022; {script}"))
        .env("SIGIL", sigil_bin())
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_LOG")
        .env_remove("SIGIL_TOKEN")
        .env_remove("SIGIL_SANDBOX_INIT");
    command
}

fn ok(home: &Path, script: &str) -> Output {
    let out = shell(home, script).output().unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Every path under `root`, `root` included, with its mode.
fn walk(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        found.push((path.clone(), metadata.permissions().mode() & 0o7777));
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found
}

fn assert_private(root: &Path, when: &str) {
    let wide: Vec<String> = walk(root)
        .into_iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{} {mode:o}", path.display()))
        .collect();
    assert!(wide.is_empty(), "{when}: open to other users: {wide:#?}");
}

#[test]
fn every_path_sigil_creates_in_its_data_directory_is_private_whatever_the_umask() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // The data directory does not exist yet: sigil creates it, and its parent.
    let home = work.path().join("data").join("sigil");
    let keys = work.path().join("keys");
    let plugin = work.path().join("echo");
    std::fs::create_dir_all(&plugin).unwrap();
    let fixtures = sigil_process_guests::build().unwrap();
    std::fs::copy(&fixtures.echo, plugin.join("plugin")).unwrap();
    std::fs::write(plugin.join("plugin.toml"), ECHO_MANIFEST).unwrap();
    std::fs::set_permissions(
        plugin.join("plugin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        plugin.join("plugin.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    // What an operator does on a first day: every command that writes into the data directory.
    let steps = [
        "\"$SIGIL\" status".to_string(),
        "\"$SIGIL\" tool invoke text/sha256 --input '{\"text\":\"hello\"}'".to_string(),
        "\"$SIGIL\" token create --user local".to_string(),
        "\"$SIGIL\" plugin disable text && \"$SIGIL\" plugin enable text".to_string(),
        format!(
            "\"$SIGIL\" trust keygen --out '{0}/release.key' && \"$SIGIL\" trust add '{0}/release.pub'",
            keys.display()
        ),
        format!("\"$SIGIL\" plugin install '{}' --yes", plugin.display()),
        "\"$SIGIL\" tool invoke echo/echo --input '{\"said\":\"hi\"}'".to_string(),
        "\"$SIGIL\" audit verify".to_string(),
    ];
    for step in &steps {
        ok(&home, step);
        assert_private(&home, step);
    }
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("sigil.toml")), 0o600);
    assert_eq!(mode(&home.join("sigil.db")), 0o600);
    assert_eq!(mode(&home.join("state/disabled.json")), 0o600);
    // The plugin's executable keeps its owner's execute bit, and only that.
    assert_eq!(mode(&home.join("plugins/echo/plugin")), 0o700);
    assert_eq!(mode(&home.join("plugins/echo/plugin.toml")), 0o600);

    // The daemon: daemon.json, and the database's -wal and -shm files while it runs.
    let mut daemon = shell(&home, "exec \"$SIGIL\" serve --listen 127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let address = first
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in `{first}`"))
        .trim()
        .to_string();
    // Serving (and so listening for SIGTERM) once it answers.
    let mut health = std::net::TcpStream::connect(&address).unwrap();
    write!(
        health,
        "GET /health HTTP/1.1\r\nHost: sigil\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    health.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let running = walk(&home);
    for name in ["daemon.json", "sigil.db-wal", "sigil.db-shm"] {
        assert!(
            running.iter().any(|(path, _)| path == &home.join(name)),
            "no {name} while the daemon runs"
        );
    }
    assert_private(&home, "while the daemon runs");
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(daemon.wait().unwrap().success());
    assert_private(&home, "after the daemon stopped");
}

#[test]
fn doctor_names_each_path_open_to_others_and_an_open_data_directory_is_narrowed() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("sigil");
    ok(
        &home,
        "\"$SIGIL\" tool invoke text/sha256 --input '{\"text\":\"x\"}'",
    );
    let out = ok(&home, "\"$SIGIL\" doctor");
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("file modes")),
        "{report}"
    );

    let config = home.join("sigil.toml");
    let database = home.join("sigil.db");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o660)).unwrap();
    let out = ok(&home, "\"$SIGIL\" doctor");
    let report = String::from_utf8(out.stdout).unwrap();
    let line = report
        .lines()
        .find(|l| l.contains("file modes"))
        .unwrap_or_else(|| panic!("no file modes check:\n{report}"));
    assert!(line.starts_with("warn"), "{line}");
    assert!(
        line.contains(&format!("{} is 644", config.display()))
            && line.contains(&format!("{} is 660", database.display())),
        "{line}"
    );
    // A warning, not a failure: doctor still passes, and sigil leaves the files to the operator.
    assert_eq!(mode(&config), 0o644);

    // A data directory opened up is narrowed again the next time sigil opens it, with a
    // warning naming it.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = ok(&home, "\"$SIGIL\" status");
    let warning = String::from_utf8(out.stderr).unwrap();
    assert!(
        warning.contains("mode 755") && warning.contains("narrowed it to 700"),
        "{warning}"
    );
    assert_eq!(mode(&home), 0o700);
}
