//! bubblewrap's argv: the namespaces and the filesystem a sandbox sees.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::init::INIT_PATH;

/// The sandbox's user and group: `nobody`.
pub(crate) const SANDBOX_ID: &str = "65534";

/// Flags every sandbox gets. Each is a wall; none may be dropped (as root, without
/// `--unshare-user` and `--cap-drop ALL` the child would keep every capability).
const ISOLATION: &[&str] = &[
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--uid",
    SANDBOX_ID,
    "--gid",
    SANDBOX_ID,
    "--cap-drop",
    "ALL",
    "--new-session",
    "--die-with-parent",
    "--clearenv",
    "--hostname",
    "sigil",
];

/// Top-level system directories bound read-only when they are real directories, or recreated
/// as the same symlink when they point into `/usr` (merged-/usr systems).
const SYSTEM_TREES: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The only files of the host's `/etc` a sandbox sees: the dynamic loader's cache and the
/// alternatives links that some `/usr/bin` entries point through. No passwd, no resolv.conf.
const ETC_FILES: &[&str] = &["/etc/ld.so.cache", "/etc/alternatives"];

/// One piece of the system part of the filesystem.
#[derive(Debug, Clone)]
enum SystemEntry {
    ReadOnly(PathBuf),
    Symlink { target: PathBuf, at: PathBuf },
}

/// What of the host's system trees exists here, found once.
#[derive(Debug, Clone)]
pub(crate) struct HostLayout {
    entries: Vec<SystemEntry>,
}

impl HostLayout {
    pub(crate) fn detect() -> Self {
        let mut entries = vec![SystemEntry::ReadOnly(PathBuf::from("/usr"))];
        for tree in SYSTEM_TREES {
            let path = Path::new(tree);
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if meta.file_type().is_symlink() {
                // Recreate the link only when it leads into /usr; anything else is left out.
                let (Ok(target), Ok(resolved)) = (std::fs::read_link(path), path.canonicalize())
                else {
                    continue;
                };
                if crate::path::is_at_or_below(&resolved.to_string_lossy(), "/usr") {
                    entries.push(SystemEntry::Symlink {
                        target,
                        at: path.to_path_buf(),
                    });
                }
            } else if meta.is_dir() {
                entries.push(SystemEntry::ReadOnly(path.to_path_buf()));
            }
        }
        for file in ETC_FILES {
            if Path::new(file).exists() {
                entries.push(SystemEntry::ReadOnly(PathBuf::from(file)));
            }
        }
        Self { entries }
    }
}

/// Builder for one bubblewrap command line.
#[derive(Debug, Default)]
pub(crate) struct Argv {
    args: Vec<OsString>,
}

impl Argv {
    /// Isolation flags, the system trees, a new `/proc`, a minimal `/dev`, a private `/tmp`
    /// (of at most `tmp_bytes` when given), and the entrypoint at [`INIT_PATH`].
    pub(crate) fn new(layout: &HostLayout, init: &Path, tmp_bytes: Option<u64>) -> Self {
        let mut argv = Self::default();
        argv.extend(ISOLATION.iter().copied());
        for entry in &layout.entries {
            match entry {
                SystemEntry::ReadOnly(path) => argv.ro_bind(path, path),
                SystemEntry::Symlink { target, at } => {
                    argv.push("--symlink");
                    argv.push(target);
                    argv.push(at);
                }
            }
        }
        argv.extend(["--proc", "/proc", "--dev", "/dev"]);
        if let Some(bytes) = tmp_bytes {
            argv.push("--size");
            argv.push(bytes.to_string());
        }
        argv.extend(["--tmpfs", "/tmp"]);
        argv.ro_bind(init, Path::new(INIT_PATH));
        argv
    }

    pub(crate) fn push(&mut self, arg: impl Into<OsString>) {
        self.args.push(arg.into());
    }

    pub(crate) fn extend<I: IntoIterator<Item = S>, S: Into<OsString>>(&mut self, args: I) {
        self.args.extend(args.into_iter().map(Into::into));
    }

    pub(crate) fn ro_bind(&mut self, host: &Path, inside: &Path) {
        self.push("--ro-bind");
        self.push(host);
        self.push(inside);
    }

    pub(crate) fn bind(&mut self, host: &Path, inside: &Path) {
        self.push("--bind");
        self.push(host);
        self.push(inside);
    }

    /// Binds the directory open as `fd` (which bubblewrap must inherit) read-only at `inside`.
    pub(crate) fn ro_bind_fd(&mut self, fd: std::os::fd::RawFd, inside: &Path) {
        self.push("--ro-bind-fd");
        self.push(fd.to_string());
        self.push(inside);
    }

    /// Binds the directory open as `fd` (which bubblewrap must inherit) read-write at `inside`.
    pub(crate) fn bind_fd(&mut self, fd: std::os::fd::RawFd, inside: &Path) {
        self.push("--bind-fd");
        self.push(fd.to_string());
        self.push(inside);
    }

    pub(crate) fn setenv(&mut self, name: &str, value: &str) {
        self.extend(["--setenv", name, value]);
    }

    /// Ends bubblewrap's options: the root becomes read-only, then the command follows.
    pub(crate) fn finish(mut self, command: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
        self.extend(["--remount-ro", "/", "--"]);
        self.args.extend(command);
        self.args
    }
}
