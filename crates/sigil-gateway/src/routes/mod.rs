//! The API's handlers, one module per concern. Each handler's `#[utoipa::path]` is the route's
//! documentation in the OpenAPI document; `crate::router` mounts them with `routes!`, so a
//! route cannot exist without being documented.

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod meta;
pub(crate) mod plugins;
pub(crate) mod tools;

use sigil_runtime::ControlError;

use crate::error::ApiError;

pub(crate) fn control_error(error: ControlError) -> ApiError {
    let message = error.to_string();
    match error {
        ControlError::UnknownPlugin(_) => ApiError::not_found("unknown_plugin", message),
        ControlError::WrongState { .. } => ApiError::conflict("wrong_state", message),
        ControlError::Builtin(_) => ApiError::conflict("builtin_plugin", message),
        ControlError::LoadFailed { .. } => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "load_failed",
            message,
        ),
        ControlError::Approval { .. } => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "approval_failed",
            message,
        ),
        ControlError::Config(e) => ApiError::internal(&e),
        // The data directory's state file: a path and an I/O error, for the daemon's log.
        ControlError::StateFile { .. } => ApiError::internal(&message),
    }
}

/// Runs blocking work (file copies, loading a plugin) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(&e))?
}
