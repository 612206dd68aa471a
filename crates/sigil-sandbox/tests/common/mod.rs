//! Shared helpers: a real sandbox, specs, and collecting a finished sandbox's output.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::ExitStatus;

use sigil_sandbox::{Limits, Sandbox, Sandboxed, Spec};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

/// The Debian interpreter inside /usr (the one on PATH here may live under /root).
pub const PYTHON: &str = "/usr/bin/python3";

/// A sandbox with this crate's entrypoint. Fails, saying what to install, when bubblewrap is
/// missing or cannot run here.
pub fn sandbox() -> Sandbox {
    Sandbox::with_init(env!("CARGO_BIN_EXE_sigil-sandbox-init")).unwrap_or_else(|e| {
        panic!("the sandbox tests need bubblewrap (run scripts/install-sandbox-tools): {e}")
    })
}

/// A plugin directory and a socket directory on the host.
pub struct Dirs {
    pub plugin: TempDir,
    pub sockets: TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        let plugin = tempfile::tempdir().unwrap();
        std::fs::write(plugin.path().join("plugin.txt"), "plugin file\n").unwrap();
        Dirs {
            plugin,
            sockets: tempfile::tempdir().unwrap(),
        }
    }

    pub fn spec(&self, program: &str, args: &[&str]) -> Spec {
        Spec {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            plugin_dir: self.plugin.path().into(),
            socket_dir: self.sockets.path().to_path_buf(),
            read_only: Vec::new(),
            read_write: Vec::new(),
            env: Vec::new(),
            limits: Limits::default(),
            egress_port: None,
        }
    }

    pub fn python(&self, script: &str) -> Spec {
        self.spec(PYTHON, &["-c", script])
    }

    pub fn shell(&self, script: &str) -> Spec {
        self.spec("/bin/sh", &["-c", script])
    }
}

/// What a sandbox left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Waits for the sandbox to end and collects its output.
pub async fn finish(mut sandboxed: Sandboxed) -> Finished {
    let child = sandboxed.child();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
    a.unwrap();
    b.unwrap();
    let status = sandboxed.child().wait().await.unwrap();
    Finished {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// Spawns `spec` and waits for it.
pub async fn run(sandbox: &Sandbox, spec: &Spec) -> Finished {
    finish(sandbox.spawn(spec).unwrap()).await
}

/// After a hostile attempt: a fresh sandbox still starts, runs and reports.
pub async fn assert_next_sandbox_works(sandbox: &Sandbox) {
    let dirs = Dirs::new();
    let done = run(sandbox, &dirs.shell("cat /plugin/plugin.txt; echo next-ok")).await;
    assert!(done.status.success(), "next sandbox failed: {done:?}");
    assert_eq!(done.stdout, "plugin file\nnext-ok\n", "{done:?}");
}

/// Whether a host pid still runs (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_owned));
            !matches!(state.as_deref(), Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// Every host pid the sandbox contains, found through its public `contains_pid`.
pub fn members(sandboxed: &Sandboxed) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| sandboxed.contains_pid(pid))
        .collect()
}

/// The command name of a host pid.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
