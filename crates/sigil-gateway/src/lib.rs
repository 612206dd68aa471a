//! Sigil's HTTP gateway: the API `sigil serve` runs. REST routes over the runtime, server-sent
//! events, bearer-token authentication mapped to the users of `sigil.toml`, JSON errors, and
//! an OpenAPI 3.1 document generated from the handlers.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::sync::Arc;
//!
//! use sigil_gateway::{Gateway, TokenStore};
//! use sigil_runtime::{Home, Runtime};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let home = Home::resolve(Some(dir.path()))?;
//! let tokens = TokenStore::open(&home.database_path())?;
//! let token = tokens.create("local", Some("example"))?;
//! let runtime = Arc::new(Runtime::open(home, Vec::new())?);
//!
//! let threads = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! let listener = threads.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
//! let address = listener.local_addr()?;
//! let gateway = Gateway::builder(runtime.clone(), tokens).build();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = threads.spawn(gateway.serve(listener, async move {
//!     let _ = stopped.await;
//! }));
//!
//! // Every route but /health and /openapi.json needs the token.
//! let mut stream = std::net::TcpStream::connect(address)?;
//! write!(
//!     stream,
//!     "GET /v1/plugins HTTP/1.1\r\nHost: sigil\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
//!     token.secret
//! )?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
//!
//! // Shut down: stop accepting, let requests finish, then close the audit log.
//! let _ = stop.send(());
//! threads.block_on(server)??;
//! if let Ok(runtime) = Arc::try_unwrap(runtime) {
//!     runtime.close()?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layers, in order
//!
//! 1. Routing. An unknown path is a JSON 404 (`not_found`), a known path with the wrong
//!    method a JSON 405 (`method_not_allowed`).
//! 2. `GET /health` and `GET /openapi.json` answer without authentication.
//! 3. Every other route, and every service mounted with [`GatewayBuilder::nest_service`] or
//!    [`GatewayBuilder::merge_authenticated`], sits behind the authentication layer: it puts
//!    the request's [`sigil_audit::Actor`] into the request's extensions, or answers 401, or
//!    403 `workspace_forbidden` (recorded) when the user does not belong to the workspace the
//!    request names.
//! 4. The handler asks the enforcer, with that actor, for what the operation needs
//!    (`tool.<plugin>.<tool>` for an invocation, `admin.plugins` for plugin management,
//!    `admin.audit` for the audit log, `approvals.decide` in the held call's workspace to
//!    approve or deny it); each decision is recorded, a deny is a 403.
//!
//! # Security
//!
//! Tokens are stored as SHA-256 hashes ([`TokenStore`]). Errors never carry internal details:
//! a failure inside the gateway is logged and answered with code `internal`. The gateway binds
//! where it is told; `sigil serve` defaults to loopback. It speaks plain HTTP: put it behind a
//! TLS-terminating proxy before exposing it beyond the machine.

#![forbid(unsafe_code)]

mod auth;
mod daemon;
mod error;
mod extract;
pub mod install;
mod routes;
mod schema;
mod state;
mod tokens;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use sigil_runtime::Runtime;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::auth::{CHANNEL, TokenId, WORKSPACE_HEADER};
pub use crate::daemon::{DAEMON_FILE, DaemonFileError, DaemonInfo};
pub use crate::error::{ApiError, ErrorBody, ErrorDetail};
pub use crate::state::{ADMIN_AUDIT, ADMIN_PLUGINS, APPROVALS_DECIDE};
pub use crate::tokens::{NewToken, TOKEN_PREFIX, TokenError, TokenInfo, TokenStore};

use crate::routes::{approvals, audit, config, events, meta, plugins, tools};
use crate::state::{AppState, Shared};

/// The gateway, ready to serve. Build one with [`Gateway::builder`].
#[derive(Debug)]
pub struct Gateway {
    router: Router,
    runtime: Arc<Runtime>,
    shutdown: watch::Sender<bool>,
    openapi: Arc<String>,
}

/// Configures a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    runtime: Arc<Runtime>,
    tokens: TokenStore,
    reserved: Vec<String>,
    authenticated: Router,
}

impl Gateway {
    /// A gateway over `runtime`, authenticating with `tokens`.
    pub fn builder(runtime: Arc<Runtime>, tokens: TokenStore) -> GatewayBuilder {
        GatewayBuilder {
            runtime,
            tokens,
            reserved: Vec::new(),
            authenticated: Router::new(),
        }
    }

    /// The complete router, for embedding in another server.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The OpenAPI 3.1 document, as served at `/openapi.json`.
    pub fn openapi_json(&self) -> &str {
        &self.openapi
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, ends event
    /// streams, denies the calls waiting for an approval (recorded), and returns once every
    /// request in flight has been answered (tool calls finish or hit their deadline). Close the
    /// runtime after this returns.
    ///
    /// # Errors
    /// When accepting connections fails for good.
    ///
    /// # Security
    /// While serving, the listener's address is protected ([`sigil_egress::protect_listener`]):
    /// no plugin connection reaches it, whatever the plugin is granted.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Gateway {
            router,
            runtime,
            shutdown: stop,
            ..
        } = self;
        // No plugin connection reaches the API it is served behind, whatever it is granted.
        let _protected = sigil_egress::protect_listener(listener.local_addr()?);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing requests in flight");
            let _ = stop.send(true);
            // Calls waiting for a person would hold the shutdown until their timeout.
            let denied = runtime
                .deny_pending_approvals("denied: the daemon is shutting down")
                .await;
            if denied > 0 {
                tracing::info!(denied, "pending approvals denied at shutdown");
            }
        };
        axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await
    }
}

impl GatewayBuilder {
    /// Command names plugins may not contribute (checked when installing through the API).
    pub fn reserved_commands(mut self, names: Vec<String>) -> GatewayBuilder {
        self.reserved = names;
        self
    }

    /// Mounts `service` at `path` behind the authentication layer: the service finds the
    /// caller's [`sigil_audit::Actor`] in each request's extensions. For the MCP endpoint at
    /// `/mcp`.
    pub fn nest_service<S>(mut self, path: &str, service: S) -> GatewayBuilder
    where
        S: tower::Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.authenticated = self.authenticated.nest_service(path, service);
        self
    }

    /// Adds routes behind the authentication layer.
    pub fn merge_authenticated(mut self, routes: Router) -> GatewayBuilder {
        self.authenticated = self.authenticated.merge(routes);
        self
    }

    /// Builds the router and the OpenAPI document.
    pub fn build(self) -> Gateway {
        let (stop, shutdown) = watch::channel(false);
        let runtime = self.runtime.clone();
        let state = AppState {
            inner: Arc::new(Shared {
                runtime: self.runtime,
                tokens: Arc::new(self.tokens),
                reserved: self.reserved,
                shutdown,
                install_lock: Mutex::new(()),
                openapi: OnceLock::new(),
            }),
        };
        let (protected, public, document) = api_routes();
        let openapi = Arc::new(document.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialise the OpenAPI document");
            "{}".to_string()
        }));
        let _ = state.inner.openapi.set(openapi.clone());
        let protected = protected
            .with_state(state.clone())
            .merge(self.authenticated)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ));
        let router = public
            .with_state(state)
            .merge(protected)
            .fallback(error::not_found)
            .method_not_allowed_fallback(error::method_not_allowed);
        Gateway {
            router,
            runtime,
            shutdown: stop,
            openapi,
        }
    }
}

/// The OpenAPI 3.1 document of every route, without building a gateway.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().2
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sigil",
        description = "The HTTP API of `sigil serve`: plugins, tools, the audit log, configuration and events. \
Every route but /health and /openapi.json needs `Authorization: Bearer <token>` (create one with \
`sigil token create --user NAME`). Errors are `{\"error\": {\"code\": ..., \"message\": ...}}`.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "meta", description = "Health and this document; no token needed."),
        (name = "plugins", description = "Plugins and their lifecycle; changes need `admin.plugins`."),
        (name = "tools", description = "Tools; a call needs `tool.<plugin>.<tool>`."),
        (name = "approvals", description = "Calls waiting for a person's approval; deciding needs `approvals.decide`."),
        (name = "audit", description = "The audit log; needs `admin.audit`."),
        (name = "config", description = "Workspaces and users from sigil.toml; plugins' configuration and reloads need `admin.config`."),
        (name = "events", description = "Server-sent events."),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sigil_<64 hex digits>")
                    .description(Some(
                        "A token from `sigil token create --user NAME`, acting as that user of sigil.toml.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The protected routes, the public routes and the document describing both.
fn api_routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (protected, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(plugins::list, plugins::install))
        .routes(routes!(plugins::inspect, plugins::remove))
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(plugins::reload))
        .routes(routes!(plugins::approve))
        .routes(routes!(tools::list))
        .routes(routes!(tools::invoke))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::deny))
        .routes(routes!(audit::query))
        .routes(routes!(audit::verify))
        .routes(routes!(config::workspaces))
        .routes(routes!(config::users))
        .routes(routes!(config::plugin_config, config::update_plugin_config))
        .routes(routes!(config::reload))
        .routes(routes!(events::events))
        .split_for_parts();
    let (public, public_document) = OpenApiRouter::new()
        .routes(routes!(meta::health))
        .routes(routes!(meta::openapi))
        .split_for_parts();
    document.merge(public_document);
    (protected, public, document)
}
