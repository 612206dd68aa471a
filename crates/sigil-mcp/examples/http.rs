//! Serves Sigil's MCP endpoint at `http://ADDR/mcp` behind a minimal bearer-token layer: the
//! shape a gateway gives it.
//!
//! ```text
//! SIGIL_HOME=/tmp/demo SIGIL_MCP_TOKENS="secret-a=alice,secret-m=mallory" \
//!     cargo run -p sigil-mcp --example http -- 127.0.0.1:8080
//! ```
//!
//! Each `TOKEN=USER` pair maps a bearer token to a user of sigil.toml (workspace: the
//! configured default). A request without a known token gets 401 before it reaches the
//! service. The address is printed on standard output once the server listens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sigil_runtime::{Actor, Home, Runtime};

#[derive(Clone)]
struct Tokens {
    users: Arc<HashMap<String, String>>,
    workspace: Option<String>,
}

/// The gateway's duty towards the MCP service: authenticate, then put the caller's actor into
/// the request's extensions.
async fn authenticate(State(tokens): State<Tokens>, mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| tokens.users.get(token))
        .cloned();
    let Some(user) = user else {
        return (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        )
            .into_response();
    };
    request.extensions_mut().insert(Actor {
        user: Some(user),
        workspace: tokens.workspace.clone(),
        session: None,
        channel: Some("mcp".into()),
    });
    next.run(request).await
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let users = std::env::var("SIGIL_MCP_TOKENS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(token, user)| (token.to_string(), user.to_string()))
        .collect::<HashMap<_, _>>();
    let runtime =
        Arc::new(Runtime::open(Home::resolve(None).unwrap(), sigil_builtins::all()).unwrap());
    let tokens = Tokens {
        users: Arc::new(users),
        workspace: runtime.config().default_workspace().map(str::to_string),
    };
    let app = axum::Router::new()
        .nest_service("/mcp", sigil_mcp::http_service(runtime))
        .layer(middleware::from_fn_with_state(tokens, authenticate));
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    println!("http://{}/mcp", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}
