//! `GET /health` and `GET /openapi.json`: the two routes that need no token.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::schema::Health;
use crate::state::AppState;

/// Whether the daemon is up. Needs no token.
#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The daemon serves requests.", body = Health))
)]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// This document: OpenAPI 3.1, generated from the code. Needs no token.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", body = Object, content_type = "application/json"))
)]
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    match state.inner.openapi.get() {
        Some(document) => {
            ([(CONTENT_TYPE, "application/json")], document.to_string()).into_response()
        }
        None => ApiError::internal(&"the OpenAPI document was not built").into_response(),
    }
}
