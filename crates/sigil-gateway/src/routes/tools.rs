//! `/v1/tools`: list and invoke.
//!
//! An invocation goes through the runtime's one dispatch path with the request's actor: the
//! enforcer checks `tool.<plugin>.<tool>` for that user and workspace and records the
//! decision, then the call runs and its outcome is recorded.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;
use sigil_audit::Actor;
use sigil_runtime::InvokeError;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, PathParams};
use crate::schema::{InvocationBody, ToolBody, ToolList};
use crate::state::AppState;

/// Every tool of every running plugin.
#[utoipa::path(
    get,
    path = "/v1/tools",
    tag = "tools",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tools.", body = ToolList),
        (status = 400, description = "Bad X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The user does not belong to the workspace the request names.", body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<ToolList> {
    let tools = state
        .runtime()
        .tools()
        .into_iter()
        .map(|t| {
            let blast = t
                .blast_radius
                .as_ref()
                .and_then(|b| serde_json::to_value(b).ok());
            let approval = state.runtime().approval_required(&t.plugin, &t.tool.name);
            ToolBody::new(&t.plugin, &t.tool, blast).with_approval(approval)
        })
        .collect();
    Json(ToolList { tools })
}

/// Calls a tool with a JSON input, on behalf of the token's user, through the enforcer
/// (`tool.<plugin>.<tool>`) and the audit log. A tool whose blast radius matches
/// `approvals.require` waits for a person's decision (`GET /v1/approvals`) before it runs.
#[utoipa::path(
    post,
    path = "/v1/tools/{plugin}/{tool}/invoke",
    tag = "tools",
    security(("bearer" = [])),
    params(
        ("plugin" = String, Path, description = "The plugin id.", example = "text"),
        ("tool" = String, Path, description = "The tool.", example = "sha256"),
    ),
    request_body(content = Object, description = "The tool's input, matching its input schema.", content_type = "application/json", example = json!({ "text": "hello" })),
    responses(
        (status = 200, description = "The tool's result.", body = InvocationBody),
        (status = 400, description = "Bad JSON, tool name or X-Sigil-Workspace.", body = ErrorBody),
        (status = 401, description = "Missing or invalid token.", body = ErrorBody),
        (status = 403, description = "The enforcer or a before-hook denied the call, or it needed a person's approval and was denied or timed out (`approval_denied`); recorded.", body = ErrorBody),
        (status = 404, description = "No such plugin or tool.", body = ErrorBody),
        (status = 409, description = "The plugin is not running, the tool is held for approval, or a hook asks for an operator's approval of the call.", body = ErrorBody),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
        (status = 422, description = "The input does not match the tool's schema, or the tool failed.", body = ErrorBody),
        (status = 503, description = "The call's record could not be written to the audit log.", body = ErrorBody),
    )
)]
pub(crate) async fn invoke(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PathParams((plugin, tool)): PathParams<(String, String)>,
    Body(input): Body<Value>,
) -> Result<Json<InvocationBody>, ApiError> {
    if state.runtime().manager().get(&plugin).is_none() {
        return Err(ApiError::not_found(
            "unknown_plugin",
            format!("no plugin `{plugin}`; GET /v1/plugins lists them"),
        ));
    }
    let target = format!("{plugin}/{tool}");
    let invocation = state
        .runtime()
        .invoke(&actor, &target, input)
        .await
        .map_err(invoke_error)?;
    Ok(Json(InvocationBody {
        call_id: invocation.call_id,
        output: invocation.output,
        duration_us: u64::try_from(invocation.duration.as_micros()).unwrap_or(u64::MAX),
    }))
}

fn invoke_error(error: InvokeError) -> ApiError {
    let code = error.code();
    let status = match &error {
        InvokeError::BadTarget(_) => StatusCode::BAD_REQUEST,
        InvokeError::Denied { .. }
        | InvokeError::ApprovalDenied { .. }
        | InvokeError::HookDenied { .. } => StatusCode::FORBIDDEN,
        InvokeError::NotRunning { .. } | InvokeError::Held { .. } => StatusCode::CONFLICT,
        InvokeError::UnknownTool { .. } => StatusCode::NOT_FOUND,
        InvokeError::InvalidArguments { .. } | InvokeError::Failed { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        InvokeError::Audit(cause) => {
            tracing::error!(%cause, "tool call outcome not recorded");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                "the call's record could not be written to the audit log; the daemon's log has the details",
            );
        }
    };
    ApiError::new(status, code, error.to_string())
}
