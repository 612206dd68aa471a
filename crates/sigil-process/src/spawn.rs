//! The one place the tier touches the sandbox: what a plugin's sandbox holds, starting it, and
//! turning its stdout and stderr into log events.
//!
//! Everything the plugin may reach is decided here, from its manifest, grants and consent at
//! load: the plugin directory read-only at `/plugin`, the socket directory at `/run/sigil`,
//! whole directories granted by `fs.read:/dir/**` (read-only) or `fs.write:/dir/**`
//! (read-write), the manifest's environment, and the egress port when `net.*` is granted.
//! A Python plugin (`execution.interpreter = "python3"`) also gets the host's Python runtime
//! and the Sigil Python kit, found once per interpreter name by asking the host's interpreter.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sigil_manifest::{Protocol, ValidatedManifest};
use sigil_policy::{Capability, CapabilitySet};
use sigil_sandbox::{Limits, Sandbox, Sandboxed, Spec};
use tokio::io::{AsyncRead, AsyncReadExt};

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

/// A directory bound into the sandbox at the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bind {
    pub(crate) dir: PathBuf,
    pub(crate) write: bool,
}

impl Bind {
    /// The capability a call's actor must hold for this bind to be present during the call.
    pub(crate) fn capability(&self) -> String {
        let action = if self.write { "fs.write" } else { "fs.read" };
        format!("{action}:{}", self.dir.display())
    }
}

/// Everything needed to start one plugin's sandbox, decided once at load.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) plugin: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) plugin_dir: PathBuf,
    pub(crate) binds: Vec<Bind>,
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
    /// Decides the sandbox of the plugin described by `manifest` in `dir`.
    ///
    /// # Errors
    /// When the entry is missing or not a file, or the interpreter is unusable.
    pub(crate) fn plan(
        manifest: &ValidatedManifest,
        dir: &Path,
        grants: &CapabilitySet,
        consent: &CapabilitySet,
    ) -> Result<Launch, String> {
        let execution = manifest.execution();
        let entry = execution
            .entry
            .as_ref()
            .ok_or("execution.entry is missing")?;
        let plugin_dir = dir
            .canonicalize()
            .map_err(|e| format!("plugin directory {}: {e}", dir.display()))?;
        let host_entry = plugin_dir.join(entry);
        if !host_entry.is_file() {
            return Err(format!(
                "execution.entry `{}` is not a file in {}",
                entry.display(),
                plugin_dir.display()
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
        let (binds, refused) = binds_for(grants, consent, manifest);
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
            egress: net_granted(grants) && net_granted(consent),
            stdin: execution.protocol == Protocol::Mcp,
        })
    }

    /// Starts the sandbox with `socket_dir` at `/run/sigil`. Must run on a thread that outlives
    /// the sandbox (a runtime worker): bubblewrap dies with the thread that started it.
    pub(crate) fn spawn(&self, sandbox: &Sandbox, socket_dir: &Path) -> Result<Sandboxed, String> {
        let spec = Spec {
            program: self.program.clone(),
            args: self.args.clone(),
            plugin_dir: self.plugin_dir.clone(),
            socket_dir: socket_dir.to_path_buf(),
            read_only: self
                .runtime_binds
                .iter()
                .cloned()
                .chain(
                    self.binds
                        .iter()
                        .filter(|b| !b.write)
                        .map(|b| b.dir.clone()),
                )
                .collect(),
            read_write: self
                .binds
                .iter()
                .filter(|b| b.write)
                .map(|b| b.dir.clone())
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
    use std::os::unix::fs::DirBuilderExt;
    let dir = run_dir.join(&uuid::Uuid::new_v4().simple().to_string()[..12]);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .map_err(|e| format!("cannot create the socket directory {}: {e}", dir.display()))?;
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

/// The directories to bind: whole directories granted (`fs.read:/dir/**`, `fs.write:/dir/**`)
/// and consented to, valid for the sandbox, and with no deny of the manifest's own reaching
/// inside. Denies of the policy, workspace and user are checked per call.
pub(crate) fn binds_for(
    grants: &CapabilitySet,
    consent: &CapabilitySet,
    manifest: &ValidatedManifest,
) -> (Vec<Bind>, Vec<String>) {
    let mut binds: Vec<Bind> = Vec::new();
    let mut refused = Vec::new();
    for pattern in grants.patterns() {
        let text = pattern.as_str();
        let Some((action, path)) = text.split_once(':') else {
            continue;
        };
        let write = match action {
            "fs.read" => false,
            "fs.write" => true,
            _ => continue,
        };
        let dir = match path.strip_suffix("/**") {
            Some(dir) if !dir.is_empty() && !dir.contains('*') => PathBuf::from(dir),
            _ => {
                refused.push(format!(
                    "`{text}` cannot become a sandbox bind: grant a whole directory other than `/`, as `{action}:/dir/**`"
                ));
                continue;
            }
        };
        let bind = Bind { dir, write };
        let Ok(capability) = Capability::parse(&bind.capability()) else {
            continue;
        };
        if !consent.contains(&capability) {
            refused.push(format!(
                "`{text}` is not bound: the operator did not consent to it"
            ));
            continue;
        }
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
        match sigil_sandbox::validate_path(&bind.dir) {
            Ok(dir) => match binds.iter_mut().find(|b| b.dir == dir) {
                Some(existing) => existing.write |= write,
                None => binds.push(Bind { dir, write }),
            },
            Err(e) => refused.push(format!("`{text}` is not bound: {e}")),
        }
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
