//! One running plugin process: its sandbox, the handshake, its gRPC clients, and the watcher
//! that notices when it ends.
//!
//! The handshake never reads stdout. The host makes a private socket directory, serves `Host`
//! there, starts the sandbox with `SIGIL_PLUGIN_SOCKET=/run/sigil/plugin.sock`, waits (bounded)
//! for the plugin to listen, checks with `SO_PEERCRED` that the process at the other end is
//! inside the sandbox, and then calls `Init` (same protocol major version, or no deal).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use sigil_sandbox::{Sandbox, Sandboxed};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint};

use crate::PROTOCOL_VERSION;
use crate::host::{Calls, HostService, start_egress};
use crate::proto;
use crate::proto::hook_client::HookClient;
use crate::proto::host_server::HostServer;
use crate::proto::lifecycle_client::LifecycleClient;
use crate::proto::tool_client::ToolClient;
use crate::spawn::{self, Code, HOST_SOCKET, Launch, PLUGIN_SOCKET, StartError, Tail};

/// How long a plugin may take from start to serving its socket.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `Init`, `Describe`, `Health` and `Shutdown` may take.
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running plugin's health is checked.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Slack above `output_bytes` for the protobuf framing of a reply.
const REPLY_FRAMING: usize = 16 * 1024;

/// A running plugin process.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) tool: ToolClient<Channel>,
    /// The same connection, for `Hook.OnEvent`.
    pub(crate) hook: HookClient<Channel>,
    lifecycle: LifecycleClient<Channel>,
    exit: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<String>>>,
    host_stop: Mutex<Option<oneshot::Sender<()>>>,
    _proxy: Option<sigil_egress::ProxyHandle>,
    socket_dir: PathBuf,
    /// What the process runs; a private copy is removed with the instance.
    _code: Code,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Dropping the senders ends the host server and kills the sandbox.
        if let Ok(mut kill) = self.kill.lock() {
            kill.take();
        }
        if let Ok(mut stop) = self.host_stop.lock() {
            stop.take();
        }
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

/// What the host needs to start instances of one plugin.
#[derive(Debug)]
pub(crate) struct Starter {
    pub(crate) launch: Launch,
    pub(crate) sandbox: Sandbox,
    pub(crate) run_dir: PathBuf,
    pub(crate) calls: Arc<Calls>,
    pub(crate) output_cap: usize,
}

impl Instance {
    /// Checks that the plugin may still start as loaded ([`Launch::prepare`]), starts its
    /// process and completes the handshake.
    ///
    /// # Errors
    /// Why the plugin could not start, in a sentence naming what happened;
    /// [`StartError::Refused`] when it must not start again.
    pub(crate) async fn start(starter: &Starter) -> Result<Instance, StartError> {
        let code = starter
            .launch
            .prepare(&starter.calls, &starter.run_dir)
            .await?;
        let socket_dir = spawn::socket_dir(&starter.run_dir)?;
        let result = Instance::start_in(starter, &socket_dir, code).await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&socket_dir);
        }
        Ok(result?)
    }

    async fn start_in(
        starter: &Starter,
        socket_dir: &Path,
        code: Code,
    ) -> Result<Instance, String> {
        let plugin = starter.launch.plugin.clone();
        let host_path = socket_dir.join("host.sock");
        let listener = UnixListener::bind(&host_path)
            .map_err(|e| format!("cannot listen on {}: {e}", host_path.display()))?;
        // Bound with the umask's mode; the sandbox's user is its owner, nobody else needs it.
        private_socket(&host_path)?;
        let (host_stop, stopped) = oneshot::channel::<()>();
        let service = HostService {
            calls: starter.calls.clone(),
        };
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(HostServer::new(service))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "host service for a plugin ended");
            }
        });
        let proxy = if starter.launch.egress {
            Some(start_egress(&starter.calls, socket_dir)?)
        } else {
            None
        };

        let mut sandboxed = starter.launch.spawn(&starter.sandbox, socket_dir, &code)?;
        let tail: Tail = Arc::default();
        if let Some(stdout) = sandboxed.child().stdout.take() {
            tokio::spawn(spawn::forward_output(
                plugin.clone(),
                "stdout",
                stdout,
                None,
            ));
        }
        if let Some(stderr) = sandboxed.child().stderr.take() {
            tokio::spawn(spawn::forward_output(
                plugin.clone(),
                "stderr",
                stderr,
                Some(tail.clone()),
            ));
        }
        match handshake(starter, &mut sandboxed, socket_dir, &tail).await {
            Ok((channel, lifecycle)) => {
                let (kill, killed) = oneshot::channel();
                let (exit_tx, exit) = watch::channel(None);
                tokio::spawn(watch_process(
                    plugin,
                    sandboxed,
                    lifecycle.clone(),
                    killed,
                    exit_tx,
                    tail,
                ));
                let cap = starter.output_cap.saturating_add(REPLY_FRAMING);
                let hook = HookClient::new(channel.clone()).max_decoding_message_size(cap);
                let tool = ToolClient::new(channel).max_decoding_message_size(cap);
                Ok(Instance {
                    tool,
                    hook,
                    lifecycle,
                    exit,
                    kill: Mutex::new(Some(kill)),
                    host_stop: Mutex::new(Some(host_stop)),
                    _proxy: proxy,
                    socket_dir: socket_dir.to_path_buf(),
                    _code: code,
                })
            }
            Err(error) => {
                sandboxed.kill().await;
                Err(error)
            }
        }
    }

    /// Ends the process; `reason` becomes the description of its end.
    pub(crate) fn kill(&self, reason: String) {
        if let Ok(mut kill) = self.kill.lock()
            && let Some(sender) = kill.take()
        {
            let _ = sender.send(reason);
        }
    }

    /// How the process ended, if it has.
    pub(crate) fn ended(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Whether the process has ended or is being ended: no new call may use it.
    pub(crate) fn retired(&self) -> bool {
        self.ended().is_some() || self.kill.lock().map_or(true, |kill| kill.is_none())
    }

    /// Waits until the process has ended and says how.
    pub(crate) async fn wait_ended(&self) -> String {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(ended) => ended.clone().unwrap_or_default(),
            Err(_) => "ended".to_string(),
        }
    }

    /// Waits at most `limit` for the process to end.
    pub(crate) async fn ended_within(&self, limit: Duration) -> Option<String> {
        tokio::time::timeout(limit, self.wait_ended()).await.ok()
    }

    /// Asks the plugin to finish and exit within `drain`, then ends it.
    pub(crate) async fn shutdown(&self, drain: Duration) {
        let mut lifecycle = self.lifecycle.clone();
        let request = proto::ShutdownRequest {
            drain_timeout_ms: u32::try_from(drain.as_millis()).unwrap_or(u32::MAX),
        };
        let _ = tokio::time::timeout(CONTROL_TIMEOUT, lifecycle.shutdown(request)).await;
        let _ = self.ended_within(drain).await;
        self.kill("stopped by the host".into());
        let _ = self.ended_within(CONTROL_TIMEOUT).await;
    }
}

/// Narrows a socket in the data directory to its owner (`0600`), like every other path there.
fn private_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(sigil_runtime::files::PRIVATE_FILE_MODE),
    )
    .map_err(|e| format!("cannot make {} private: {e}", path.display()))
}

/// Waits for the socket, checks the peer, connects and calls `Init`.
async fn handshake(
    starter: &Starter,
    sandboxed: &mut Sandboxed,
    socket_dir: &Path,
    tail: &Tail,
) -> Result<(Channel, LifecycleClient<Channel>), String> {
    let socket = socket_dir.join("plugin.sock");
    let started = Instant::now();
    let stream = loop {
        if let Ok(Some(status)) = sandboxed.child().try_wait() {
            return Err(format!(
                "the plugin {} before serving {PLUGIN_SOCKET}{}",
                describe_exit(status),
                stderr_tail(tail)
            ));
        }
        if socket.exists()
            && let Ok(stream) = UnixStream::connect(&socket).await
        {
            break stream;
        }
        if started.elapsed() >= STARTUP_TIMEOUT {
            return Err(format!(
                "the plugin did not serve {PLUGIN_SOCKET} within {} s of starting{}",
                STARTUP_TIMEOUT.as_secs(),
                stderr_tail(tail)
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let peer = stream
        .peer_cred()
        .map_err(|e| format!("cannot identify the process serving {PLUGIN_SOCKET}: {e}"))?;
    let pid = peer
        .pid()
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or_else(|| format!("the process serving {PLUGIN_SOCKET} has no pid"))?;
    if !sandboxed.contains_pid(pid) {
        return Err(format!(
            "the process serving {PLUGIN_SOCKET} (pid {pid}) is not inside the plugin's sandbox"
        ));
    }
    // The plugin bound it with its own umask; it lies in the data directory, which is private.
    private_socket(&socket)?;
    // The channel uses this one checked connection; it never dials again, so a lost
    // connection ends the instance instead of reaching whatever listens later.
    let slot = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: http::Uri| {
        let stream = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            stream.map(TokioIo::new).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "the plugin's connection is gone",
                )
            })
        }
    });
    let channel = Endpoint::from_static("http://plugin.sigil")
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("cannot speak gRPC on {PLUGIN_SOCKET}: {e}"))?;
    let mut lifecycle = LifecycleClient::new(channel.clone());
    let init = proto::InitRequest {
        protocol_version: PROTOCOL_VERSION.to_string(),
        sigil_version: env!("CARGO_PKG_VERSION").to_string(),
        plugin_id: starter.launch.plugin.clone(),
        // The configuration is per call (ConfigGet), where the caller's view of it applies.
        config: "{}".to_string(),
        host_socket: HOST_SOCKET.to_string(),
    };
    let reply = tokio::time::timeout(CONTROL_TIMEOUT, lifecycle.init(init))
        .await
        .map_err(|_| {
            format!(
                "the plugin did not answer Init within {} s",
                CONTROL_TIMEOUT.as_secs()
            )
        })?
        .map_err(|status| format!("the plugin refused Init: {}", status.message()))?
        .into_inner();
    check_version(&reply.protocol_version)?;
    Ok((channel, lifecycle))
}

/// Accepts a plugin speaking the same protocol major version as this host.
pub(crate) fn check_version(plugin: &str) -> Result<(), String> {
    let host = semver::Version::parse(PROTOCOL_VERSION)
        .map_err(|e| format!("this host's protocol version is invalid: {e}"))?;
    let theirs = semver::Version::parse(plugin).map_err(|e| {
        format!(
            "the plugin's protocol version `{plugin}` is not semver ({e}); this host speaks {host}"
        )
    })?;
    if theirs.major != host.major {
        return Err(format!(
            "the plugin speaks protocol {theirs}, this host speaks {host}: the major versions must match"
        ));
    }
    Ok(())
}

/// Owns the sandbox: notices the process ending, checks its health, and kills it on request.
async fn watch_process(
    plugin: String,
    mut sandboxed: Sandboxed,
    mut lifecycle: LifecycleClient<Channel>,
    mut killed: oneshot::Receiver<String>,
    exit: watch::Sender<Option<String>>,
    tail: Tail,
) {
    let mut health = tokio::time::interval_at(Instant::now() + HEALTH_INTERVAL, HEALTH_INTERVAL);
    let ended = loop {
        tokio::select! {
            status = sandboxed.child().wait() => {
                break match status {
                    Ok(status) => format!("{}{}", describe_exit(status), stderr_tail(&tail)),
                    Err(e) => format!("could not be waited for: {e}"),
                };
            }
            reason = &mut killed => {
                break reason.unwrap_or_else(|_| "was stopped by the host".to_string());
            }
            _ = health.tick() => {
                let check = tokio::time::timeout(CONTROL_TIMEOUT, lifecycle.health(proto::HealthRequest {})).await;
                let problem = match check {
                    Err(_) => Some(format!("did not answer its health check within {} s", CONTROL_TIMEOUT.as_secs())),
                    Ok(Err(status)) => Some(format!("failed its health check: {}", status.message())),
                    Ok(Ok(reply)) if reply.get_ref().status != proto::health_response::Status::Serving as i32 => {
                        Some(format!("reported it is not serving: {}", reply.get_ref().message.chars().take(200).collect::<String>()))
                    }
                    Ok(Ok(_)) => None,
                };
                if let Some(problem) = problem {
                    // A process that just ended fails its check too: report the end instead.
                    if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_millis(500), sandboxed.child().wait()).await {
                        break format!("{}{}", describe_exit(status), stderr_tail(&tail));
                    }
                    break problem;
                }
            }
        }
    };
    // Whatever is left inside (children of a fork bomb, a stuck process) goes with it.
    sandboxed.kill().await;
    tracing::warn!(plugin = %plugin, how = %ended, "plugin process ended");
    let _ = exit.send(Some(ended));
}

/// The last lines of a process's stderr, to explain how it ended (empty when there were none).
pub(crate) fn stderr_tail(tail: &Tail) -> String {
    let lines: Vec<String> = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with: {}", lines.join(" | "))
    }
}

/// Describes how a process ended. bubblewrap reports a plugin killed by signal `n` as exit
/// status `128 + n`.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        if (129..=192).contains(&code) {
            let signal = code - 128;
            return format!(
                "exited with status {code} (killed by signal {signal}{})",
                signal_name(signal)
            );
        }
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal}{}", signal_name(signal)),
        None => "ended".to_string(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        6 => ", SIGABRT",
        9 => ", SIGKILL",
        11 => ", SIGSEGV",
        15 => ", SIGTERM",
        24 => ", SIGXCPU",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn versions_must_share_the_major_and_both_are_named() {
        assert!(check_version("1.0.0").is_ok());
        assert!(check_version("1.7.3").is_ok());
        let error = check_version("2.0.0").unwrap_err();
        assert!(
            error.contains("2.0.0") && error.contains(PROTOCOL_VERSION),
            "{error}"
        );
        let error = check_version("one").unwrap_err();
        assert!(
            error.contains("`one` is not semver") && error.contains(PROTOCOL_VERSION),
            "{error}"
        );
    }

    #[test]
    fn exits_are_described_with_their_signal() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(137 << 8)),
            "exited with status 137 (killed by signal 9, SIGKILL)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "was killed by signal 9, SIGKILL"
        );
    }
}
