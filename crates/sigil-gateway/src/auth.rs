//! Bearer-token authentication: the layer in front of every route but `/health` and
//! `/openapi.json`.
//!
//! A request passes with `Authorization: Bearer <token>` naming an unrevoked token whose user
//! is in `sigil.toml`, acting in a workspace that user belongs to. The layer then puts the
//! request's [`Actor`] in its extensions: that user, the workspace from `X-Sigil-Workspace`
//! (else the user's own default, [`sigil_runtime::Config::home_workspace`]), channel `http`.
//! A workspace the user does not belong to is refused with 403 `workspace_forbidden`, and the
//! refusal is recorded in the audit log: naming another workspace never escapes the denies of
//! one's own.
//! Everything behind the layer, including services mounted with
//! [`GatewayBuilder::nest_service`](crate::GatewayBuilder::nest_service), reads the actor from
//! there (`request.extensions().get::<sigil_audit::Actor>()`) and passes it to the enforcer.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sigil_audit::Actor;
use sigil_policy::DenyRule;

use crate::error::ApiError;
use crate::state::AppState;

/// The header that picks the workspace a request runs in.
pub const WORKSPACE_HEADER: &str = "x-sigil-workspace";

/// The channel recorded in the audit log for requests over HTTP.
pub const CHANNEL: &str = "http";

/// Who the token belongs to, next to the [`Actor`] in a request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenId(pub String);

pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match actor_for(&state, &request) {
        Ok((actor, token)) => {
            if let Err(rule) = state.runtime().enforcer().check_membership(&actor).await {
                return refused(&state, &actor, &rule).into_response();
            }
            request.extensions_mut().insert(actor);
            request.extensions_mut().insert(token);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

fn actor_for(state: &AppState, request: &Request) -> Result<(Actor, TokenId), ApiError> {
    let missing = || {
        ApiError::unauthorized(
            "unauthenticated",
            "send `Authorization: Bearer <token>`; create a token with `sigil token create --user NAME`",
        )
    };
    let header = request.headers().get(AUTHORIZATION).ok_or_else(missing)?;
    let value = header.to_str().map_err(|_| missing())?;
    let Some((scheme, secret)) = value.trim().split_once(' ') else {
        return Err(missing());
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let invalid = || {
        ApiError::unauthorized(
            "invalid_token",
            "the bearer token is unknown or revoked; see `sigil token list`",
        )
    };
    let token = state
        .inner
        .tokens
        .authenticate(secret.trim())
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(invalid)?;
    let config = state.runtime().config();
    if !config.users().contains_key(&token.user) {
        return Err(ApiError::unauthorized(
            "invalid_token",
            format!(
                "the token's user `{}` is no longer in sigil.toml; revoke it or add [users.{}]",
                token.user, token.user
            ),
        ));
    }
    let workspace = match request.headers().get(WORKSPACE_HEADER) {
        Some(value) => {
            let name = value.to_str().map_err(|_| {
                ApiError::bad_request("unknown_workspace", "X-Sigil-Workspace is not valid text")
            })?;
            if !config.workspaces().contains_key(name) {
                return Err(ApiError::bad_request(
                    "unknown_workspace",
                    format!("X-Sigil-Workspace: no workspace `{name}` in sigil.toml"),
                ));
            }
            name.to_string()
        }
        // A user belonging to no workspace is refused, and recorded, by the membership check.
        None => config
            .home_workspace(&token.user)
            .or(config.default_workspace())
            .map(str::to_string)
            .unwrap_or_default(),
    };
    let actor = Actor {
        user: Some(token.user),
        workspace: Some(workspace),
        session: None,
        channel: Some(CHANNEL.to_string()),
    };
    Ok((actor, TokenId(token.id)))
}

/// The answer to an actor the enforcer refused (already recorded): a 403 naming the workspaces
/// the user may use, or a 503 when the refusal could not be recorded.
fn refused(state: &AppState, actor: &Actor, rule: &DenyRule) -> ApiError {
    if let DenyRule::AuditFailed { error } = rule {
        tracing::error!(%error, "a refused request could not be recorded");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the request could not be recorded in the audit log, so it is refused; the daemon's log has the details",
        );
    }
    let user = actor.user.as_deref().unwrap_or_default();
    let config = state.runtime().config();
    let belongs = config.user_workspaces(user);
    let hint = if belongs.is_empty() {
        format!(
            "user `{user}` belongs to no workspace; add `workspaces = [...]` to [users.{user}] in sigil.toml"
        )
    } else {
        format!(
            "user `{user}` may act in: {}; name one with X-Sigil-Workspace",
            belongs.join(", ")
        )
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        "workspace_forbidden",
        format!("{rule}; {hint}"),
    )
}
