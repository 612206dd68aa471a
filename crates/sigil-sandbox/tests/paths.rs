//! Hostile paths never reach bubblewrap's argv.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{Dirs, sandbox};
use sigil_sandbox::{SandboxError, validate_path};

#[test]
fn hostile_paths_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    std::os::unix::fs::symlink("/", base.join("to-root")).unwrap();
    std::os::unix::fs::symlink("/proc/self", base.join("to-proc")).unwrap();
    std::os::unix::fs::symlink("/sys", base.join("to-sys")).unwrap();
    std::os::unix::fs::symlink("/dev/shm", base.join("to-dev")).unwrap();
    let b = base.display();
    let cases: Vec<(PathBuf, &str)> = vec![
        (PathBuf::new(), "empty"),
        ("relative/path".into(), "not absolute"),
        ("./here".into(), "not absolute"),
        ("/".into(), "root directory"),
        ("//".into(), "not normalised"),
        ("/..".into(), "`..`"),
        (format!("{b}/../../etc").into(), "`..`"),
        ("/tmp/../etc/shadow".into(), "`..`"),
        ("/tmp/./x".into(), "not normalised"),
        ("//tmp".into(), "not normalised"),
        ("/tmp/".into(), "not normalised"),
        ("/tmp//x".into(), "not normalised"),
        ("/proc".into(), "/proc"),
        ("/proc/1/root".into(), "/proc"),
        ("/sys".into(), "/sys"),
        ("/sys/fs/cgroup".into(), "/sys"),
        ("/dev".into(), "/dev"),
        ("/dev/shm".into(), "/dev"),
        ("/tmp/a\nb".into(), "control character"),
        ("/tmp/a\tb".into(), "control character"),
        ("/tmp/\u{1b}[31m".into(), "control character"),
        (
            PathBuf::from(OsStr::from_bytes(b"/tmp/a\0b")),
            "control character",
        ),
        (PathBuf::from(OsStr::from_bytes(b"/tmp/\xff")), "UTF-8"),
        (format!("{b}/does-not-exist").into(), "cannot be resolved"),
        (base.join("to-root"), "root directory"),
        (base.join("to-proc"), "/proc"),
        (base.join("to-sys"), "/sys"),
        (base.join("to-dev"), "/dev"),
    ];
    for (path, expected) in cases {
        match validate_path(&path) {
            Err(SandboxError::InvalidPath { reason, .. }) => {
                assert!(
                    reason.contains(expected),
                    "{path:?}: {reason:?} lacks {expected:?}"
                );
            }
            other => panic!("{path:?} was not rejected: {other:?}"),
        }
    }
}

#[test]
fn good_paths_come_back_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    std::fs::create_dir(base.join("data")).unwrap();
    std::os::unix::fs::symlink(base.join("data"), base.join("link")).unwrap();
    assert_eq!(
        validate_path(&base.join("data")).unwrap(),
        base.join("data")
    );
    assert_eq!(
        validate_path(&base.join("link")).unwrap(),
        base.join("data")
    );
    assert_eq!(
        validate_path(Path::new("/usr")).unwrap(),
        PathBuf::from("/usr")
    );
    // `/devices` is not below `/dev`.
    std::fs::create_dir(base.join("devices")).unwrap();
    assert!(validate_path(&base.join("devices")).is_ok());
}

/// A spec carrying a hostile path, name or program is refused before anything starts.
#[tokio::test]
async fn spawn_refuses_hostile_specs() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let grant = tempfile::tempdir().unwrap();
    let cases: Vec<(sigil_sandbox::Spec, &str)> = vec![
        (
            {
                let mut s = dirs.shell("true");
                s.read_only = vec!["/etc/../root".into()];
                s
            },
            "read_only[0]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.read_write = vec![grant.path().into(), "/".into()];
                s
            },
            "read_write[1]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.read_write = vec!["/proc/1/root".into()];
                s
            },
            "read_write[0]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.read_only = vec!["/tmp".into()];
                s
            },
            "read_only[0]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.read_only = vec![dirs.sockets.path().into(), "/run".into()];
                s
            },
            "read_only[1]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.plugin_dir = "plugins/x".into();
                s
            },
            "plugin_dir",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.socket_dir = "/sys/fs".into();
                s
            },
            "socket_dir",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.plugin_dir = dirs.plugin.path().join("plugin.txt").into();
                s
            },
            "plugin_dir",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.program = "../bin/sh".into();
                s
            },
            "program",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.program = "/bin/../bin/sh".into();
                s
            },
            "program",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.env = vec![("A=B".into(), "x".into())];
                s
            },
            "env[0]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.env = vec![("OK".into(), "a\0b".into())];
                s
            },
            "env[0]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.args.push("a\0b".into());
                s
            },
            "args[2]",
        ),
        (
            {
                let mut s = dirs.shell("true");
                s.egress_port = Some(0);
                s
            },
            "egress_port",
        ),
    ];
    for (spec, field) in cases {
        match sandbox.spawn(&spec) {
            Err(SandboxError::InvalidSpec { field: got, .. }) => assert_eq!(got, field, "{spec:?}"),
            other => panic!("{spec:?} was not refused: {other:?}"),
        }
    }
    common::assert_next_sandbox_works(&sandbox).await;
}

#[test]
fn a_missing_entrypoint_says_how_to_build_it() {
    let err = sigil_sandbox::Sandbox::with_init("/nonexistent/sigil-sandbox-init").unwrap_err();
    assert!(matches!(err, SandboxError::InitNotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/sigil-sandbox-init"),
        "{message}"
    );
    assert!(
        message.contains("cargo build -p sigil-sandbox --bin sigil-sandbox-init"),
        "{message}"
    );
}
