//! The sandbox Sigil's process tier runs plugins in.
//!
//! ```no_run
//! use sigil_sandbox::{Limits, Sandbox, Spec};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::detect()?; // finds bwrap and sigil-sandbox-init, probes the kernel
//! let spec = Spec {
//!     program: "/usr/bin/python3".into(),
//!     args: vec!["/plugin/main.py".into()],
//!     plugin_dir: "/var/lib/sigil/plugins/weather".into(), // or a directory held open
//!     socket_dir: "/run/user/1000/sigil/weather".into(),
//!     read_only: vec![],
//!     read_write: vec![],
//!     env: vec![("SIGIL_SOCKET".into(), "/run/sigil/plugin.sock".into())],
//!     limits: Limits { memory_bytes: Some(512 << 20), processes: Some(32), ..Limits::default() },
//!     egress_port: None,
//! };
//! let mut plugin = sandbox.spawn(&spec)?;
//! let status = plugin.child().wait().await?;
//! # let _ = status;
//! # Ok(())
//! # }
//! ```
//!
//! # The walls
//!
//! Each sandbox is a fresh bubblewrap instance (`bwrap`, Debian package `bubblewrap`) with
//! every namespace unshared (user, mount, pid, network, ipc, uts, cgroup), running as uid and
//! gid 65534 with no capabilities, no-new-privileges, a new session, no further user
//! namespaces, and no host environment. Its filesystem is built from nothing: `/usr` and the
//! top-level system trees read-only, two files of `/etc`, a new `/proc`, a minimal `/dev`, a
//! private tmpfs at `/tmp`, the plugin at `/plugin` (read-only, the working directory), the
//! socket directory at `/run/sigil` (read-write), the granted paths, and nothing else; the
//! root itself is read-only. A directory the caller holds open ([`HostDir::Held`]) is bound by
//! its handle (bubblewrap's `--bind-fd`), so the sandbox gets that directory even if its path
//! has since been replaced, by a symbolic link say.
//!
//! Inside, `sigil-sandbox-init` adds rlimits, Landlock rules matching the binds, and a seccomp
//! filter before it execs the plugin; on the host, cgroup v1 groups limit processes and
//! memory where the hierarchies exist. `docs/sandbox.md` lists every wall and default.
//!
//! A sandbox dies with its host: bubblewrap is started with `--die-with-parent`, and each
//! process inside asks for `SIGKILL` when its parent dies.
// One reviewed exception: choosing the descriptors bubblewrap inherits (`pass_only`).
#![deny(unsafe_code)]

mod cgroup;
mod error;
#[doc(hidden)]
pub mod init;
mod layout;
mod path;
mod procfs;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use error::SandboxError;
pub use path::validate_path;

use init::INIT_PATH;
use init::config::RunConfig;
use layout::{Argv, HostLayout};

/// Where the plugin directory is bound inside a sandbox (read-only; the working directory).
pub const PLUGIN_DIR: &str = "/plugin";
/// Where the socket directory is bound inside a sandbox (read-write).
pub const SOCKET_DIR: &str = "/run/sigil";
/// The `PATH` inside a sandbox.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The environment variable naming the entrypoint binary, consulted by [`Sandbox::detect`].
pub const INIT_ENV: &str = "SIGIL_SANDBOX_INIT";
/// The entrypoint binary's file name.
pub const INIT_NAME: &str = "sigil-sandbox-init";

/// Paths inside the sandbox where a grant may not be bound, at or below: the sandbox's own
/// mounts live there.
const RESERVED_TREES: &[&str] = &[PLUGIN_DIR, SOCKET_DIR, INIT_PATH];
/// Paths a grant may not be exactly: binding them would hide the sandbox's own mounts (grants
/// below them are fine).
const RESERVED_EXACT: &[&str] = &["/tmp", "/run"];

/// How long [`Sandboxed::kill`] waits for the sandbox's processes to disappear after
/// `SIGKILL` before it stops waiting (they are still killed; only the cgroup cleanup is left to
/// a background thread).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A way to start sandboxes on this machine: the `bwrap` and entrypoint found, the host's
/// system layout, and the cgroup hierarchies available. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    init: PathBuf,
    layout: HostLayout,
    cgroups: cgroup::Roots,
    landlock: String,
}

/// A host directory given to a sandbox.
#[derive(Debug, Clone)]
pub enum HostDir {
    /// Named by path: checked with [`validate_path`] and resolved at every spawn, then bound
    /// at its canonical path.
    Path(PathBuf),
    /// Held open by the caller (an `O_PATH` descriptor is enough) and bound by that handle:
    /// the sandbox gets exactly this directory, whatever its path names by the time of the
    /// spawn. `path` is where the directory was when it was opened; a grant is bound there
    /// inside the sandbox, so it must pass [`validate_path`]'s rules that need no file system
    /// (absolute, normalised, not `/`, `/proc`, `/sys` or `/dev`).
    Held {
        /// The open directory.
        fd: Arc<OwnedFd>,
        /// Its path when opened.
        path: PathBuf,
    },
}

impl From<PathBuf> for HostDir {
    fn from(path: PathBuf) -> HostDir {
        HostDir::Path(path)
    }
}

impl From<&Path> for HostDir {
    fn from(path: &Path) -> HostDir {
        HostDir::Path(path.to_path_buf())
    }
}

impl From<&str> for HostDir {
    fn from(path: &str) -> HostDir {
        HostDir::Path(PathBuf::from(path))
    }
}

/// What to run in a sandbox and what it may reach. Every host path is checked with
/// [`validate_path`] when the sandbox is spawned; every held directory's path with the same
/// rules but for resolving it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program, as a path inside the sandbox (e.g. `/plugin/main` or `/usr/bin/python3`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Host directory bound read-only at `/plugin`, the working directory.
    pub plugin_dir: HostDir,
    /// Host directory bound read-write at `/run/sigil`; the gRPC sockets live here.
    pub socket_dir: PathBuf,
    /// Host directories bound read-only at the same path (`fs.read` grants, interpreter
    /// prefixes).
    pub read_only: Vec<HostDir>,
    /// Host directories bound read-write at the same path (`fs.write` grants).
    pub read_write: Vec<HostDir>,
    /// The only environment inside, plus `PATH`, `HOME=/tmp`, `TMPDIR=/tmp` and
    /// `LANG=C.UTF-8`, which the sandbox sets first (an entry here with the same name wins).
    pub env: Vec<(String, String)>,
    /// Resource limits; `None` fields are not limited by the sandbox.
    pub limits: Limits,
    /// If set: inside the sandbox, `127.0.0.1:<port>` forwards each TCP connection to the
    /// Unix socket `/run/sigil/egress.sock` (the host's egress proxy), and `HTTP_PROXY`,
    /// `HTTPS_PROXY`, `http_proxy`, `https_proxy` point at `http://127.0.0.1:<port>`.
    /// Otherwise the sandbox has no network at all (loopback only, and no IP sockets).
    pub egress_port: Option<u16>,
}

/// Resource limits of one sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Address space of each process (`RLIMIT_AS`), and the memory of the whole sandbox (cgroup
    /// v1 `memory.limit_in_bytes`, swap included where accounted) where available. Also caps
    /// the size of `/tmp`.
    pub memory_bytes: Option<u64>,
    /// Processes and threads of the plugin (cgroup v1 `pids.max`, where available). The egress
    /// forwarder counts too: one, plus two per open connection.
    pub processes: Option<u32>,
    /// Open files per process (`RLIMIT_NOFILE`; never above the host's hard limit).
    pub open_files: Option<u64>,
    /// CPU seconds per process (`RLIMIT_CPU`: `SIGXCPU`, then `SIGKILL` a second later).
    pub cpu_seconds: Option<u64>,
}

/// A running sandbox. Dropping it kills everything in it.
#[derive(Debug)]
pub struct Sandboxed {
    child: tokio::process::Child,
    groups: cgroup::Groups,
    killed: bool,
}

impl Sandbox {
    /// Finds `bwrap` on `PATH` and the `sigil-sandbox-init` binary (`$SIGIL_SANDBOX_INIT` if
    /// set, else next to the current executable or one directory up, where Cargo puts binaries
    /// beside test executables), then starts one empty sandbox to check that user namespaces
    /// and the entrypoint work. Blocks for that one sandbox's start (milliseconds); also
    /// removes cgroups left behind by hosts that died.
    ///
    /// # Errors
    ///
    /// [`SandboxError::BwrapNotFound`] or [`SandboxError::InitNotFound`] saying what to install
    /// or build, [`SandboxError::Unavailable`] when the probe sandbox fails.
    pub fn detect() -> Result<Sandbox, SandboxError> {
        if let Some(path) = std::env::var_os(INIT_ENV) {
            let path = PathBuf::from(path);
            if path.is_file() {
                return Self::with_init(path);
            }
            // An explicit setting that is wrong is an error, not a reason to look elsewhere.
            return Err(SandboxError::InitNotFound {
                tried: format!("${INIT_ENV}={}", path.display()),
            });
        }
        let mut tried = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            let mut dir = exe.parent();
            for _ in 0..2 {
                let Some(d) = dir else { break };
                let candidate = d.join(INIT_NAME);
                if candidate.is_file() {
                    return Self::with_init(candidate);
                }
                tried.push(candidate.display().to_string());
                dir = d.parent();
            }
            // A program that carries the entrypoint (see `init::dispatch`) serves as its own.
            if init::self_entrypoint() {
                return Self::with_init(exe);
            }
        }
        Err(SandboxError::InitNotFound {
            tried: tried.join(", "),
        })
    }

    /// Like [`detect`](Self::detect), with an explicit entrypoint binary.
    ///
    /// # Errors
    ///
    /// As for [`detect`](Self::detect).
    pub fn with_init(init: impl Into<PathBuf>) -> Result<Sandbox, SandboxError> {
        let init = init.into();
        let init = std::fs::canonicalize(&init).map_err(|_| SandboxError::InitNotFound {
            tried: init.display().to_string(),
        })?;
        let bwrap = find_bwrap()?;
        let mut sandbox = Sandbox {
            bwrap,
            init,
            layout: HostLayout::detect(),
            cgroups: cgroup::Roots::detect(),
            landlock: String::new(),
        };
        sandbox.landlock = sandbox.probe()?;
        if sandbox.landlock != "FullyEnforced" {
            tracing::warn!(
                landlock = %sandbox.landlock,
                "this kernel does not fully enforce Landlock ABI v7: the sandbox's Landlock \
                 rules are partial or absent (bubblewrap, seccomp and limits still apply)"
            );
        }
        tracing::debug!(
            bwrap = %sandbox.bwrap.display(),
            init = %sandbox.init.display(),
            cgroups = %sandbox.cgroups.describe(),
            "sandbox ready"
        );
        Ok(sandbox)
    }

    /// The `bwrap` this sandbox uses.
    #[must_use]
    pub fn bwrap(&self) -> &Path {
        &self.bwrap
    }

    /// The entrypoint binary bound into each sandbox.
    #[must_use]
    pub fn init(&self) -> &Path {
        &self.init
    }

    /// How the kernel enforced the probe's Landlock rules: `FullyEnforced`,
    /// `PartiallyEnforced` or `NotEnforced`.
    #[must_use]
    pub fn landlock_status(&self) -> &str {
        &self.landlock
    }

    fn probe(&self) -> Result<String, SandboxError> {
        let argv = Argv::new(&self.layout, &self.init, None)
            .finish([OsString::from(INIT_PATH), OsString::from("probe")]);
        let unavailable = |reason: String| SandboxError::Unavailable {
            bwrap: self.bwrap.clone(),
            reason,
        };
        let output = std::process::Command::new(&self.bwrap)
            .args(&argv)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| unavailable(format!("running it failed: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(unavailable(format!(
                "the probe sandbox exited with {}: {}",
                output.status,
                stderr.trim()
            )));
        }
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("landlock="))
            .map(str::to_owned)
            .ok_or_else(|| {
                unavailable(format!(
                    "the probe sandbox did not report (stdout {:?}, stderr {:?})",
                    stdout.trim(),
                    stderr.trim()
                ))
            })
    }

    /// Starts `spec.program` inside a fresh sandbox with stdin, stdout and stderr piped (drop
    /// the child's stdin to give the program an empty input).
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`SandboxError::InvalidSpec`] for a path that fails [`validate_path`] or collides with
    /// the sandbox's own mounts, a bad environment entry, or an unusable program path;
    /// [`SandboxError::Spawn`] when the process cannot be started. A failure inside the
    /// sandbox before the plugin runs shows as exit status 125 with a message on stderr.
    ///
    /// # Security
    ///
    /// Call it from a thread that outlives the sandbox (a runtime worker, not
    /// `spawn_blocking`): bubblewrap's `--die-with-parent` is tied to the thread that started
    /// it, and kills the sandbox when that thread exits.
    pub fn spawn(&self, spec: &Spec) -> Result<Sandboxed, SandboxError> {
        let plan = Plan::new(spec)?;
        let groups = self.cgroups.create(&spec.limits);
        let mut argv = Argv::new(&self.layout, &self.init, spec.limits.memory_bytes);
        plan.plugin_dir
            .bind(&mut argv, Path::new(PLUGIN_DIR), Access::ReadOnly);
        argv.bind(&plan.socket_dir, Path::new(SOCKET_DIR));
        for grant in &plan.grants {
            grant.source.bind(&mut argv, &grant.inside, grant.access);
        }
        argv.extend(["--chdir", PLUGIN_DIR]);
        argv.setenv("PATH", SANDBOX_PATH);
        argv.setenv("HOME", "/tmp");
        argv.setenv("TMPDIR", "/tmp");
        argv.setenv("LANG", "C.UTF-8");
        for (name, value) in &spec.env {
            argv.setenv(name, value);
        }
        if let Some(port) = spec.egress_port {
            let proxy = format!("http://127.0.0.1:{port}");
            for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                argv.setenv(name, &proxy);
            }
        }
        let run = RunConfig {
            memory_bytes: spec.limits.memory_bytes,
            open_files: spec.limits.open_files,
            cpu_seconds: spec.limits.cpu_seconds,
            read_only: plan.inside_read_only(),
            read_write: plan.inside_read_write(),
            egress_port: spec.egress_port,
            program: spec.program.clone(),
            args: spec.args.iter().map(OsString::from).collect(),
        };
        let mut command_line = vec![OsString::from(INIT_PATH)];
        command_line.extend(run.to_args());
        let argv = argv.finish(command_line);

        // With cgroups, the entrypoint first joins them on the host and then becomes bwrap, so
        // the pid of the child is bwrap's either way.
        let mut command = if groups.is_empty() {
            let mut c = tokio::process::Command::new(&self.bwrap);
            c.args(&argv);
            c
        } else {
            let mut c = tokio::process::Command::new(&self.init);
            // The entrypoint may be a program that carries it (`init::dispatch`), which tells
            // by its name which part to play.
            c.arg0(INIT_NAME);
            c.args(init::config::join_args(
                groups.dirs(),
                self.bwrap.as_os_str(),
            ));
            c.args(&argv);
            c
        };
        pass_only(&mut command, plan.fds());
        command
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| SandboxError::Spawn {
            bwrap: self.bwrap.clone(),
            source,
        });
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let mut groups = groups;
                groups.remove();
                return Err(e);
            }
        };
        tracing::debug!(pid = child.id(), program = %spec.program.display(), "sandbox started");
        Ok(Sandboxed {
            child,
            groups,
            killed: false,
        })
    }
}

/// Passes the sandbox's first process exactly `fds` beyond its standard streams: every other
/// descriptor, including any the host itself inherited without close-on-exec, is closed at the
/// exec, and `fds` (held directories, for bubblewrap's `--bind-fd`) stay open. bubblewrap
/// closes each of those once it has mounted it, so no handle of the host's reaches the plugin.
#[allow(unsafe_code)]
fn pass_only(command: &mut tokio::process::Command, fds: Vec<RawFd>) {
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes two raw system calls, close_range(2) and fcntl(2), allocates
    // nothing (the list was built before the fork) and touches no lock. It closes nothing: it
    // sets or clears close-on-exec flags in the child's own descriptor table. Each descriptor
    // in `fds` is open in the child, since `Plan` holds it open in the parent until `spawn`
    // returns.
    unsafe {
        command.pre_exec(move || {
            let all_but_stdio = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if all_but_stdio == -1 {
                return Err(std::io::Error::last_os_error());
            }
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn find_bwrap() -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| SandboxError::BwrapNotFound {
            path: path.to_string_lossy().into_owned(),
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadOnly,
    ReadWrite,
}

/// Where a bound directory comes from: a canonical path, or a handle.
#[derive(Debug)]
enum Source {
    Path(PathBuf),
    Fd(Arc<OwnedFd>),
}

impl Source {
    fn bind(&self, argv: &mut Argv, inside: &Path, access: Access) {
        match (self, access) {
            (Source::Path(path), Access::ReadOnly) => argv.ro_bind(path, inside),
            (Source::Path(path), Access::ReadWrite) => argv.bind(path, inside),
            (Source::Fd(fd), Access::ReadOnly) => argv.ro_bind_fd(fd.as_raw_fd(), inside),
            (Source::Fd(fd), Access::ReadWrite) => argv.bind_fd(fd.as_raw_fd(), inside),
        }
    }
}

/// One granted directory: where it comes from, where it goes inside, and how.
#[derive(Debug)]
struct Mount {
    source: Source,
    inside: PathBuf,
    access: Access,
}

/// A spec with every host path validated and canonical, every held directory checked, grants
/// in mount order.
#[derive(Debug)]
struct Plan {
    plugin_dir: Source,
    socket_dir: PathBuf,
    grants: Vec<Mount>,
}

/// Checks one directory of a spec: a path is validated and resolved; a held directory's path
/// must pass the same rules without resolving, and its handle must be a directory.
fn plan_dir(dir: &HostDir, field: &str) -> Result<(Source, PathBuf), SandboxError> {
    let field_error = |e: SandboxError| SandboxError::InvalidSpec {
        field: field.to_string(),
        reason: e.to_string(),
    };
    match dir {
        HostDir::Path(raw) => {
            let path = validate_path(raw).map_err(field_error)?;
            Ok((Source::Path(path.clone()), path))
        }
        HostDir::Held { fd, path } => {
            path::check_text(path).map_err(field_error)?;
            let handle = format!("/proc/self/fd/{}", fd.as_raw_fd());
            if !std::fs::metadata(&handle).is_ok_and(|m| m.is_dir()) {
                return Err(SandboxError::InvalidSpec {
                    field: field.to_string(),
                    reason: format!(
                        "the handle held for {} is not an open directory",
                        path.display()
                    ),
                });
            }
            Ok((Source::Fd(fd.clone()), path.clone()))
        }
    }
}

impl Plan {
    fn new(spec: &Spec) -> Result<Plan, SandboxError> {
        let (plugin_dir, plugin_path) = plan_dir(&spec.plugin_dir, "plugin_dir")?;
        let socket_dir =
            validate_path(&spec.socket_dir).map_err(|e| SandboxError::InvalidSpec {
                field: "socket_dir".into(),
                reason: e.to_string(),
            })?;
        for (field, dir) in [("plugin_dir", &plugin_path), ("socket_dir", &socket_dir)] {
            let is_dir = match (field, &plugin_dir) {
                // A held directory was checked through its handle; its path may have changed.
                ("plugin_dir", Source::Fd(_)) => true,
                _ => dir.is_dir(),
            };
            if !is_dir {
                return Err(SandboxError::InvalidSpec {
                    field: field.into(),
                    reason: format!("{} is not a directory", dir.display()),
                });
            }
        }
        let mut grants = Vec::new();
        let lists = [
            ("read_only", &spec.read_only, Access::ReadOnly),
            ("read_write", &spec.read_write, Access::ReadWrite),
        ];
        for (name, list, access) in lists {
            for (i, dir) in list.iter().enumerate() {
                let field = format!("{name}[{i}]");
                let (source, inside) = plan_dir(dir, &field)?;
                let text = inside.to_string_lossy();
                let reserved = RESERVED_TREES
                    .iter()
                    .find(|r| path::is_at_or_below(&text, r))
                    .or_else(|| RESERVED_EXACT.iter().find(|r| text == **r));
                if let Some(reserved) = reserved {
                    return Err(SandboxError::InvalidSpec {
                        field,
                        reason: format!(
                            "{text} collides with the sandbox's own {reserved} (grant a \
                             directory elsewhere)"
                        ),
                    });
                }
                grants.push(Mount {
                    source,
                    inside,
                    access,
                });
            }
        }
        // Parents before children, so a grant inside another stays visible.
        grants.sort_by_key(|mount| mount.inside.components().count());
        check_program(&spec.program)?;
        if spec.egress_port == Some(0) {
            return Err(SandboxError::InvalidSpec {
                field: "egress_port".into(),
                reason: "port 0 is not a port the plugin could be told to use".into(),
            });
        }
        for (i, (name, value)) in spec.env.iter().enumerate() {
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(SandboxError::InvalidSpec {
                    field: format!("env[{i}]"),
                    reason: format!(
                        "{name:?} is not a variable name (letters, digits, `_`, not starting \
                         with a digit)"
                    ),
                });
            }
            if value.contains('\0') {
                return Err(SandboxError::InvalidSpec {
                    field: format!("env[{i}]"),
                    reason: format!("the value of {name} contains a NUL byte"),
                });
            }
        }
        for (i, arg) in spec.args.iter().enumerate() {
            if arg.contains('\0') {
                return Err(SandboxError::InvalidSpec {
                    field: format!("args[{i}]"),
                    reason: "contains a NUL byte".into(),
                });
            }
        }
        Ok(Plan {
            plugin_dir,
            socket_dir,
            grants,
        })
    }

    /// The descriptors bubblewrap must inherit to bind held directories.
    fn fds(&self) -> Vec<RawFd> {
        std::iter::once(&self.plugin_dir)
            .chain(self.grants.iter().map(|m| &m.source))
            .filter_map(|source| match source {
                Source::Fd(fd) => Some(fd.as_raw_fd()),
                Source::Path(_) => None,
            })
            .collect()
    }

    fn inside_read_only(&self) -> Vec<PathBuf> {
        self.grants_with(Access::ReadOnly)
    }

    fn inside_read_write(&self) -> Vec<PathBuf> {
        self.grants_with(Access::ReadWrite)
    }

    fn grants_with(&self, access: Access) -> Vec<PathBuf> {
        self.grants
            .iter()
            .filter(|mount| mount.access == access)
            .map(|mount| mount.inside.clone())
            .collect()
    }
}

/// The program is a path inside the sandbox, so it is not resolved on the host; it must still
/// be a plain absolute path.
fn check_program(program: &Path) -> Result<(), SandboxError> {
    let invalid = |reason: &str| SandboxError::InvalidSpec {
        field: "program".into(),
        reason: format!("{:?} {reason}", program.to_string_lossy()),
    };
    let Some(text) = program.to_str() else {
        return Err(invalid("is not valid UTF-8"));
    };
    if text.chars().any(char::is_control) {
        return Err(invalid("contains a NUL or control character"));
    }
    if !text.starts_with('/') || text == "/" {
        return Err(invalid(
            "is not an absolute path to a file inside the sandbox",
        ));
    }
    if text
        .split('/')
        .skip(1)
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(invalid("is not normalised"));
    }
    Ok(())
}

impl Sandboxed {
    /// The bubblewrap process (its stdout and stderr are the plugin's).
    pub fn child(&mut self) -> &mut tokio::process::Child {
        &mut self.child
    }

    /// bubblewrap's host pid; `None` once it has been reaped (its pid may then be reused).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether `pid` (a host pid, e.g. from `SO_PEERCRED`) is this sandbox's bubblewrap process
    /// or a descendant of it.
    ///
    /// # Security
    ///
    /// Read from `/proc` at the time of the call: check a peer while its connection is open, so
    /// its pid cannot have been reused.
    #[must_use]
    pub fn contains_pid(&self, pid: u32) -> bool {
        !self.killed
            && self
                .pid()
                .is_some_and(|root| procfs::is_descendant(pid, root))
    }

    /// Every process of the sandbox, as far as the host can see: cgroup members and bwrap's
    /// descendants.
    fn victims(&self) -> Vec<u32> {
        let mut pids = self.groups.members();
        if let Some(root) = self.pid() {
            pids.extend(procfs::descendants(root));
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    fn signal_all(&mut self) -> Vec<u32> {
        let victims = self.victims();
        let _ = self.child.start_kill();
        for &pid in &victims {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
        victims
    }

    /// Whether bubblewrap has already exited. Its exit follows that of the namespace's init,
    /// whose exit the kernel completes only once every process of the namespace is gone, so
    /// nothing of the sandbox is left to hunt for (at most processes already dying).
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills everything in the sandbox, reaps bubblewrap, waits (boundedly) until every process
    /// of the sandbox is gone, and removes its cgroups.
    pub async fn kill(&mut self) {
        if self.killed {
            return;
        }
        let victims = if self.exited() {
            Vec::new()
        } else {
            self.signal_all()
        };
        let _ = self.child.wait().await;
        self.killed = true;
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            let stragglers: Vec<u32> = self.groups.members();
            for &pid in &stragglers {
                if let Ok(raw) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            let gone = stragglers.is_empty() && victims.iter().all(|&p| !procfs::alive(p));
            if gone || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.groups.remove() {
            cleanup_later(self.groups.take());
        }
    }
}

impl Drop for Sandboxed {
    fn drop(&mut self) {
        if self.killed {
            return;
        }
        if !self.exited() {
            self.signal_all();
        }
        if !self.groups.remove() {
            cleanup_later(self.groups.take());
        }
    }
}

/// Removes cgroups whose last processes are still being torn down, off the caller's thread.
fn cleanup_later(mut groups: cgroup::Groups) {
    if groups.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("sigil-sandbox-cleanup".into())
        .spawn(move || {
            let deadline = std::time::Instant::now() + KILL_WAIT;
            while std::time::Instant::now() < deadline {
                for pid in groups.members() {
                    if let Ok(raw) = i32::try_from(pid) {
                        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                    }
                }
                if groups.remove() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::warn!(groups = ?groups.dirs(), "sandbox cgroups could not be removed");
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the sandbox cgroup cleanup");
    }
}
