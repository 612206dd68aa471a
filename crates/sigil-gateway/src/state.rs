//! What every handler shares, and the capability check management routes make.

use std::sync::{Arc, Mutex, OnceLock};

use sigil_audit::Actor;
use sigil_policy::{Capability, Decision};
use sigil_runtime::Runtime;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::tokens::TokenStore;

/// Needed to install, enable, disable, reload and remove plugins.
pub const ADMIN_PLUGINS: &str = "admin.plugins";
/// Needed to read and change plugins' configuration and to reload sigil.toml.
pub const ADMIN_CONFIG: &str = sigil_runtime::ADMIN_CONFIG;
/// Needed to query and verify the audit log, and to watch every user's decisions.
pub const ADMIN_AUDIT: &str = "admin.audit";
/// Needed, in the workspace of a call waiting for a person's approval, to approve or deny it
/// and to see it pending.
pub const APPROVALS_DECIDE: &str = sigil_runtime::APPROVALS_DECIDE;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) inner: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tokens: Arc<TokenStore>,
    pub(crate) reserved: Vec<String>,
    /// Becomes `true` when the gateway starts shutting down: event streams end.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Installs and removals touch the same files: one at a time.
    pub(crate) install_lock: Mutex<()>,
    /// The OpenAPI document, serialised once.
    pub(crate) openapi: OnceLock<Arc<String>>,
}

impl AppState {
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Asks the enforcer whether the actor may use `capability` (recorded). A deny is a 403.
    pub(crate) async fn require(&self, actor: &Actor, capability: &str) -> Result<(), ApiError> {
        let parsed = Capability::parse(capability).map_err(|e| ApiError::internal(&e))?;
        match self.runtime().enforcer().check_actor(&parsed, actor).await {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { rule } => Err(ApiError::forbidden(format!(
                "user `{}` in workspace `{}` may not use `{capability}`: {rule}",
                actor.user.as_deref().unwrap_or("-"),
                actor.workspace.as_deref().unwrap_or("-"),
            ))),
        }
    }

    /// Whether the actor holds `capability`, recorded like any decision.
    pub(crate) async fn holds(&self, actor: &Actor, capability: &str) -> bool {
        self.require(actor, capability).await.is_ok()
    }

    /// Whether the actor would hold `capability` now, asked without recording: for listings
    /// and for connections checking again that what allowed them still holds.
    pub(crate) fn would_hold(&self, actor: &Actor, capability: &str) -> bool {
        Capability::parse(capability).is_ok_and(|parsed| {
            self.runtime()
                .enforcer()
                .explain_actor(&parsed, actor)
                .is_allowed()
        })
    }

    /// Whether `actor`'s user may decide approvals of calls made in `workspace` (asked without
    /// recording, for listings).
    pub(crate) fn may_decide_in(&self, actor: &Actor, workspace: Option<&str>) -> bool {
        let in_workspace = Actor {
            workspace: workspace.map(str::to_string),
            ..actor.clone()
        };
        self.would_hold(&in_workspace, APPROVALS_DECIDE)
    }
}
