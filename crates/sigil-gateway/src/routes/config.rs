//! `/v1/workspaces` and `/v1/users`: the configuration in force, from `sigil.toml`;
//! `/v1/plugins/{id}/config` and `/v1/config/reload`: plugins' configuration, changed live.
//!
//! A plugin's configuration is shown with its secret fields as `"<secret>"`; no response, log
//! line or audit record of these routes holds a secret value.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;
use sigil_audit::Actor;
use sigil_policy::CapabilitySet;
use sigil_runtime::ConfigUpdateError;

use super::blocking;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, PathParams};
use crate::schema::{
    ConfigChangeBody, PluginConfigBody, UserBody, UserList, WorkspaceBody, WorkspaceList,
};
use crate::state::{ADMIN_CONFIG, AppState};

fn patterns(set: &CapabilitySet) -> Vec<String> {
    set.patterns().iter().map(ToString::to_string).collect()
}

/// The workspaces of sigil.toml with their allow and deny lists.
#[utoipa::path(
    get,
    path = "/v1/workspaces",
    tag = "config",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workspaces.", body = WorkspaceList),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn workspaces(State(state): State<AppState>) -> Json<WorkspaceList> {
    let config = state.runtime().config();
    let default = config.default_workspace();
    Json(WorkspaceList {
        workspaces: config
            .workspaces()
            .iter()
            .map(|(name, scope)| WorkspaceBody {
                name: name.clone(),
                allow: patterns(&scope.allow),
                deny: patterns(&scope.deny),
                default: default == Some(name.as_str()),
            })
            .collect(),
    })
}

/// The users of sigil.toml with their permissions and workspaces, and which one this request
/// acts as.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "config",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The users.", body = UserList),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn users(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Json<UserList> {
    let config = state.runtime().config();
    Json(UserList {
        users: config
            .users()
            .iter()
            .map(|(name, scope)| UserBody {
                name: name.clone(),
                permissions: patterns(&scope.allow),
                deny: patterns(&scope.deny),
                workspaces: config.user_workspaces(name).to_vec(),
            })
            .collect(),
        me: actor.user.unwrap_or_default(),
    })
}

fn update_error(error: ConfigUpdateError) -> ApiError {
    let message = error.to_string();
    match error {
        ConfigUpdateError::UnknownPlugin(_) => ApiError::not_found("unknown_plugin", message),
        ConfigUpdateError::Invalid { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", message)
        }
        ConfigUpdateError::NotSecret { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_secret", message)
        }
        ConfigUpdateError::Rejected(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "config_rejected", message)
        }
        ConfigUpdateError::Storage(_) => ApiError::internal(&message),
    }
}

/// A plugin's configuration as in force, with each stored secret field as `"<secret>"`.
/// Needs `admin.config`.
#[utoipa::path(
    get,
    path = "/v1/plugins/{id}/config",
    tag = "config",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "The configuration, secrets redacted.", body = PluginConfigBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.config`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
    )
)]
pub(crate) async fn plugin_config(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PluginConfigBody>, ApiError> {
    state.require(&actor, ADMIN_CONFIG).await?;
    let config = state
        .runtime()
        .plugin_config_redacted(&id)
        .map_err(update_error)?;
    Ok(Json(PluginConfigBody { plugin: id, config }))
}

/// Replaces a plugin's configuration with the body (a JSON object), validated against the
/// plugin's config schema first: an invalid one is refused with every schema error and nothing
/// changes. Secret fields are stored encrypted, never in sigil.toml; `"<secret>"` keeps a
/// stored value, and a secret field left out is removed. The rest is written into sigil.toml
/// (comments and other tables kept), and the plugin's next call sees the new configuration.
/// Needs `admin.config`.
#[utoipa::path(
    put,
    path = "/v1/plugins/{id}/config",
    tag = "config",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    request_body(content = Object, description = "The new configuration."),
    responses(
        (status = 200, description = "In force.", body = ConfigChangeBody),
        (status = 400, description = "Bad JSON or X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.config`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
        (status = 422, description = "The configuration does not fit the plugin's schema, or sigil.toml as it is now is invalid; nothing changed.", body = ErrorBody),
    )
)]
pub(crate) async fn update_plugin_config(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
    Body(config): Body<Value>,
) -> Result<Json<ConfigChangeBody>, ApiError> {
    state.require(&actor, ADMIN_CONFIG).await?;
    let shared = state.inner.clone();
    let change = blocking(move || {
        shared
            .runtime
            .update_plugin_config(&id, config, &actor)
            .map_err(update_error)
    })
    .await?;
    Ok(Json(change.into()))
}

/// Reads sigil.toml again and puts it in force: plugins' configuration, workspaces, users and
/// denies. An invalid file is refused with its errors and the configuration in force stays.
/// Needs `admin.config`.
#[utoipa::path(
    post,
    path = "/v1/config/reload",
    tag = "config",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "In force (or unchanged).", body = ConfigChangeBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.config`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 422, description = "sigil.toml is invalid; the configuration in force stays.", body = ErrorBody),
    )
)]
pub(crate) async fn reload(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<ConfigChangeBody>, ApiError> {
    state.require(&actor, ADMIN_CONFIG).await?;
    let shared = state.inner.clone();
    let change = blocking(move || {
        shared
            .runtime
            .reload_config(&actor)
            .map_err(|e| update_error(ConfigUpdateError::Rejected(e)))
    })
    .await?;
    Ok(Json(change.into()))
}
