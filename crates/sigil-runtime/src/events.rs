//! What happens in a running runtime, as a stream for watchers: plugin state changes, every
//! recorded policy decision, and calls waiting for a person's approval.
//!
//! Events are a convenience view; the audit log stays the record. A decision event is published
//! only after its audit record has been committed, and carries that record's sequence number. A
//! subscriber that falls behind by more than [`CAPACITY`] events loses the oldest ones and is told
//! how many (`tokio::sync::broadcast` semantics); nothing waits for slow subscribers.

use serde::Serialize;
use sigil_audit::{Actor, Verdict};
use tokio::sync::broadcast;

use crate::approval_rules::{ApprovalDecision, PendingApproval};
use crate::lifecycle::State;

/// How many events a subscriber may fall behind before it loses the oldest.
pub const CAPACITY: usize = 4096;

/// Something that happened in the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A plugin moved between lifecycle states at run time (enable, disable, reload, install).
    PluginState {
        /// The plugin.
        plugin: String,
        /// The state it left.
        from: State,
        /// The state it is in now.
        to: State,
        /// Why, when it is in the error state.
        error: Option<String>,
    },
    /// A plugin was removed from the runtime.
    PluginRemoved {
        /// The plugin.
        plugin: String,
    },
    /// A hot reload (the plugin's files changed) did not load; the running generation keeps
    /// serving.
    ReloadFailed {
        /// The plugin.
        plugin: String,
        /// Why the new generation did not load.
        error: String,
    },
    /// A new configuration (`sigil.toml` and the plugins' secret fields) is in force.
    ConfigChanged {
        /// The plugins whose own configuration changed; their next calls see it.
        plugins: Vec<String>,
    },
    /// A configuration change was rejected; the configuration in force stays.
    ConfigRejected {
        /// Why, naming the file, plugin, place and rule, never a value.
        error: String,
    },
    /// The enforcer decided, and the decision's audit record is committed.
    Decision {
        /// The audit record's sequence number.
        seq: u64,
        /// The plugin concerned, if any.
        plugin: Option<String>,
        /// The capability decided.
        capability: String,
        /// Allowed or denied.
        decision: Verdict,
        /// The rule that decided.
        rule: String,
        /// On whose behalf.
        actor: Actor,
        /// The tool call the decision belongs to, if any.
        call_id: Option<String>,
    },
    /// A call waits for a person's approval; its request is recorded in the audit log.
    ApprovalRequested {
        /// The pending approval, as `GET /v1/approvals` lists it.
        approval: PendingApproval,
    },
    /// A pending approval was decided, or timed out (denied); the decision is recorded.
    ApprovalDecided {
        /// The approval.
        id: String,
        /// The call it held.
        call_id: String,
        /// The plugin called.
        plugin: String,
        /// The tool called.
        tool: String,
        /// Who made the call.
        actor: Actor,
        /// Approved or denied.
        decision: ApprovalDecision,
        /// The user who decided; `None` when the call timed out or its caller went away.
        decided_by: Option<String>,
        /// The recorded rule, e.g. `approved by alice` or `timed out after 300000 ms`.
        rule: String,
    },
}

impl Event {
    /// A short name for the kind of event (`plugin_state`, `plugin_removed`, `reload_failed`,
    /// `config_changed`, `config_rejected`, `decision`, `approval_requested`, `approval_decided`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::PluginState { .. } => "plugin_state",
            Event::PluginRemoved { .. } => "plugin_removed",
            Event::ReloadFailed { .. } => "reload_failed",
            Event::ConfigChanged { .. } => "config_changed",
            Event::ConfigRejected { .. } => "config_rejected",
            Event::Decision { .. } => "decision",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalDecided { .. } => "approval_decided",
        }
    }
}

/// The runtime's event hub. Publishing never blocks and costs next to nothing without
/// subscribers.
#[derive(Debug, Clone)]
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    /// A hub with no subscribers.
    pub fn new() -> Events {
        let (sender, _) = broadcast::channel(CAPACITY);
        Events { sender }
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Whether anyone subscribes now: an event nobody would receive need not be built.
    pub fn is_watched(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Publishes `event` to the current subscribers, if any.
    pub fn publish(&self, event: Event) {
        // An error only means nobody is listening.
        let _ = self.sender.send(event);
    }
}
