//! An operator approving a plugin's tools again after their definitions changed (a bridged MCP
//! server that rewrote a tool after install): the approval is recorded in the audit log, and
//! the plugin is loaded again so the tools it serves are exactly the approved ones.

use serde::Serialize;
use sigil_audit::{Actor, NewRecord, Verdict};

use super::Runtime;
use super::control::ControlError;
use crate::manager::PluginSummary;

/// What an approval changed.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// The tools whose definitions were approved (changed or new since the last approval).
    /// Empty when nothing was held.
    pub approved: Vec<String>,
    /// The plugin afterwards.
    pub plugin: PluginSummary,
}

impl Runtime {
    /// `actor` approves plugin `id`'s tools as they are defined now: held tools are released
    /// and serve calls with their new definitions. The approval, with the tools it covers, is
    /// an audit record; when anything was approved, the plugin is loaded again so its schemas
    /// are the approved ones.
    ///
    /// Decides nothing about who may approve: a front end asks the enforcer first (the HTTP
    /// gateway checks `admin.plugins`). Blocks while the plugin loads.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::WrongState`] unless it is loaded,
    /// [`ControlError::Approval`] when the plugin could not record the approval, or the errors
    /// of [`Runtime::reload`].
    pub fn approve_tools(&self, id: &str, actor: &Actor) -> Result<Approval, ControlError> {
        let entry = self
            .manager
            .get(id)
            .ok_or_else(|| ControlError::UnknownPlugin(id.to_string()))?;
        let Some(plugin) = entry.plugin.clone() else {
            return Err(ControlError::WrongState {
                plugin: id.to_string(),
                state: entry.lifecycle().state(),
                hint: "only a loaded plugin's tools can be approved",
            });
        };
        // Recorded before it takes effect: an approval the log does not hold never happens.
        let held: Vec<String> = plugin.held().into_iter().map(|h| h.tool).collect();
        let rule = if held.is_empty() {
            "operator approval: nothing was held".to_string()
        } else {
            format!(
                "operator approved the current definitions of: {}",
                held.join(", ")
            )
        };
        let record = NewRecord::decision(Verdict::Allow, rule)
            .with_actor(actor.clone())
            .with_plugin(id, Some(entry.manifest().version().to_string().as_str()))
            .with_capability("admin.plugins");
        self.audit
            .append(record)
            .map_err(|e| ControlError::Approval {
                plugin: id.to_string(),
                reason: format!("the approval could not be recorded in the audit log: {e}"),
            })?;
        let approved = plugin.approve().map_err(|reason| ControlError::Approval {
            plugin: id.to_string(),
            reason,
        })?;
        // A disabled plugin stays disabled: its next generation loads with the new approval.
        let plugin = if approved.is_empty() || self.disabled().contains(id) {
            entry.summary()
        } else {
            self.reload(id)?
        };
        Ok(Approval { approved, plugin })
    }
}
