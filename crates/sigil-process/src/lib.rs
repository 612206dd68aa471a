//! Sigil's process tier: plugins in any language, each a sandboxed process speaking gRPC
//! (`proto/sigil/plugin/v1`) over a Unix socket in a private directory.
//!
//! Register the tier with the runtime; plugins whose manifest says `execution.tier =
//! "process"` then install, list and invoke exactly like WebAssembly ones.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sigil_process::ProcessTier;
//! use sigil_runtime::{Home, Runtime};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = Home::resolve(None)?;
//! let tier = ProcessTier::new(home.root().join("run").join("process"))?;
//! let sigil = Runtime::open_with(
//!     home,
//!     Vec::new(),
//!     vec![(sigil_manifest::Tier::Process, Arc::new(tier))],
//! )?;
//! # let _ = sigil;
//! # Ok(()) }
//! ```
//!
//! A plugin's process:
//! 1. gets a fresh private socket directory (0700) bound at `/run/sigil` in its sandbox
//!    (`sigil-sandbox`: bubblewrap, seccomp, Landlock, rlimits, cgroups), with
//!    `SIGIL_PLUGIN_SOCKET=/run/sigil/plugin.sock` and the manifest's environment only;
//! 2. serves `Lifecycle` and `Tool` there (and `Hook`, when its manifest subscribes to events); the host waits for it (bounded), checks with
//!    `SO_PEERCRED` that the peer is inside the sandbox, calls `Init` (same protocol major
//!    version, or the plugin does not load) and `Describe`;
//! 3. calls back into the host's `Host` service at `/run/sigil/host.sock` for logs, kv,
//!    configuration, secret placeholders and HTTP, each request naming its call;
//! 4. is health-checked, restarted with backoff when it ends, and quarantined when it ends
//!    too often ([`RestartPolicy`]).
//!
//! Its stdout and stderr are logged line by line (`plugin`, `stream` fields), never parsed.
//!
//! # Security
//! - Nothing the plugin says is trusted: replies are size-capped (`limits.output_bytes`) and
//!   validated by the runtime; every step has the manifest's deadline (`limits.timeout_ms`),
//!   after which the process is ended and restarted; a crash ends only the call in flight.
//! - Host calls act only for calls in flight, through the runtime's `Call`: every kv, secret,
//!   filesystem and network use is an enforcer decision with one audit record.
//! - The filesystem: the plugin directory read-only, and whole directories granted by
//!   `fs.read:/dir/**` (read-only) or `fs.write:/dir/**` (read-write) and consented to, bound
//!   at their real path. Each is resolved once at load and held open; every start, restarts
//!   included, binds the held handle, never the path again, and refuses (audited) to start if
//!   a grant's path has come to lead elsewhere. A bind is left out when the manifest's own
//!   deny reaches into it; at each step every bind is checked for the caller (a moved grant is
//!   refused and audited, the capability is an audited decision), and a call whose caller may
//!   not have one, or whose policy carves into one, is refused before it reaches the plugin.
//! - A verified plugin runs from a private copy of its files made and checked against its
//!   signature before every start: a file edited after load never runs; the plugin is refused,
//!   on the record, and no longer listed as verified.
//! - The network: none, unless `net.*` is granted and consented to; then only the host's
//!   egress proxy, which decides each connection as `net.connect:<host>:<port>` for the call
//!   in flight (audited) and injects secrets into plain requests. Secrets never enter the
//!   sandbox: the plugin holds placeholders only.
//! - No orphans: bubblewrap dies with the host (`--die-with-parent`), and a dropped plugin's
//!   sandbox is killed with everything in it.

#![forbid(unsafe_code)]

mod bridge;
#[doc(hidden)]
pub mod fuzzing;
mod host;
mod instance;
mod plugin;
mod spawn;
mod supervisor;

/// The generated protocol types and services (`sigil.plugin.v1`).
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("sigil.plugin.v1");
}

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sigil_runtime::{DEFAULT_OUTPUT_BYTES, DEFAULT_TIMEOUT, LoadRequest, TierLoader, ToolPlugin};
use sigil_sandbox::Sandbox;
use tokio::runtime::Handle;

pub use bridge::MCP_STARTUP_TIMEOUT;
pub use instance::{HEALTH_INTERVAL, STARTUP_TIMEOUT};
pub use spawn::{DEFAULT_MEMORY_MIB, DEFAULT_OPEN_FILES, DEFAULT_PROCESSES};
pub use supervisor::RestartPolicy;

/// The protocol version this host speaks. Plugins must speak the same major version.
pub const PROTOCOL_VERSION: &str = "1.0.0";

/// Why the tier could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// No usable sandbox on this machine.
    #[error("the process tier needs its sandbox: {0}")]
    Sandbox(#[from] sigil_sandbox::SandboxError),
    /// The tier's async runtime could not start.
    #[error("cannot start the process tier's runtime: {0}")]
    Runtime(std::io::Error),
    /// The directory for plugin sockets could not be made.
    #[error("cannot create the socket directory {path}: {source}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The process tier. Holds its own async runtime, on which every plugin's sandbox, handshake,
/// supervision and calls run, so plugins outlive any caller's runtime.
#[derive(Debug)]
pub struct ProcessTier {
    runtime: Option<tokio::runtime::Runtime>,
    handle: Handle,
    sandbox: Sandbox,
    run_dir: PathBuf,
    /// Whether `run_dir` is a temporary directory of this tier's own, removed on drop.
    temporary: bool,
    policy: RestartPolicy,
    /// Where bridged MCP servers' approved tool definitions are kept, one directory per
    /// plugin; `None` keeps them in memory for the life of each load.
    state_dir: Option<PathBuf>,
}

/// The longest socket root: the 108-byte `sun_path` less a plugin's directory and socket names.
const MAX_RUN_DIR_LEN: usize = 60;

impl Drop for ProcessTier {
    fn drop(&mut self) {
        // Dropping the runtime's tasks kills every sandbox; do it without blocking, since the
        // tier may be dropped inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

impl ProcessTier {
    /// The tier, with plugin socket directories under `run_dir` (created 0700) and the sandbox
    /// found by [`Sandbox::detect`].
    ///
    /// # Errors
    /// When no sandbox is available (bubblewrap missing, `sigil-sandbox-init` not found, user
    /// namespaces off), or `run_dir` cannot be created.
    pub fn new(run_dir: PathBuf) -> Result<ProcessTier, ProcessError> {
        ProcessTier::with_sandbox(run_dir, Sandbox::detect()?)
    }

    /// The tier with an explicit sandbox.
    ///
    /// # Errors
    /// When `run_dir` cannot be created or the runtime cannot start.
    pub fn with_sandbox(run_dir: PathBuf, sandbox: Sandbox) -> Result<ProcessTier, ProcessError> {
        // A socket path must fit in `sun_path` (108 bytes, with the temporary directory the
        // egress proxy binds in beside it): a deep data directory gets a private temporary
        // one instead.
        let (run_dir, temporary) = if run_dir.as_os_str().len() > MAX_RUN_DIR_LEN {
            let short = std::env::temp_dir().join(format!(
                "sigil-process-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ));
            tracing::info!(wanted = %run_dir.display(), using = %short.display(), "socket directory path too long; using a private temporary one");
            (short, true)
        } else {
            (run_dir, false)
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&run_dir)
            .map_err(|source| ProcessError::RunDir {
                path: run_dir.clone(),
                source,
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sigil-process")
            .enable_all()
            .build()
            .map_err(ProcessError::Runtime)?;
        Ok(ProcessTier {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            sandbox,
            run_dir,
            temporary,
            policy: RestartPolicy::DEFAULT,
            state_dir: None,
        })
    }

    /// Replaces the restart policy for plugins loaded from now on.
    #[must_use]
    pub fn restart_policy(mut self, policy: RestartPolicy) -> ProcessTier {
        self.policy = policy;
        self
    }

    /// Keeps the approved tool definitions of bridged MCP servers (`execution.protocol =
    /// "mcp"`) under `dir`, so that a definition changed while Sigil was down is still held.
    /// A directory outside every sandbox: `<data dir>/state/mcp` for the daemon.
    #[must_use]
    pub fn state_dir(mut self, dir: PathBuf) -> ProcessTier {
        self.state_dir = Some(dir);
        self
    }

    /// The tier's runtime (for benchmarks comparing against bare gRPC in the same conditions).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn load_bridge(&self, request: &LoadRequest<'_>) -> Result<bridge::BridgePlugin, String> {
        let manifest = request.manifest;
        let launch = spawn::Launch::plan(request)?;
        let limits = &manifest.execution().limits;
        let deadline = limits
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let output_cap = usize::try_from(limits.output_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES))
            .unwrap_or(usize::MAX);
        let binds = launch.binds.clone();
        let starter = bridge::Starter {
            launch,
            sandbox: self.sandbox.clone(),
            run_dir: self.run_dir.clone(),
            calls: host::Calls::new(manifest.id().as_str(), request.enforcer.clone()),
            output_cap,
        };
        bridge::BridgePlugin::load(
            &self.handle,
            starter,
            binds,
            self.state_dir.clone(),
            self.policy,
            deadline,
        )
    }

    fn load_plugin(&self, request: &LoadRequest<'_>) -> Result<plugin::ProcessPlugin, String> {
        let manifest = request.manifest;
        let launch = spawn::Launch::plan(request)?;
        let limits = &manifest.execution().limits;
        let deadline = limits
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let output_cap = usize::try_from(limits.output_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES))
            .unwrap_or(usize::MAX);
        let calls = host::Calls::new(manifest.id().as_str(), request.enforcer.clone());
        let binds = launch.binds.clone();
        let starter = instance::Starter {
            launch,
            sandbox: self.sandbox.clone(),
            run_dir: self.run_dir.clone(),
            calls: calls.clone(),
            output_cap,
        };
        let drain = Duration::from_millis(manifest.lifecycle().drain_timeout_ms);
        let supervisor = {
            let _context = self.handle.enter();
            supervisor::Supervisor::start(starter, self.policy, drain)
        };
        let descriptors = block_on(&self.handle, async {
            let instance = supervisor.first_ready().await?;
            let mut client = instance.tool.clone();
            let reply = tokio::time::timeout(
                instance::CONTROL_TIMEOUT,
                client.describe(proto::DescribeRequest {}),
            )
            .await
            .map_err(|_| {
                format!(
                    "the plugin did not answer Describe within {} s",
                    instance::CONTROL_TIMEOUT.as_secs()
                )
            })?
            .map_err(|status| format!("the plugin refused Describe: {}", status.message()))?;
            Ok(reply.into_inner().tools)
        })?;
        let tools = descriptors
            .into_iter()
            .map(plugin::descriptor)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(plugin::ProcessPlugin {
            inner: Arc::new(plugin::Inner {
                id: manifest.id().to_string(),
                tools,
                supervisor,
                calls,
                binds,
                deadline,
                output_cap,
                stopped: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

impl TierLoader for ProcessTier {
    fn load(&self, request: &LoadRequest<'_>) -> Result<Arc<dyn ToolPlugin>, String> {
        if request.manifest.execution().protocol == sigil_manifest::Protocol::Mcp {
            let plugin = self.load_bridge(request)?;
            tracing::info!(plugin = %request.manifest.id(), tools = plugin.tools().len(), "MCP server bridged");
            return Ok(Arc::new(plugin));
        }
        let plugin = self.load_plugin(request)?;
        tracing::info!(plugin = %plugin.inner.id, tools = plugin.inner.tools.len(), "process plugin loaded");
        Ok(Arc::new(plugin))
    }
}

/// Runs a load-time future on the tier's runtime from a thread of its own: loading is
/// synchronous and may itself happen inside another async runtime.
fn block_on<T: Send>(
    handle: &Handle,
    future: impl Future<Output = Result<T, String>> + Send,
) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| handle.block_on(future))
            .join()
            .unwrap_or_else(|_| Err("loading the plugin panicked".to_string()))
    })
}
