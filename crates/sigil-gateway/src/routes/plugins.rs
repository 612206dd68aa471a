//! `/v1/plugins`: list, inspect, install, enable, disable, reload, remove.
//!
//! Listing and inspecting need a valid token; every change also needs `admin.plugins`,
//! checked by the enforcer and recorded.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use sigil_audit::Actor;

use super::{blocking, control_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, PathParams};
use crate::install::{self, InstallError};
use crate::schema::{
    ApprovalBody, FailureBody, InstallRequest, PluginBody, PluginDetail, PluginList, Removed,
    ToolBody,
};
use crate::state::{ADMIN_PLUGINS, AppState};

/// Every plugin, compiled-in and installed, with its state; and plugin directories that
/// failed validation.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plugins.", body = PluginList),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<PluginList> {
    let manager = state.runtime().manager();
    Json(PluginList {
        plugins: manager.list().into_iter().map(PluginBody::from).collect(),
        failed: manager
            .failures()
            .into_iter()
            .map(|f| FailureBody {
                dir: f.dir.display().to_string(),
                diagnostics: f.diagnostics,
            })
            .collect(),
    })
}

/// One plugin: its state, manifest and tools.
#[utoipa::path(
    get,
    path = "/v1/plugins/{id}",
    tag = "plugins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "The plugin.", body = PluginDetail),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
    )
)]
pub(crate) async fn inspect(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PluginDetail>, ApiError> {
    let entry = state
        .runtime()
        .manager()
        .get(&id)
        .ok_or_else(|| ApiError::not_found("unknown_plugin", format!("no plugin `{id}`")))?;
    let manifest = serde_json::to_value(entry.manifest()).map_err(|e| ApiError::internal(&e))?;
    let tools = entry
        .tools()
        .map(|t| {
            let blast = entry
                .manifest()
                .actions()
                .get(&t.name)
                .and_then(|b| serde_json::to_value(b).ok());
            ToolBody::new(&id, t, blast)
                .with_approval(state.runtime().approval_required(&id, &t.name))
        })
        .collect();
    Ok(Json(PluginDetail {
        plugin: entry.summary().into(),
        manifest,
        tools,
    }))
}

/// Installs a plugin from a directory on the server, consenting to every capability it
/// requests, and starts it. The consent, with the plugin's trust level and signer, is an audit
/// record written before anything is copied. A broken signature, files changed after signing,
/// or a tier the plugin's trust level may not use refuse the install (422). Needs
/// `admin.plugins`.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    security(("bearer" = [])),
    request_body = InstallRequest,
    responses(
        (status = 201, description = "Installed and loaded.", body = PluginBody),
        (status = 400, description = "Bad request: not an absolute directory path, bad JSON or X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.plugins`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 409, description = "Already installed (use `force`), or the id is a compiled-in plugin's.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
        (status = 422, description = "The plugin is invalid or did not load.", body = ErrorBody),
    )
)]
pub(crate) async fn install(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Body(request): Body<InstallRequest>,
) -> Result<(StatusCode, Json<PluginBody>), ApiError> {
    state.require(&actor, ADMIN_PLUGINS).await?;
    let shared = state.inner.clone();
    let summary = blocking(move || {
        let _one_at_a_time = shared
            .install_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let builtins: Vec<String> = shared
            .runtime
            .manager()
            .list()
            .into_iter()
            .filter(|p| p.source == sigil_runtime::Source::Builtin)
            .map(|p| p.id)
            .collect();
        let runtime = &shared.runtime;
        let installed = install::install_dir(
            runtime.home(),
            &PathBuf::from(&request.path),
            request.force,
            &shared.reserved,
            &builtins,
            &|manifest, consent, trust| {
                let record = sigil_runtime::consent_record(&actor, manifest, consent, trust);
                runtime.audit().append(record).map(drop).map_err(|e| e.to_string())
            },
        )
        .map_err(install_error)?;
        tracing::info!(plugin = %installed.id, version = %installed.version, trust = %installed.trust, "plugin installed");
        shared
            .runtime
            .add_directory(&installed.dir)
            .map_err(control_error)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(summary.into())))
}

fn install_error(error: InstallError) -> ApiError {
    let message = error.to_string();
    match error {
        InstallError::BadSource(_) => ApiError::bad_request("bad_source", message),
        InstallError::Invalid { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
        }
        InstallError::Refused(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "install_refused", message)
        }
        InstallError::AlreadyInstalled { .. } => ApiError::conflict("already_installed", message),
        InstallError::Io { .. } | InstallError::NotRecorded(_) => ApiError::internal(&message),
    }
}

/// Serves calls to a stopped plugin again, and clears the record of its disable. Needs
/// `admin.plugins`.
#[utoipa::path(
    post,
    path = "/v1/plugins/{id}/enable",
    tag = "plugins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "Running again.", body = PluginBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.plugins`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
        (status = 409, description = "Not stopped.", body = ErrorBody),
        (status = 422, description = "It did not load.", body = ErrorBody),
    )
)]
pub(crate) async fn enable(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PluginBody>, ApiError> {
    state.require(&actor, ADMIN_PLUGINS).await?;
    let shared = state.inner.clone();
    let summary = blocking(move || shared.runtime.enable(&id).map_err(control_error)).await?;
    Ok(Json(summary.into()))
}

/// Stops serving calls to a running plugin; calls already inside it finish. Lasts until it is
/// enabled, across restarts of the daemon (recorded in the data directory's
/// `state/disabled.json`). Needs `admin.plugins`.
#[utoipa::path(
    post,
    path = "/v1/plugins/{id}/disable",
    tag = "plugins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "Stopped.", body = PluginBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.plugins`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
        (status = 409, description = "Not running.", body = ErrorBody),
    )
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PluginBody>, ApiError> {
    state.require(&actor, ADMIN_PLUGINS).await?;
    let shared = state.inner.clone();
    // Off the async threads: the choice is written to disk and synced first.
    let summary = blocking(move || shared.runtime.disable(&id).map_err(control_error)).await?;
    Ok(Json(summary.into()))
}

/// Loads a plugin again: an installed one afresh from its directory (the old generation
/// serves until the new one has loaded, and stays if it fails), a compiled-in one by a stop
/// and start. Needs `admin.plugins`.
#[utoipa::path(
    post,
    path = "/v1/plugins/{id}/reload",
    tag = "plugins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "Reloaded.", body = PluginBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.plugins`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
        (status = 409, description = "Changing state; try again.", body = ErrorBody),
        (status = 422, description = "The new generation did not load; the old one stays.", body = ErrorBody),
    )
)]
pub(crate) async fn reload(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
) -> Result<Json<PluginBody>, ApiError> {
    state.require(&actor, ADMIN_PLUGINS).await?;
    let shared = state.inner.clone();
    let summary = blocking(move || shared.runtime.reload(&id).map_err(control_error)).await?;
    Ok(Json(summary.into()))
}

/// Approves a plugin's tools as they are defined now: tools held because a bridged MCP server
/// changed them since they were approved serve calls again, with their new definitions. The
/// approval is an audit record naming the tools and the approving user. Needs `admin.plugins`.
#[utoipa::path(
    post,
    path = "/v1/plugins/{id}/approve",
    tag = "plugins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "Approved; `approved` lists what changed.", body = ApprovalBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.plugins`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
        (status = 409, description = "Not loaded, or changing state.", body = ErrorBody),
        (status = 422, description = "The approval could not be recorded, or the approved generation did not load.", body = ErrorBody),
    )
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ApprovalBody>, ApiError> {
    state.require(&actor, ADMIN_PLUGINS).await?;
    let shared = state.inner.clone();
    let approval = blocking(move || {
        shared
            .runtime
            .approve_tools(&id, &actor)
            .map_err(control_error)
    })
    .await?;
    Ok(Json(ApprovalBody {
        approved: approval.approved,
        plugin: approval.plugin.into(),
    }))
}

/// Removes an installed plugin: it stops serving, its authority is withdrawn, its installed
/// directory and its consent in sigil.toml are deleted. Compiled-in plugins cannot be removed.
/// Needs `admin.plugins`.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{id}",
    tag = "plugins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin id.")),
    responses(
        (status = 200, description = "Removed.", body = Removed),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.plugins`, or does not belong to the workspace the request names.", body = ErrorBody),
        (status = 404, description = "No such plugin.", body = ErrorBody),
        (status = 409, description = "A compiled-in plugin.", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Removed>, ApiError> {
    state.require(&actor, ADMIN_PLUGINS).await?;
    let shared = state.inner.clone();
    blocking(move || {
        let _one_at_a_time = shared
            .install_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let source = shared.runtime.remove(&id).map_err(control_error)?;
        let files_deleted = match source {
            sigil_runtime::Source::Directory(dir) => {
                install::uninstall(shared.runtime.home(), &id, &dir).map_err(install_error)?
            }
            sigil_runtime::Source::Builtin => false,
        };
        tracing::info!(plugin = %id, files_deleted, "plugin removed");
        Ok(Json(Removed {
            removed: id,
            files_deleted,
        }))
    })
    .await
}
