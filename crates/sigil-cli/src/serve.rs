//! `sigil serve`: the daemon. The HTTP API (and MCP at `/mcp`) over the data directory's
//! runtime until SIGTERM or SIGINT, then a graceful shutdown: stop accepting, let requests in
//! flight finish (each tool call ends by its deadline), close the audit log, remove
//! `daemon.json`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use sigil_gateway::{DaemonInfo, Gateway, TokenStore};

/// How long requests in flight get after a shutdown signal before the daemon stops anyway.
/// Tool calls have their own, shorter deadlines; this bounds a client that never finishes.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (see daemon.json or the first line
    /// printed).
    #[arg(long, default_value = "127.0.0.1:7341")]
    listen: SocketAddr,
}

pub fn run(home: Option<&Path>, args: ServeArgs, reserved: Vec<String>) -> Result<ExitCode> {
    let sigil = crate::open(home)?;
    let root = sigil.home().root().to_path_buf();
    if let crate::status::Daemon::Running(info) = crate::status::find_daemon(&root)? {
        bail!(
            "a daemon already serves {} at http://{} (pid {}); stop it first",
            root.display(),
            info.address,
            info.pid
        );
    }
    let tokens = TokenStore::open(&sigil.home().database_path())?;
    let no_tokens = tokens.list()?.iter().all(|t| t.revoked_ms.is_some());
    let default_user = sigil.config().default_user().unwrap_or("NAME").to_string();
    let runtime = Arc::new(sigil);
    // Plugins whose manifest says `lifecycle.hot_reload` reload when their files change.
    let _hot_reload = sigil::Runtime::watch_hot_reload(&runtime)
        .map_err(|error| eprintln!("warning: hot reload is off: {error}"))
        .ok();
    // An edited sigil.toml is validated and put in force without a restart.
    let _config_watch = sigil::Runtime::watch_config(&runtime)
        .map_err(|error| eprintln!("warning: sigil.toml is not watched for changes: {error}"))
        .ok();
    let hosts = if args.listen.ip().is_loopback() {
        sigil_mcp::AllowedHosts::Loopback
    } else {
        // Beyond loopback every request needs a bearer token, which a rebinding page lacks.
        sigil_mcp::AllowedHosts::Any
    };
    let gateway = Gateway::builder(runtime.clone(), tokens)
        .reserved_commands(reserved)
        .nest_service("/mcp", sigil_mcp::http_service_with(runtime.clone(), hosts))
        .build();

    let threads = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = threads.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr()?;
        // From the moment it is bound (before `gateway_start` hooks run), no plugin
        // connection reaches the daemon's own API, whatever it is granted.
        let _protected = sigil_egress::protect_listener(address);
        let info = DaemonInfo {
            address,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        info.write(&root)?;
        println!("sigil {} listening on http://{address}", info.version);
        println!("  data directory: {}", root.display());
        println!("  API: http://{address}/openapi.json; MCP: http://{address}/mcp");
        if no_tokens {
            println!(
                "  no API tokens yet: create one with `sigil token create --user {default_user}`"
            );
        } else {
            println!("  authenticate with `Authorization: Bearer <token>` (`sigil token list`)");
        }
        let lifecycle = gateway_event(&runtime, &address);
        lifecycle(sigil::HookEvent::GatewayStart).await;
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let name = termination().await;
            eprintln!("{name}: shutting down; finishing requests in flight");
            let _ = signalled_tx.send(());
        };
        let serving = gateway.serve(listener, shutdown);
        let limit = async move {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_LIMIT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            result = serving => result.context("serving"),
            () = limit => {
                eprintln!("requests still in flight after {} s; stopping anyway", DRAIN_LIMIT.as_secs());
                Ok(())
            }
        };
        lifecycle(sigil::HookEvent::GatewayShutdown).await;
        served
    });
    // Blocking work still running (a plugin loading) finishes here, releasing the runtime.
    threads.shutdown_timeout(DRAIN_LIMIT);
    let closed = close(runtime);
    DaemonInfo::remove_own(&root);
    served?;
    closed?;
    println!("stopped; audit log closed");
    Ok(ExitCode::SUCCESS)
}

/// Raises the daemon's own lifecycle events (`gateway_start`, `gateway_shutdown`) for the hook
/// plugins that observe them, on behalf of the configured default user and workspace.
fn gateway_event(
    runtime: &Arc<sigil::Runtime>,
    address: &SocketAddr,
) -> impl Fn(sigil::HookEvent) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let runtime = runtime.clone();
    let payload = serde_json::json!({
        "address": address.to_string(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    move |event| {
        let runtime = runtime.clone();
        let payload = payload.clone();
        Box::pin(async move {
            let actor = sigil::Actor {
                channel: Some("gateway".to_string()),
                ..runtime.local_actor(None, None)
            };
            if let Err(error) = runtime.emit(event, &actor, payload).await {
                tracing::warn!(%event, %error, "lifecycle event not delivered");
            }
        })
    }
}

/// Waits for SIGTERM or SIGINT and names it.
async fn termination() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Closes the runtime once the server has let go of it: the audit writer commits everything
/// submitted, then the database closes.
fn close(runtime: Arc<sigil::Runtime>) -> Result<()> {
    let mut runtime = runtime;
    for _ in 0..500 {
        match Arc::try_unwrap(runtime) {
            Ok(runtime) => return runtime.close().context("closing the audit log"),
            Err(shared) => {
                runtime = shared;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Dropping the last handle closes the log too; say that it was late.
    tracing::warn!(
        "the runtime is still in use after shutdown; the audit log closes when it is released"
    );
    Ok(())
}
