//! Listening: the Unix socket (or TCP port), the accept loop and the handle that stops it.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::forward::serve_connection;
use crate::{EgressError, EgressPolicy, Options};

/// The egress proxy. See the crate documentation for what it allows.
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// Binds `path` (must not exist; created 0600) and serves until the handle is dropped or
    /// shut down. Needs a tokio runtime. Uses [`Options::new`].
    ///
    /// # Errors
    ///
    /// No current tokio runtime, `path` already exists or has no parent directory, or the
    /// socket cannot be bound.
    ///
    /// # Security
    ///
    /// The socket is bound in a fresh 0700 directory beside `path`, made 0600, and only then
    /// linked to `path`, so no other user can connect in between; an existing file at `path`
    /// is never replaced.
    pub fn serve_unix(
        path: &Path,
        policy: Arc<dyn EgressPolicy>,
    ) -> Result<ProxyHandle, EgressError> {
        Self::serve_unix_with(path, policy, &Options::new())
    }

    /// [`Proxy::serve_unix`] with explicit [`Options`].
    ///
    /// # Errors
    ///
    /// As [`Proxy::serve_unix`].
    pub fn serve_unix_with(
        path: &Path,
        policy: Arc<dyn EgressPolicy>,
        options: &Options,
    ) -> Result<ProxyHandle, EgressError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EgressError::NoRuntime)?;
        let _guard = runtime.enter();
        let (listener, identity) = bind_private(path)?;
        let socket = SocketFile {
            path: path.to_path_buf(),
            identity,
        };
        Ok(spawn(
            Listener::Unix(listener),
            Bound::Unix(socket),
            policy,
            options,
            &runtime,
        ))
    }

    /// Same on TCP, for tests and embedders. Uses [`Options::new`].
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn serve_tcp(
        addr: SocketAddr,
        policy: Arc<dyn EgressPolicy>,
    ) -> Result<ProxyHandle, EgressError> {
        Self::serve_tcp_with(addr, policy, &Options::new()).await
    }

    /// [`Proxy::serve_tcp`] with explicit [`Options`].
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn serve_tcp_with(
        addr: SocketAddr,
        policy: Arc<dyn EgressPolicy>,
        options: &Options,
    ) -> Result<ProxyHandle, EgressError> {
        let io = |what, source| EgressError::Io {
            what,
            target: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(|e| io("bind", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| io("read the address of", e))?;
        let runtime = tokio::runtime::Handle::current();
        Ok(spawn(
            Listener::Tcp(listener),
            Bound::Tcp(local),
            policy,
            options,
            &runtime,
        ))
    }
}

/// A running proxy. Dropping it stops accepting, ends every connection it serves (tunnels
/// included) and removes its socket file.
pub struct ProxyHandle {
    bound: Bound,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ProxyHandle");
        match &self.bound {
            Bound::Unix(socket) => out.field("path", &socket.path),
            Bound::Tcp(addr) => out.field("local_addr", addr),
        };
        out.finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The TCP address served, for a proxy started with [`Proxy::serve_tcp`].
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.bound {
            Bound::Tcp(addr) => Some(*addr),
            Bound::Unix(_) => None,
        }
    }

    /// The socket path served, for a proxy started with [`Proxy::serve_unix`].
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match &self.bound {
            Bound::Unix(socket) => Some(&socket.path),
            Bound::Tcp(_) => None,
        }
    }

    /// Stops accepting, ends every connection and waits until they are gone; then removes the
    /// socket file.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // Drop removes the socket file.
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        // Dropping the sender tells the accept loop to stop; it then drops every connection.
        self.stop.take();
        if let Bound::Unix(socket) = &self.bound {
            socket.remove();
        }
    }
}

enum Bound {
    Unix(SocketFile),
    Tcp(SocketAddr),
}

/// The socket file this proxy created, identified by device and inode so that a file put at
/// the same path by someone else is never removed.
struct SocketFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl SocketFile {
    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the egress socket");
        }
    }
}

/// Binds a Unix socket at `path`, mode 0600, without a moment where it is reachable with
/// looser permissions, and without replacing anything already at `path`.
fn bind_private(path: &Path) -> Result<(UnixListener, (u64, u64)), EgressError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let shown = path.display().to_string();
    let io = |what, source| EgressError::Io {
        what,
        target: shown.clone(),
        source,
    };
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(EgressError::Exists(shown));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(EgressError::BadPath(shown));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let staging = parent.join(format!(
        ".{}.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| io("create a staging directory beside", e))?;
    let staged = staging.join("sock");
    let result = (|| {
        let listener = UnixListener::bind(&staged).map_err(|e| io("bind", e))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("restrict the permissions of", e))?;
        std::fs::hard_link(&staged, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                EgressError::Exists(shown.clone())
            } else {
                io("link the socket to", e)
            }
        })?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| io("inspect", e))?;
        Ok((listener, (meta.dev(), meta.ino())))
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    result
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            Self::Unix(listener) => Box::new(listener.accept().await?.0),
            Self::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Box::new(stream)
            }
        })
    }
}

fn spawn(
    listener: Listener,
    bound: Bound,
    policy: Arc<dyn EgressPolicy>,
    options: &Options,
    runtime: &tokio::runtime::Handle,
) -> ProxyHandle {
    let (stop, stopped) = watch::channel(false);
    let task = runtime.spawn(accept_loop(listener, policy, options.clone(), stopped));
    ProxyHandle {
        bound,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Accepts until told to stop or until the handle is dropped. Every connection task lives in
/// one `JoinSet`, so leaving this function ends them all.
async fn accept_loop(
    listener: Listener,
    policy: Arc<dyn EgressPolicy>,
    options: Options,
    mut stopped: watch::Receiver<bool>,
) {
    let options = Arc::new(options);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // Both awaits are cancel-safe: another branch firing loses nothing.
            (slot, accepted) = async {
                (slots.clone().acquire_owned().await, listener.accept().await)
            } => {
                let Ok(slot) = slot else { break };
                match accepted {
                    Ok(stream) => {
                        let policy = policy.clone();
                        let options = options.clone();
                        connections.spawn(async move {
                            serve_connection(stream, policy, &options).await;
                            drop(slot);
                        });
                    }
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "egress proxy cannot accept a connection");
                        drop(slot);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
    connections.shutdown().await;
}
