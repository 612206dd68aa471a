//! `sigil-sandbox-init`: the first program bubblewrap starts inside a sandbox.
//!
//! Its `run` mode, in order: asks for `SIGKILL` when its parent dies; applies the rlimits;
//! starts the egress forwarder if asked; restricts itself with Landlock; installs the seccomp
//! filters; execs the plugin, which inherits all of it. Any failure before the exec ends the
//! sandbox with exit status 125 and a message on stderr: the plugin never runs with a wall
//! missing (except Landlock on a kernel without it, which the host reports when it probes).
//!
//! The `join` mode runs on the host: it moves itself into the sandbox's cgroups and execs
//! bubblewrap, so every process of the sandbox is counted from its first instruction.

pub(crate) mod config;
mod forward;
mod landlock;
mod seccomp;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;

use config::{Command, RunConfig};

/// Where the entrypoint is bound inside every sandbox (read-only).
pub(crate) const INIT_PATH: &str = "/run/sigil-init";

/// Exit status when the sandbox could not be set up.
const SETUP_FAILED: u8 = 125;
/// Exit status when the plugin program could not be executed.
const EXEC_FAILED: u8 = 127;

/// The system trees every sandbox sees read-only (those that exist and are not symlinks into
/// `/usr`, which Landlock resolves anyway), plus the plugin and the entrypoint.
const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/plugin",
    INIT_PATH,
];
/// Writable everywhere: the private tmpfs, the socket directory, shared memory.
const SYSTEM_READ_WRITE: &[&str] = &["/tmp", "/run/sigil", "/dev/shm"];

/// Set by [`dispatch`]: the current executable can serve as the entrypoint.
static SELF_ENTRYPOINT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a program that carries the entrypoint inside itself (the `sigil` binary does), so it
/// needs no `sigil-sandbox-init` beside it. Call it first thing in `main`: when this process
/// was started as a sandbox's entrypoint (its `argv[0]` names the entrypoint), it runs the
/// entrypoint and returns its exit status, which `main` must return at once. Otherwise it
/// records that the current executable may serve as the entrypoint, for
/// [`Sandbox::detect`](crate::Sandbox::detect), and returns `None`.
#[must_use]
pub fn dispatch() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    let name = std::path::Path::new(&argv0).file_name()?.to_owned();
    let inside = std::path::Path::new(INIT_PATH).file_name()?;
    if name == crate::INIT_NAME || name == inside {
        return Some(main());
    }
    SELF_ENTRYPOINT.store(true, std::sync::atomic::Ordering::Relaxed);
    None
}

/// Whether [`dispatch`] said the current executable can be the entrypoint.
pub(crate) fn self_entrypoint() -> bool {
    SELF_ENTRYPOINT.load(std::sync::atomic::Ordering::Relaxed)
}

/// The binary's whole body. Not part of the library's API.
#[doc(hidden)]
#[must_use]
pub fn main() -> ExitCode {
    let command = match Command::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => return fail(&e, SETUP_FAILED),
    };
    match command {
        Command::Run(config) => run(&config),
        Command::Forward { port } => forward_main(port),
        Command::Probe => probe(),
        Command::Join {
            cgroups,
            program,
            args,
        } => join(&cgroups, &program, &args),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "sigil-sandbox-init: error: {message}");
    ExitCode::from(code)
}

fn die_with_parent() -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| format!("setting the parent-death signal: {e}"))
}

fn run(config: &RunConfig) -> ExitCode {
    match prepare(config) {
        Ok(()) => {
            let error = std::process::Command::new(&config.program)
                .args(&config.args)
                .exec();
            fail(
                &format!("executing {}: {error}", config.program.display()),
                EXEC_FAILED,
            )
        }
        Err(e) => fail(&e, SETUP_FAILED),
    }
}

fn prepare(config: &RunConfig) -> Result<(), String> {
    die_with_parent()?;
    apply_rlimits(config)?;
    if let Some(port) = config.egress_port {
        start_forwarder(port)?;
    }
    let mut rules = system_rules();
    rules.read_only.extend(config.read_only.iter().cloned());
    rules.read_write.extend(config.read_write.iter().cloned());
    rules.connect_ports.extend(config.egress_port);
    landlock::restrict(&rules)?;
    let inet = if config.egress_port.is_some() {
        seccomp::Inet::TcpOnly
    } else {
        seccomp::Inet::Denied
    };
    seccomp::install(inet)
}

fn system_rules() -> landlock::Rules {
    let existing = |paths: &[&str]| -> Vec<PathBuf> {
        paths
            .iter()
            .map(PathBuf::from)
            .filter(|p| {
                p.symlink_metadata()
                    .is_ok_and(|m| !m.file_type().is_symlink())
            })
            .collect()
    };
    landlock::Rules {
        read_only: existing(SYSTEM_READ_ONLY),
        read_write: existing(SYSTEM_READ_WRITE),
        devices: existing(&["/dev"]),
        connect_ports: Vec::new(),
    }
}

fn apply_rlimits(config: &RunConfig) -> Result<(), String> {
    let set = |resource: Resource, name: &str, soft: u64, hard: u64| {
        // Without CAP_SYS_RESOURCE a hard limit can only be lowered.
        let (_, current_hard) = getrlimit(resource).map_err(|e| format!("reading {name}: {e}"))?;
        let hard = hard.min(current_hard);
        setrlimit(resource, soft.min(hard), hard).map_err(|e| format!("setting {name}: {e}"))
    };
    // No core files: a crash must not write the plugin's memory anywhere.
    set(Resource::RLIMIT_CORE, "RLIMIT_CORE", 0, 0)?;
    if let Some(bytes) = config.memory_bytes {
        set(Resource::RLIMIT_AS, "RLIMIT_AS", bytes, bytes)?;
    }
    if let Some(files) = config.open_files {
        set(Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE", files, files)?;
    }
    if let Some(seconds) = config.cpu_seconds {
        // SIGXCPU at the soft limit, SIGKILL one second later for a process that ignores it.
        set(
            Resource::RLIMIT_CPU,
            "RLIMIT_CPU",
            seconds,
            seconds.saturating_add(1),
        )?;
    }
    Ok(())
}

/// Starts `sigil-sandbox-init forward` and waits until it listens.
fn start_forwarder(port: u16) -> Result<(), String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(INIT_PATH));
    let mut child = std::process::Command::new(exe)
        .args(["forward", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the egress forwarder: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("starting the egress forwarder: no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("waiting for the egress forwarder: {e}"))?;
    if line.trim() != "ready" {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(format!(
            "the egress forwarder on 127.0.0.1:{port} did not start ({status})"
        ));
    }
    // The forwarder lives on as the plugin's child; it dies with it (parent-death signal).
    Ok(())
}

fn forward_main(port: u16) -> ExitCode {
    let listener = match die_with_parent().and_then(|()| forward::bind(port)) {
        Ok(listener) => listener,
        Err(e) => return fail(&e, SETUP_FAILED),
    };
    // Once bound, the forwarder needs no file and creates no IP socket: accepted connections
    // come from the listener, the proxy is reached over AF_UNIX.
    let restricted = landlock::restrict(&landlock::Rules::default())
        .and_then(|_| seccomp::install(seccomp::Inet::Denied));
    if let Err(e) = restricted {
        return fail(&e, SETUP_FAILED);
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "ready")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return fail("egress forwarder: cannot report readiness", SETUP_FAILED);
    }
    forward::serve(&listener)
}

fn probe() -> ExitCode {
    let status = die_with_parent()
        .and_then(|()| landlock::restrict(&system_rules()))
        .and_then(|status| seccomp::install(seccomp::Inet::Denied).map(|()| status));
    match status {
        Ok(status) => {
            let _ = writeln!(std::io::stdout(), "landlock={status:?}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, SETUP_FAILED),
    }
}

fn join(cgroups: &[PathBuf], program: &Path, args: &[std::ffi::OsString]) -> ExitCode {
    if let Err(e) = die_with_parent() {
        return fail(&e, SETUP_FAILED);
    }
    let pid = std::process::id().to_string();
    for dir in cgroups {
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), &pid) {
            return fail(
                &format!("joining cgroup {}: {e}", dir.display()),
                SETUP_FAILED,
            );
        }
    }
    let error = std::process::Command::new(program).args(args).exec();
    fail(
        &format!("executing {}: {error}", program.display()),
        EXEC_FAILED,
    )
}
