//! `/v1/workspaces` and `/v1/users`: the configuration in force, from `sigil.toml`.

use axum::extract::State;
use axum::{Extension, Json};
use sigil_audit::Actor;
use sigil_policy::CapabilitySet;

use crate::error::ErrorBody;
use crate::schema::{UserBody, UserList, WorkspaceBody, WorkspaceList};
use crate::state::AppState;

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

/// The users of sigil.toml with their permissions, and which one this request acts as.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "config",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The users.", body = UserList),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
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
            })
            .collect(),
        me: actor.user.unwrap_or_default(),
    })
}
