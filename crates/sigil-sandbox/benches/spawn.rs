//! Sandboxed spawn of `/bin/true` against bubblewrap's own start, in the same run.
//!
//! `bwrap_bare` is bubblewrap with the same namespaces and a minimal filesystem, nothing more;
//! `sigil_sandbox` adds the full filesystem layout, `sigil-sandbox-init` (rlimits, Landlock,
//! seccomp) and its exec; `sigil_sandbox_limits` adds per-sandbox cgroups (memory and pids)
//! and the join step. Each iteration spawns, then waits for the exit (and, for the sandbox,
//! `kill`, which reaps and removes the cgroups).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sigil_sandbox::{Limits, Sandbox, Spec};

const BARE: &[&str] = &[
    "--unshare-all",
    "--unshare-user",
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--cap-drop",
    "ALL",
    "--new-session",
    "--die-with-parent",
    "--clearenv",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "/bin/true",
];

fn spawn(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::with_init(env!("CARGO_BIN_EXE_sigil-sandbox-init"))
        .unwrap_or_else(|e| panic!("the spawn bench needs bubblewrap: {e}"));
    let plugin = tempfile::tempdir().unwrap();
    let sockets = tempfile::tempdir().unwrap();
    let spec = Spec {
        program: "/bin/true".into(),
        args: Vec::new(),
        plugin_dir: plugin.path().into(),
        socket_dir: sockets.path().to_path_buf(),
        read_only: Vec::new(),
        read_write: Vec::new(),
        env: Vec::new(),
        limits: Limits::default(),
        egress_port: None,
    };
    let limited = Spec {
        limits: Limits {
            memory_bytes: Some(256 << 20),
            processes: Some(16),
            open_files: Some(256),
            cpu_seconds: Some(10),
        },
        ..spec.clone()
    };

    let bare = || async {
        let status = tokio::process::Command::new(sandbox.bwrap())
            .args(BARE)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    };
    let sandboxed = |spec: &Spec| {
        let mut sandboxed = sandbox.spawn(spec).unwrap();
        async move {
            let status = sandboxed.child().wait().await.unwrap();
            assert!(status.success());
            sandboxed.kill().await;
        }
    };

    let (bare, sandboxed, spec, limited) = (&bare, &sandboxed, &spec, &limited);

    // On a shared machine the load drifts between benchmark functions, so every iteration runs
    // the baseline and the candidate back to back and each function keeps only its own time:
    // both see the same conditions.
    let mut group = c.benchmark_group("spawn_true");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("bwrap_bare", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut own = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                bare().await;
                own += start.elapsed();
                sandboxed(spec).await;
            }
            own
        });
    });
    group.bench_function("sigil_sandbox", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut own = Duration::ZERO;
            for _ in 0..iters {
                bare().await;
                let start = Instant::now();
                sandboxed(spec).await;
                own += start.elapsed();
            }
            own
        });
    });
    group.bench_function("sigil_sandbox_limits", |b| {
        b.to_async(&runtime).iter_custom(|iters| async move {
            let mut own = Duration::ZERO;
            for _ in 0..iters {
                bare().await;
                let start = Instant::now();
                sandboxed(limited).await;
                own += start.elapsed();
            }
            own
        });
    });
    group.finish();
}

criterion_group!(benches, spawn);
criterion_main!(benches);
