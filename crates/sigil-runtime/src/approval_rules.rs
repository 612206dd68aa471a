//! Calls that wait for a person: the operator's rules (`[approvals]` in `sigil.toml`), which
//! tool calls they hold by blast radius, and the registry of pending approvals a front end
//! lists and decides.
//!
//! This module holds no I/O: the audit records and events of each step are written by
//! [`Runtime::await_approval`](crate::Runtime::await_approval) and
//! [`Runtime::decide_approval`](crate::Runtime::decide_approval).
//!
//! A tool whose manifest declares no blast radius (`[actions.<tool>]`) is taken at its widest:
//! network scope, mutating state, irreversible. Not knowing what a tool does is no reason to
//! let it skip an approval the operator asked for.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sigil_audit::Actor;
use sigil_manifest::{BlastRadius, Scope};
use tokio::sync::oneshot;

use crate::config::Config;

/// How long a call waits for a decision when `approvals.timeout_ms` is not set: five minutes.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

/// How many decided approvals are remembered, so deciding one again says it was decided
/// rather than that it never existed.
const REMEMBERED: usize = 1024;

/// One entry of `approvals.require`: which tool calls need a person's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRule {
    /// `irreversible`: the tool's effects cannot be undone (`reversible = false`).
    Irreversible,
    /// `mutates_state`: the tool changes state outside the call.
    MutatesState,
    /// `scope:vm|container|host|network`: the tool's effects reach this far.
    Scope(Scope),
    /// `tool:PLUGIN/TOOL`: this one tool, whatever its blast radius.
    Tool {
        /// The plugin id.
        plugin: String,
        /// The tool.
        tool: String,
    },
}

impl ApprovalRule {
    /// Parses one entry of `approvals.require`.
    ///
    /// # Errors
    /// A sentence naming the entry and what is accepted.
    pub fn parse(text: &str) -> Result<ApprovalRule, String> {
        let expected = "expected `irreversible`, `mutates_state`, `scope:vm|container|host|network` or `tool:PLUGIN/TOOL`";
        match text {
            "irreversible" => return Ok(ApprovalRule::Irreversible),
            "mutates_state" => return Ok(ApprovalRule::MutatesState),
            _ => {}
        }
        if let Some(scope) = text.strip_prefix("scope:") {
            return Scope::ALL
                .iter()
                .find(|s| s.as_str() == scope)
                .map(|s| ApprovalRule::Scope(*s))
                .ok_or_else(|| format!("`{text}`: unknown scope `{scope}`; {expected}"));
        }
        if let Some(target) = text.strip_prefix("tool:") {
            return match target.split_once('/') {
                Some((plugin, tool))
                    if !plugin.is_empty() && !tool.is_empty() && !tool.contains('/') =>
                {
                    Ok(ApprovalRule::Tool {
                        plugin: plugin.to_string(),
                        tool: tool.to_string(),
                    })
                }
                _ => Err(format!(
                    "`{text}`: write the tool as `tool:PLUGIN/TOOL`, e.g. `tool:fs/read_text`"
                )),
            };
        }
        Err(format!("`{text}` is not an approval rule; {expected}"))
    }

    /// Whether a call of `plugin/tool` with this blast radius (`None`: undeclared, taken at its
    /// widest) falls under the rule.
    pub fn matches(&self, plugin: &str, tool: &str, blast: Option<&BlastRadius>) -> bool {
        let widest = BlastRadius {
            scope: Scope::Network,
            mutates_state: true,
            reversible: false,
        };
        let blast = blast.unwrap_or(&widest);
        match self {
            ApprovalRule::Irreversible => !blast.reversible,
            ApprovalRule::MutatesState => blast.mutates_state,
            ApprovalRule::Scope(scope) => blast.scope == *scope,
            ApprovalRule::Tool { plugin: p, tool: t } => p == plugin && t == tool,
        }
    }
}

impl fmt::Display for ApprovalRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApprovalRule::Irreversible => f.write_str("irreversible"),
            ApprovalRule::MutatesState => f.write_str("mutates_state"),
            ApprovalRule::Scope(scope) => write!(f, "scope:{scope}"),
            ApprovalRule::Tool { plugin, tool } => write!(f, "tool:{plugin}/{tool}"),
        }
    }
}

/// What happens to a call that needs an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalMode {
    /// It waits, listed as pending, until someone decides or `approvals.timeout_ms` passes.
    /// The default: a daemon or an embedding application lets people decide.
    Wait,
    /// It is refused at once, recorded: nobody could decide it here (a one-off command
    /// without a daemon).
    Refuse,
}

/// A person's decision on a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// The call goes on.
    Approve,
    /// The call fails with [`InvokeError::ApprovalDenied`](crate::InvokeError::ApprovalDenied).
    Deny,
}

impl fmt::Display for ApprovalDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApprovalDecision::Approve => "approved",
            ApprovalDecision::Deny => "denied",
        })
    }
}

/// A call waiting for a person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    /// The approval's id (a UUID v7), used to decide it.
    pub id: String,
    /// The call it holds; its audit records share this id.
    pub call_id: String,
    /// The plugin called.
    pub plugin: String,
    /// The tool called.
    pub tool: String,
    /// On whose behalf.
    pub actor: Actor,
    /// The call's arguments, as validated against the tool's input schema.
    pub input: Value,
    /// Why it needs an approval: the rules that matched, or what a hook asked.
    pub reason: String,
    /// When it was requested, in Unix milliseconds.
    pub created_ms: i64,
    /// When it is denied unless decided, in Unix milliseconds.
    pub deadline_ms: i64,
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// No pending approval has this id.
    #[error("no pending approval `{0}`; `sigil approvals list` shows the pending ones")]
    NotFound(String),
    /// It was decided already (or timed out).
    #[error("approval `{id}` was already {outcome}")]
    AlreadyDecided {
        /// The approval.
        id: String,
        /// How it ended, e.g. `approved by alice`.
        outcome: String,
    },
    /// The decider made the call: approving one's own call is refused unless
    /// `approvals.allow_self_approval` is set.
    #[error(
        "user `{user}` made call `{call_id}` and cannot approve it; another user holding `approvals.decide` must (or set approvals.allow_self_approval = true in sigil.toml)"
    )]
    OwnCall {
        /// The user.
        user: String,
        /// The call.
        call_id: String,
    },
    /// The decider may not decide approvals in the workspace of the call: it does not hold
    /// `approvals.decide` there, or does not belong to it. Recorded by the enforcer.
    #[error(
        "user `{user}` may not use `approvals.decide` in workspace `{workspace}`, where call `{call_id}` was made: {rule}"
    )]
    Forbidden {
        /// The decider.
        user: String,
        /// The workspace of the call.
        workspace: String,
        /// The call.
        call_id: String,
        /// The rule that refused it.
        rule: String,
    },
    /// The decision could not be recorded in the audit log; the call is denied.
    #[error("the decision could not be recorded in the audit log, so the call is denied: {0}")]
    Audit(String),
}

/// What a waiting call receives.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) decision: ApprovalDecision,
    /// The sentence recorded and told to the caller, e.g. `denied by bob: too risky`.
    pub(crate) rule: String,
}

#[derive(Debug)]
struct Slot {
    approval: PendingApproval,
    answer: oneshot::Sender<Answer>,
}

/// The operator's `[approvals]`, as in force.
#[derive(Debug, Clone)]
struct Policy {
    rules: Vec<ApprovalRule>,
    timeout: Duration,
    allow_self: bool,
}

/// The pending approvals of one runtime, and its rules.
#[derive(Debug)]
pub(crate) struct Approvals {
    policy: Mutex<Policy>,
    mode: Mutex<ApprovalMode>,
    pending: Mutex<BTreeMap<String, Slot>>,
    decided: Mutex<VecDeque<(String, String)>>,
}

impl From<&Config> for Policy {
    fn from(config: &Config) -> Policy {
        Policy {
            rules: config.approval_rules().to_vec(),
            timeout: config.approval_timeout(),
            allow_self: config.allow_self_approval(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent at every step; a panic elsewhere does not spoil them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Approvals {
    pub(crate) fn new(config: &Config) -> Approvals {
        Approvals {
            policy: Mutex::new(Policy::from(config)),
            mode: Mutex::new(ApprovalMode::Wait),
            pending: Mutex::new(BTreeMap::new()),
            decided: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes the rules, timeout and self-approval setting of `config` for calls from now on;
    /// calls already waiting keep their deadline.
    pub(crate) fn reconfigure(&self, config: &Config) {
        *lock(&self.policy) = Policy::from(config);
    }

    pub(crate) fn timeout(&self) -> Duration {
        lock(&self.policy).timeout
    }

    pub(crate) fn mode(&self) -> ApprovalMode {
        *lock(&self.mode)
    }

    pub(crate) fn set_mode(&self, mode: ApprovalMode) {
        *lock(&self.mode) = mode;
    }

    /// Why a call of `plugin/tool` needs an approval, naming each matching rule with its
    /// place in `approvals.require`; `None` when no rule matches.
    pub(crate) fn required(
        &self,
        plugin: &str,
        tool: &str,
        blast: Option<&BlastRadius>,
    ) -> Option<String> {
        let matched: Vec<String> = lock(&self.policy)
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.matches(plugin, tool, blast))
            .map(|(i, rule)| format!("approvals.require[{i}] `{rule}`"))
            .collect();
        if matched.is_empty() {
            return None;
        }
        let declared = if blast.is_some() {
            ""
        } else {
            " (no blast radius declared: taken as network, mutating, irreversible)"
        };
        Some(format!(
            "blast radius matches {}{declared}",
            matched.join(", ")
        ))
    }

    pub(crate) fn insert(&self, approval: PendingApproval) -> oneshot::Receiver<Answer> {
        let (answer, receiver) = oneshot::channel();
        lock(&self.pending).insert(approval.id.clone(), Slot { approval, answer });
        receiver
    }

    /// Every pending approval, oldest first (ids are time-ordered).
    pub(crate) fn pending(&self) -> Vec<PendingApproval> {
        lock(&self.pending)
            .values()
            .map(|s| s.approval.clone())
            .collect()
    }

    /// The pending approval `id`, left pending.
    pub(crate) fn get(&self, id: &str) -> Result<PendingApproval, ApprovalError> {
        let pending = lock(&self.pending);
        match pending.get(id) {
            Some(slot) => Ok(slot.approval.clone()),
            None => {
                drop(pending);
                Err(self.unknown(id))
            }
        }
    }

    /// Takes a pending approval out for `decider` to decide; nobody else can decide it or
    /// time it out afterwards.
    pub(crate) fn claim(
        &self,
        id: &str,
        decision: ApprovalDecision,
        decider: &Actor,
    ) -> Result<(PendingApproval, oneshot::Sender<Answer>), ApprovalError> {
        let mut pending = lock(&self.pending);
        let Some(slot) = pending.get(id) else {
            drop(pending);
            return Err(self.unknown(id));
        };
        if decision == ApprovalDecision::Approve
            && !lock(&self.policy).allow_self
            && let (Some(user), Some(requester)) = (&decider.user, &slot.approval.actor.user)
            && user == requester
        {
            return Err(ApprovalError::OwnCall {
                user: user.clone(),
                call_id: slot.approval.call_id.clone(),
            });
        }
        let slot = pending.remove(id).ok_or_else(|| self.unknown(id))?;
        Ok((slot.approval, slot.answer))
    }

    /// Takes a pending approval out because its call stopped waiting (timeout, or the caller
    /// went away). `None` when a decider claimed it first.
    pub(crate) fn withdraw(&self, id: &str) -> Option<PendingApproval> {
        self.take(id).map(|(approval, _)| approval)
    }

    /// Takes a pending approval out with the means to answer its call.
    pub(crate) fn take(&self, id: &str) -> Option<(PendingApproval, oneshot::Sender<Answer>)> {
        lock(&self.pending)
            .remove(id)
            .map(|s| (s.approval, s.answer))
    }

    /// Remembers how an approval ended, for a late decider.
    pub(crate) fn remember(&self, id: &str, outcome: String) {
        let mut decided = lock(&self.decided);
        if decided.len() == REMEMBERED {
            decided.pop_front();
        }
        decided.push_back((id.to_string(), outcome));
    }

    fn unknown(&self, id: &str) -> ApprovalError {
        match lock(&self.decided).iter().find(|(d, _)| d == id) {
            Some((_, outcome)) => ApprovalError::AlreadyDecided {
                id: id.to_string(),
                outcome: outcome.clone(),
            },
            None => ApprovalError::NotFound(id.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_back() {
        for text in [
            "irreversible",
            "mutates_state",
            "scope:vm",
            "scope:container",
            "scope:host",
            "scope:network",
            "tool:fs/read_text",
        ] {
            assert_eq!(
                ApprovalRule::parse(text).map(|r| r.to_string()),
                Ok(text.into())
            );
        }
        for (text, says) in [
            ("scope:planet", "unknown scope `planet`"),
            ("tool:fs", "tool:PLUGIN/TOOL"),
            ("tool:/x", "tool:PLUGIN/TOOL"),
            ("tool:a/b/c", "tool:PLUGIN/TOOL"),
            ("reversible", "is not an approval rule"),
            ("", "is not an approval rule"),
        ] {
            let error = ApprovalRule::parse(text).err().unwrap_or_default();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn rules_match_by_blast_radius_and_undeclared_is_widest() {
        let host_reversible = BlastRadius {
            scope: Scope::Host,
            mutates_state: true,
            reversible: true,
        };
        let table = [
            ("irreversible", Some(&host_reversible), false),
            ("irreversible", None, true),
            ("mutates_state", Some(&host_reversible), true),
            ("scope:host", Some(&host_reversible), true),
            ("scope:network", Some(&host_reversible), false),
            ("scope:network", None, true),
            ("tool:p/t", Some(&host_reversible), true),
            ("tool:p/other", None, false),
        ];
        for (rule, blast, expected) in table {
            let rule = ApprovalRule::parse(rule).unwrap_or(ApprovalRule::Irreversible);
            assert_eq!(rule.matches("p", "t", blast), expected, "{rule} {blast:?}");
        }
    }
}
