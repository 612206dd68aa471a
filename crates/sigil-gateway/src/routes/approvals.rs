//! `/v1/approvals`: calls waiting for a person's approval (`[approvals]` in sigil.toml), and
//! their decisions.
//!
//! An approval belongs to the workspace of the call it holds. Listing needs a valid token: a
//! user sees its own calls' approvals and those of the workspaces where it holds
//! `approvals.decide`. Deciding needs `approvals.decide` in the call's workspace, whatever
//! `X-Sigil-Workspace` names (an enforcer decision, recorded); the decision itself is an audit
//! record too, written before the call learns it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use sigil_audit::Actor;
use sigil_runtime::{ApprovalDecision, ApprovalError};

use crate::error::{ApiError, ErrorBody};
use crate::extract::PathParams;
use crate::schema::{ApprovalList, DecideRequest, DecisionBody, PendingApprovalBody};
use crate::state::AppState;

/// The calls waiting for a decision: the caller's own, and those made in workspaces where the
/// caller holds `approvals.decide`.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approvals",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The pending approvals, oldest first.", body = ApprovalList),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Json<ApprovalList> {
    // A listing is not an action: asked without recording, once per workspace.
    let mut decides = std::collections::BTreeMap::new();
    let approvals = state
        .runtime()
        .pending_approvals()
        .into_iter()
        .filter(|a| {
            let own = a.actor.user.is_some() && a.actor.user == actor.user;
            own || *decides
                .entry(a.actor.workspace.clone())
                .or_insert_with(|| state.may_decide_in(&actor, a.actor.workspace.as_deref()))
        })
        .map(PendingApprovalBody::from)
        .collect();
    Json(ApprovalList { approvals })
}

/// Approves a pending call: it goes on. Needs `approvals.decide` in the workspace of the call
/// (not the one `X-Sigil-Workspace` names); the user who made the call cannot approve it
/// unless `approvals.allow_self_approval` is set. Body (optional): `{"reason": "..."}`.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    tag = "approvals",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The approval id.")),
    request_body(content = Option<DecideRequest>, description = "Optional: why.", content_type = "application/json"),
    responses(
        (status = 200, description = "Approved and recorded; the call goes on.", body = DecisionBody),
        (status = 400, description = "Bad body or X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `approvals.decide` in the call's workspace, or made the call.", body = ErrorBody),
        (status = 404, description = "No such pending approval.", body = ErrorBody),
        (status = 409, description = "Already decided or timed out.", body = ErrorBody),
        (status = 503, description = "The decision could not be recorded; the call is denied.", body = ErrorBody),
    )
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
    body: Bytes,
) -> Result<Json<DecisionBody>, ApiError> {
    decide(state, actor, id, ApprovalDecision::Approve, &body).await
}

/// Denies a pending call: it fails with `approval_denied`. Needs `approvals.decide` in the
/// workspace of the call. Body (optional): `{"reason": "..."}`.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/deny",
    tag = "approvals",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The approval id.")),
    request_body(content = Option<DecideRequest>, description = "Optional: why.", content_type = "application/json"),
    responses(
        (status = 200, description = "Denied and recorded; the call fails.", body = DecisionBody),
        (status = 400, description = "Bad body or X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `approvals.decide` in the call's workspace.", body = ErrorBody),
        (status = 404, description = "No such pending approval.", body = ErrorBody),
        (status = 409, description = "Already decided or timed out.", body = ErrorBody),
        (status = 503, description = "The decision could not be recorded; the call is denied.", body = ErrorBody),
    )
)]
pub(crate) async fn deny(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams(id): PathParams<String>,
    body: Bytes,
) -> Result<Json<DecisionBody>, ApiError> {
    decide(state, actor, id, ApprovalDecision::Deny, &body).await
}

async fn decide(
    state: AppState,
    actor: Actor,
    id: String,
    decision: ApprovalDecision,
    body: &[u8],
) -> Result<Json<DecisionBody>, ApiError> {
    // The body is optional: an empty one (or whitespace) gives no reason.
    let request: DecideRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DecideRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("the body must be empty or {{\"reason\": \"...\"}}: {e}"),
            )
        })?
    };
    // The runtime decides in the workspace of the call, asking the enforcer for
    // `approvals.decide` there (recorded).
    let decided = state
        .runtime()
        .decide_approval(&id, decision, &actor, request.reason.as_deref())
        .await
        .map_err(approval_error)?;
    Ok(Json(DecisionBody {
        id: decided.approval.id,
        call_id: decided.approval.call_id,
        decision: match decided.decision {
            ApprovalDecision::Approve => "approve",
            ApprovalDecision::Deny => "deny",
        }
        .to_string(),
        rule: decided.rule,
        seq: decided.seq,
    }))
}

fn approval_error(error: ApprovalError) -> ApiError {
    let message = error.to_string();
    match error {
        ApprovalError::NotFound(_) => ApiError::not_found("approval_not_found", message),
        ApprovalError::AlreadyDecided { .. } => ApiError::conflict("approval_decided", message),
        ApprovalError::OwnCall { .. } => ApiError::new(StatusCode::FORBIDDEN, "own_call", message),
        ApprovalError::Forbidden { .. } => ApiError::forbidden(message),
        ApprovalError::Audit(cause) => {
            tracing::error!(%cause, "approval decision not recorded");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "the decision could not be recorded in the audit log, so the call is denied; the daemon's log has the details",
            )
        }
    }
}
