//! The one place the tier touches the sandbox: what a plugin's sandbox holds, starting it, and
//! turning its stdout and stderr into log events.
//!
//! Everything the plugin may reach is decided here, from its manifest, grants and consent at
//! load: the plugin directory read-only at `/plugin`, the socket directory at `/run/sigil`,
//! whole directories granted by `fs.read:/dir/**` (read-only) or `fs.write:/dir/**`
//! (read-write), the manifest's environment, and the egress port when `net.*` is granted.
//! A Python plugin (`execution.interpreter = "python3"`) also gets the host's Python runtime
//! and the Sigil Python kit, found once per interpreter name by asking the host's interpreter.
//!
//! Directories are resolved once, at load, and held open (`sigil_runtime::granted_dirs`,
//! `HeldDir`): every start, the first and each restart, binds the held handles (bubblewrap's
//! `--bind-fd`), never the paths again. Before each start ([`Launch::prepare`]) every grant
//! must still lead to its held directory, and a verified plugin's files are copied to a private
//! directory and checked against its signature; either failing refuses the start for good, on
//! the record.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sigil_manifest::ValidatedManifest;
use sigil_policy::{Capability, CapabilitySet};
use sigil_runtime::{GrantedDir, HeldDir, LoadRequest, SignedFiles};
use sigil_sandbox::{HostDir, Limits, Sandbox, Sandboxed, Spec};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::host::Calls;

/// Inside the sandbox: the socket the plugin serves on.
pub(crate) const PLUGIN_SOCKET: &str = "/run/sigil/plugin.sock";
/// Inside the sandbox: the host's callback socket.
pub(crate) const HOST_SOCKET: &str = "/run/sigil/host.sock";
/// Inside the sandbox: the TCP port forwarded to the egress proxy.
pub(crate) const EGRESS_PORT: u16 = 3128;
/// The longest line of plugin output logged; the rest of the line is dropped.
const MAX_LINE_BYTES: usize = 4096;
/// How many of the last stderr lines are kept to explain a failed start.
const KEPT_LINES: usize = 8;
/// Memory a plugin gets when its manifest sets no `memory_mib`.
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// Processes and threads a plugin may run when its manifest sets no `processes`.
pub const DEFAULT_PROCESSES: u32 = 64;
/// Open files a plugin may hold when its manifest sets no `open_files`.
pub const DEFAULT_OPEN_FILES: u64 = 256;

/// Why a plugin's process did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// It did not start or finish its handshake; a later start may succeed.
    Failed(String),
    /// What it was granted or verified with at load no longer holds (a granted directory's
    /// path leads elsewhere, its signed files changed): it must not start again until it is
    /// reloaded. Already in the audit log.
    Refused(String),
}

impl From<String> for StartError {
    fn from(error: String) -> StartError {
        StartError::Failed(error)
    }
}

impl From<StartError> for String {
    fn from(error: StartError) -> String {
        match error {
            StartError::Failed(reason) | StartError::Refused(reason) => reason,
        }
    }
}

/// What one start of the plugin runs: its directory as held since load, or, for a verified
/// plugin, a private copy checked against its signature.
#[derive(Debug)]
pub(crate) enum Code {
    Installed,
    Staged(Staged),
}

/// A private copy of a verified plugin's files, removed once the process using it is gone.
#[derive(Debug)]
pub(crate) struct Staged {
    dir: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Everything needed to start one plugin's sandbox, decided once at load.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) plugin: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// The plugin's directory, held open since load.
    pub(crate) plugin_dir: HeldDir,
    /// A verified plugin's signed files, checked before every start.
    pub(crate) signed: Option<SignedFiles>,
    /// The directories granted whole, held since load.
    pub(crate) binds: Vec<GrantedDir>,
    /// The interpreter's own directories, bound read-only. They are part of the runtime, not
    /// grants, so they are never checked per call as `fs.read`.
    pub(crate) runtime_binds: Vec<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) limits: Limits,
    pub(crate) egress: bool,
    /// Whether the plugin's stdin stays open for the host (an MCP server speaks on it);
    /// otherwise it is closed at start.
    pub(crate) stdin: bool,
}

impl Launch {
    /// Decides the sandbox of the plugin `request` describes, holding its directory and the
    /// directories it is granted open.
    ///
    /// # Errors
    /// When the entry is missing or not a file, the plugin directory cannot be opened, or the
    /// interpreter is unusable.
    pub(crate) fn plan(request: &LoadRequest<'_>) -> Result<Launch, String> {
        let manifest = request.manifest;
        let execution = manifest.execution();
        let entry = execution
            .entry
            .as_ref()
            .ok_or("execution.entry is missing")?;
        let plugin_dir = HeldDir::open(request.dir)
            .map_err(|e| format!("plugin directory {}: {e}", request.dir.display()))?;
        let host_entry = plugin_dir.path().join(entry);
        if !host_entry.is_file() {
            return Err(format!(
                "execution.entry `{}` is not a file in {}",
                entry.display(),
                plugin_dir.path().display()
            ));
        }
        let inside_entry = Path::new(sigil_sandbox::PLUGIN_DIR).join(entry);
        let mut runtime = Runtime::default();
        let (program, args) = match &execution.interpreter {
            Some(interpreter)
                if interpreter.starts_with("python") && !interpreter.contains('/') =>
            {
                runtime = python_runtime(interpreter)?;
                (
                    runtime.executable.clone(),
                    vec![inside_entry.display().to_string()],
                )
            }
            Some(interpreter) => (
                interpreter_path(interpreter)?,
                vec![inside_entry.display().to_string()],
            ),
            None => {
                use std::os::unix::fs::PermissionsExt;
                let mode = host_entry
                    .metadata()
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if mode & 0o111 == 0 {
                    return Err(format!(
                        "execution.entry `{}` is not executable: make it executable, or name its interpreter in `execution.interpreter`",
                        entry.display()
                    ));
                }
                (inside_entry, Vec::new())
            }
        };
        let (binds, refused) = binds_for(request.grants, request.consent, manifest);
        for reason in refused {
            tracing::warn!(plugin = %manifest.id(), "{reason}");
        }
        let mut env: Vec<(String, String)> = execution
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, value) in runtime.env {
            if !env.iter().any(|(k, _)| *k == key) {
                env.push((key, value));
            }
        }
        env.push(("SIGIL_PLUGIN_SOCKET".into(), PLUGIN_SOCKET.into()));
        env.push(("SIGIL_PLUGIN_ID".into(), manifest.id().to_string()));
        let limits = &execution.limits;
        Ok(Launch {
            plugin: manifest.id().to_string(),
            program,
            args,
            plugin_dir,
            signed: request.signed.cloned(),
            binds,
            runtime_binds: runtime.ro_binds,
            env,
            limits: Limits {
                memory_bytes: Some(
                    limits
                        .memory_mib
                        .unwrap_or(DEFAULT_MEMORY_MIB)
                        .saturating_mul(1 << 20),
                ),
                processes: Some(
                    limits
                        .processes
                        .map_or(DEFAULT_PROCESSES, |p| u32::try_from(p).unwrap_or(u32::MAX)),
                ),
                open_files: Some(limits.open_files.unwrap_or(DEFAULT_OPEN_FILES)),
                // `cpu_ms` is per call; an rlimit would bound the process's whole life, so the
                // deadline bounds each call instead.
                cpu_seconds: None,
            },
            egress: net_granted(request.grants) && net_granted(request.consent),
            stdin: execution.protocol == sigil_manifest::Protocol::Mcp,
        })
    }

    /// Checks, before every start (the first and each restart), that the plugin may still run
    /// as it was loaded: every granted directory's grant must still lead to the directory held
    /// since load, and a verified plugin's files are copied into a private directory under
    /// `run_dir` and checked against its signature (the copy is what runs, so nothing edited
    /// after the check runs). A failure refuses the start for good and is recorded: a moved
    /// grant here, a changed file by `SignedFiles`.
    ///
    /// # Errors
    /// [`StartError::Refused`] as above; [`StartError::Failed`] when the copy cannot be made.
    pub(crate) async fn prepare(&self, calls: &Calls, run_dir: &Path) -> Result<Code, StartError> {
        for bind in &self.binds {
            if let Err(reason) = bind.check() {
                tracing::error!(plugin = %self.plugin, %reason, "granted directory moved; the plugin is not started");
                calls.refuse(&bind.capability(), &reason).await;
                return Err(StartError::Refused(reason));
            }
        }
        let Some(signed) = self.signed.clone() else {
            return Ok(Code::Installed);
        };
        let from = self.plugin_dir.handle_path()?;
        let staged = Staged {
            dir: private_dir(run_dir, "-plugin")?,
        };
        let to = staged.dir.clone();
        let checker = signed.clone();
        let copied = tokio::task::spawn_blocking(move || checker.stage(&from, &to))
            .await
            .map_err(|e| format!("copying the signed files failed: {e}"))?;
        match copied {
            Ok(()) => Ok(Code::Staged(staged)),
            Err(reason) if signed.broken().is_some() => Err(StartError::Refused(reason)),
            Err(reason) => Err(StartError::Failed(reason)),
        }
    }

    /// Starts the sandbox with `socket_dir` at `/run/sigil` and `code` at `/plugin`. Must run
    /// on a thread that outlives the sandbox (a runtime worker): bubblewrap dies with the
    /// thread that started it.
    pub(crate) fn spawn(
        &self,
        sandbox: &Sandbox,
        socket_dir: &Path,
        code: &Code,
    ) -> Result<Sandboxed, String> {
        let held = |dir: &HeldDir| HostDir::Held {
            fd: dir.fd().clone(),
            path: dir.path().to_path_buf(),
        };
        let plugin_dir = match code {
            Code::Installed => held(&self.plugin_dir),
            Code::Staged(staged) => HostDir::Path(staged.dir.clone()),
        };
        let spec = Spec {
            program: self.program.clone(),
            args: self.args.clone(),
            plugin_dir,
            socket_dir: socket_dir.to_path_buf(),
            read_only: self
                .runtime_binds
                .iter()
                .cloned()
                .map(HostDir::Path)
                .chain(
                    self.binds
                        .iter()
                        .filter(|b| !b.write())
                        .map(|b| held(b.held())),
                )
                .collect(),
            read_write: self
                .binds
                .iter()
                .filter(|b| b.write())
                .map(|b| held(b.held()))
                .collect(),
            env: self.env.clone(),
            limits: self.limits,
            egress_port: self.egress.then_some(EGRESS_PORT),
        };
        let mut sandboxed = sandbox
            .spawn(&spec)
            .map_err(|e| format!("cannot start the sandbox: {e}"))?;
        if !self.stdin {
            drop(sandboxed.child().stdin.take());
        }
        Ok(sandboxed)
    }
}

/// A fresh private directory (0700) under `run_dir` for one plugin process's sockets.
///
/// # Errors
/// When it cannot be created.
pub(crate) fn socket_dir(run_dir: &Path) -> Result<PathBuf, String> {
    private_dir(run_dir, "")
}

/// A fresh directory (0700) under `run_dir`, named at random with `suffix`.
fn private_dir(run_dir: &Path, suffix: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let name = format!(
        "{}{suffix}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let dir = run_dir.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The interpreter as a path inside the sandbox: absolute, or a name found on the sandbox's
/// `PATH` (the system trees are bound read-only at the same paths).
fn interpreter_path(interpreter: &str) -> Result<PathBuf, String> {
    if interpreter.starts_with('/') {
        return Ok(PathBuf::from(interpreter));
    }
    sigil_sandbox::SANDBOX_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(interpreter))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "execution.interpreter `{interpreter}` is not in {}: install it, or give its absolute path",
                sigil_sandbox::SANDBOX_PATH
            )
        })
}

/// How long the host's interpreter may take to describe itself.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// The environment variable naming the host's Python interpreter to probe.
pub(crate) const PYTHON_OVERRIDE: &str = "SIGIL_PYTHON";

/// An interpreter's runtime on the host: the program, its directories and its environment.
#[derive(Debug, Clone, Default)]
struct Runtime {
    executable: PathBuf,
    ro_binds: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

/// The Python runtime for the interpreter named `name`, from the host's
/// `<name> -m sigil_plugin sandbox-paths` (or `$SIGIL_PYTHON -m …`), probed once per name.
///
/// # Errors
/// When the probe fails, times out, or describes paths or variables the sandbox must not get.
fn python_runtime(name: &str) -> Result<Runtime, String> {
    static PROBED: OnceLock<Mutex<HashMap<String, Runtime>>> = OnceLock::new();
    let host = std::env::var(PYTHON_OVERRIDE).unwrap_or_else(|_| name.to_string());
    let key = format!("{name}\0{host}");
    let cache = PROBED.get_or_init(Mutex::default);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(found);
    }
    let runtime = probe_python(&host).map_err(|reason| {
        format!(
            "execution.interpreter `{name}`: the Sigil Python kit is not importable by {host} on this host (`{host} -m sigil_plugin sandbox-paths` failed: {reason}); install it with `pip install 'sigil-plugin[process]'` or scripts/install-python-kit"
        )
    })?;
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, runtime.clone());
    }
    Ok(runtime)
}

fn probe_python(host: &str) -> Result<Runtime, String> {
    let mut child = Command::new(host)
        .args(["-m", "sigil_plugin", "sandbox-paths"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(stream) = stream {
                let _ = stream.take(1 << 20).read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let last = stderr.trim().lines().last().unwrap_or_default();
        return Err(format!("{status}: {last}"));
    }
    parse_probe(&stdout)
}

/// Checks the probe's JSON: an absolute `executable`, `ro_binds` valid for the sandbox, and
/// `env` holding `PYTHONPATH` only.
fn parse_probe(text: &str) -> Result<Runtime, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("its output is not JSON: {e}"))?;
    let executable = value["executable"]
        .as_str()
        .filter(|e| e.starts_with('/'))
        .ok_or("its `executable` is not an absolute path")?;
    let mut ro_binds = Vec::new();
    for bind in value["ro_binds"]
        .as_array()
        .ok_or("its `ro_binds` is not a list")?
    {
        let bind = bind
            .as_str()
            .ok_or("an entry of its `ro_binds` is not a string")?;
        let dir = sigil_sandbox::validate_path(Path::new(bind))
            .map_err(|e| format!("its `ro_binds` entry cannot be bound: {e}"))?;
        ro_binds.push(dir);
    }
    let mut env = Vec::new();
    if let Some(vars) = value["env"].as_object() {
        for (key, value) in vars {
            let value = value
                .as_str()
                .ok_or_else(|| format!("its `env.{key}` is not a string"))?;
            if key != "PYTHONPATH" {
                return Err(format!(
                    "its `env` sets `{key}`; only PYTHONPATH is accepted"
                ));
            }
            env.push((key.clone(), value.to_string()));
        }
    }
    Ok(Runtime {
        executable: PathBuf::from(executable),
        ro_binds,
        env,
    })
}

fn net_granted(set: &CapabilitySet) -> bool {
    set.patterns().iter().any(|p| {
        let namespace = p.as_str().split(['.', ':']).next().unwrap_or_default();
        namespace == "net" || namespace == "*"
    })
}

/// The directories to bind: whole directories granted (`fs.read:/dir/**`, `fs.write:/dir/**`),
/// resolved and held by `sigil_runtime::granted_dirs`, consented to at their real path, with no
/// deny of the manifest's own reaching inside, and bindable in the sandbox (not `/`, `/proc`,
/// `/sys` or `/dev`). A directory granted for writing but consented to only for reading is
/// bound read-only. Denies of the policy, workspace and user are checked per call.
fn binds_for(
    grants: &CapabilitySet,
    consent: &CapabilitySet,
    manifest: &ValidatedManifest,
) -> (Vec<GrantedDir>, Vec<String>) {
    let view = sigil_runtime::granted_dirs(grants);
    let mut refused = view.refused;
    let mut binds = Vec::new();
    for dir in view.dirs {
        let consented = |dir: &GrantedDir| {
            Capability::parse(&dir.capability()).is_ok_and(|c| consent.contains(&c))
        };
        let dir = if consented(&dir) {
            dir
        } else if dir.write() && consented(&dir.read_only()) {
            dir.read_only()
        } else {
            refused.push(format!(
                "`{}` is not bound: the operator did not consent to it",
                dir.capability()
            ));
            continue;
        };
        let text = dir.capability();
        let Ok(capability) = Capability::parse(&text) else {
            continue;
        };
        if let Some(deny) = manifest
            .denied()
            .iter()
            .find(|d| d.pattern.may_cover_within(&capability))
        {
            refused.push(format!(
                "`{text}` is not bound: the manifest's deny `{}` reaches inside it",
                deny.pattern
            ));
            continue;
        }
        if let Err(e) = sigil_sandbox::validate_path(dir.path()) {
            refused.push(format!("`{text}` is not bound: {e}"));
            continue;
        }
        binds.push(dir);
    }
    (binds, refused)
}

/// The last lines a plugin wrote to stderr, to explain a failed start.
pub(crate) type Tail = Arc<Mutex<VecDeque<String>>>;

/// Logs each line of `stream` as a `tracing` event with `plugin` and `stream` fields. Lines are
/// bounded; bytes that are not UTF-8 are replaced. Protocol data is never read from here.
pub(crate) async fn forward_output(
    plugin: String,
    stream: &'static str,
    mut reader: impl AsyncRead + Unpin,
    tail: Option<Tail>,
) {
    let mut buffer = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    let emit = |line: &mut Vec<u8>, truncated: &mut bool| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if !text.trim().is_empty() {
            if *truncated {
                tracing::info!(plugin = %plugin, stream, truncated = true, line = %text);
            } else {
                tracing::info!(plugin = %plugin, stream, line = %text);
            }
            if let Some(tail) = &tail
                && let Ok(mut tail) = tail.lock()
            {
                if tail.len() == KEPT_LINES {
                    tail.pop_front();
                }
                tail.push_back(text.chars().take(300).collect());
            }
        }
        line.clear();
        *truncated = false;
    };
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buffer[..n] {
            if byte == b'\n' {
                emit(&mut line, &mut truncated);
            } else if line.len() < MAX_LINE_BYTES {
                line.push(byte);
            } else {
                truncated = true;
            }
        }
    }
    emit(&mut line, &mut truncated);
}
