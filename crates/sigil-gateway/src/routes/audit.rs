//! `/v1/audit`: query and verify the audit log. Both need `admin.audit`.

use axum::extract::State;
use axum::{Extension, Json};
use sigil_audit::{Actor, Filter, Verdict};

use super::blocking;
use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;
use crate::schema::{AuditQuery, AuditRecord, AuditRecords, VerifyBody};
use crate::state::{ADMIN_AUDIT, AppState};

/// The default and the largest number of records one query returns.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

/// Audit records matching every given filter, the newest `limit`, oldest first. Needs
/// `admin.audit`.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "The records.", body = AuditRecords),
        (status = 400, description = "A filter does not parse, or bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.audit`, or does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn query(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditRecords>, ApiError> {
    let filter = filter(&query)?;
    state.require(&actor, ADMIN_AUDIT).await?;
    let shared = state.inner.clone();
    let records = blocking(move || {
        shared
            .runtime
            .audit()
            .query(&filter)
            .map_err(|e| ApiError::internal(&e))
    })
    .await?;
    Ok(Json(AuditRecords {
        records: records.into_iter().map(AuditRecord::from).collect(),
    }))
}

fn filter(query: &AuditQuery) -> Result<Filter, ApiError> {
    let decision = match query.decision.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<Verdict>()
                .map_err(|e| ApiError::bad_request("invalid_query", format!("decision: {e}")))?,
        ),
    };
    let since = match query.since.as_deref() {
        None => None,
        Some(text) => Some(
            sigil_audit::parse_since(text)
                .map_err(|e| ApiError::bad_request("invalid_query", format!("since: {e}")))?,
        ),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: {limit} is not between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(Filter {
        plugin: query.plugin.clone(),
        user: query.user.clone(),
        decision,
        kind: None,
        since,
        call_id: query.call_id.clone(),
        limit: Some(limit as usize),
    })
}

/// Checks the audit log's hash chain and names the first record edited, deleted or
/// reordered. Needs `admin.audit`.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The verdict; `intact` is false when tampering was found.", body = VerifyBody),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user may not use `admin.audit`, or does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<VerifyBody>, ApiError> {
    state.require(&actor, ADMIN_AUDIT).await?;
    let shared = state.inner.clone();
    let report = blocking(move || {
        shared
            .runtime
            .audit()
            .verify()
            .map_err(|e| ApiError::internal(&e))
    })
    .await?;
    Ok(Json(VerifyBody {
        records: report.records,
        intact: report.problem.is_none(),
        problem: report.problem.map(|p| p.to_string()),
    }))
}
