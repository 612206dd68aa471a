//! Sigil's MCP server: the tools of the running plugins, offered to any MCP client, every
//! call through the enforcer and into the audit log.
//!
//! Two transports, one handler ([`McpServer`], built on the official Rust SDK, `rmcp`):
//! - streamable HTTP: [`http_service`] is a tower service a gateway nests at `/mcp` behind its
//!   authentication, which puts the caller's [`Actor`] into each request's extensions;
//! - stdio: [`serve_stdio`] serves one local user on standard input and output (`sigil mcp`).
//!
//! ```
//! use std::sync::Arc;
//!
//! use axum::{Router, extract::Request, middleware::{self, Next}, response::Response};
//! use sigil_runtime::{Actor, Home, Runtime};
//!
//! // The gateway's authentication, reduced to its one duty towards this crate: it puts the
//! // authenticated caller into the request's extensions.
//! async fn authenticate(mut request: Request, next: Next) -> Response {
//!     request.extensions_mut().insert(Actor {
//!         user: Some("local".into()),
//!         workspace: Some("default".into()),
//!         ..Actor::default()
//!     });
//!     next.run(request).await
//! }
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let runtime = Arc::new(Runtime::open(Home::resolve(Some(home.path()))?, sigil_builtins::all())?);
//! let app: Router = Router::new()
//!     .nest_service("/mcp", sigil_mcp::http_service(runtime))
//!     .layer(middleware::from_fn(authenticate));
//! # let _ = app; Ok(()) }
//! # demo().unwrap();
//! ```
//!
//! Tool names: Sigil's `PLUGIN/TOOL` is `PLUGIN__TOOL` over MCP (see [`names`]).

#![forbid(unsafe_code)]

mod jsonrpc;
pub mod names;
mod server;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use sigil_runtime::{Actor, Runtime};

pub use rmcp;
pub use server::{CHANNEL, McpServer};

pub use jsonrpc::HttpService;

/// Which `Host` headers the HTTP service answers, and which browser `Origin`s, against DNS
/// rebinding and cross-origin requests from web pages. A request without `Origin` (an agent,
/// a desktop client, the command line) is judged by its `Host` alone; one whose `Origin` is
/// not allowed is refused with 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// `localhost`, `127.0.0.1` and `::1`, on any port; pages served from those hosts (http
    /// or https, any port) only.
    Loopback,
    /// These host names or `host:port` authorities; pages served from them (http or https;
    /// on the port given, else any) only.
    Only(Vec<String>),
    /// Any host: for a gateway reached under names it cannot list, where every request
    /// must carry a bearer token (which a rebinding page does not have). No browser page may
    /// call it: every request carrying an `Origin` is refused.
    Any,
}

/// The loopback hosts a page may be served from to call a loopback server.
const LOOPBACK_ORIGINS: &[&str] = &[
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// The origins of pages served from `hosts` (`name` or `name:port`).
fn origins_of(hosts: &[String]) -> Vec<String> {
    hosts
        .iter()
        .flat_map(|host| {
            let authority = if host.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            }) && !host.ends_with(']')
            {
                host.clone()
            } else {
                format!("{host}:*")
            };
            [
                format!("http://{authority}"),
                format!("https://{authority}"),
            ]
        })
        .collect()
}

/// The streamable HTTP MCP service, answering loopback hosts only
/// ([`AllowedHosts::Loopback`]); see [`http_service_with`].
///
/// # Security
/// As for [`http_service_with`].
pub fn http_service(runtime: Arc<Runtime>) -> HttpService {
    http_service_with(runtime, AllowedHosts::Loopback)
}

/// The streamable HTTP MCP service, answering the `hosts` given.
///
/// The service is stateless: no MCP sessions, every POST served on its own and answered with
/// JSON (`GET` and `DELETE` are 405). Every request therefore carries its own credentials and
/// no request can reach another caller's state.
///
/// # Security
/// The caller of `tools/list` and `tools/call` is the [`Actor`] that the layer in front of the
/// service put into the HTTP request's extensions (`http::Request::extensions_mut().insert`).
/// A request without one is refused with a JSON-RPC error; there is no default user over
/// HTTP. Mount the service only behind authentication that inserts the actor.
pub fn http_service_with(runtime: Arc<Runtime>, hosts: AllowedHosts) -> HttpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let config = match hosts {
        AllowedHosts::Loopback => config.with_allowed_origins(LOOPBACK_ORIGINS.iter().copied()),
        AllowedHosts::Only(hosts) => config
            .with_allowed_origins(origins_of(&hosts))
            .with_allowed_hosts(hosts),
        AllowedHosts::Any => config.disable_allowed_hosts(),
    }
    .enforce_origin_validation();
    HttpService::new(StreamableHttpService::new(
        move || Ok(McpServer::per_http_request(runtime.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    ))
}

/// Why the stdio server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The client did not complete MCP initialization (or closed the stream before it did).
    #[error("mcp over stdio: initialization failed: {0}")]
    Initialize(String),
    /// The task serving the connection panicked or was aborted.
    #[error("mcp over stdio: the server task failed: {0}")]
    Task(String),
}

/// Serves MCP on standard input and output until the client closes its end, every request on
/// behalf of `actor`.
///
/// Standard output carries the protocol and nothing else: log to standard error.
///
/// # Errors
/// [`ServeError`] when initialization fails or the serving task dies.
///
/// # Security
/// Every call runs as `actor`: use it for a connection owned by that user (a client that
/// started this process), never for one shared between users.
pub async fn serve_stdio(runtime: Arc<Runtime>, actor: Actor) -> Result<(), ServeError> {
    let running = match McpServer::local(runtime, actor)
        .serve(rmcp::transport::stdio())
        .await
    {
        Ok(running) => running,
        // The client left before making a request (e.g. it only probed `server/discover`):
        // nothing went wrong.
        Err(ServerInitializeError::ConnectionClosed(during)) => {
            tracing::debug!(%during, "mcp client closed stdin before any request");
            return Ok(());
        }
        Err(error) => return Err(ServeError::Initialize(error.to_string())),
    };
    let reason = running
        .waiting()
        .await
        .map_err(|e| ServeError::Task(e.to_string()))?;
    tracing::debug!(?reason, "mcp stdio server stopped");
    Ok(())
}
