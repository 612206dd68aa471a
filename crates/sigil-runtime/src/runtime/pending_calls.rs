//! Calls held for a person's approval: the request, the wait, the decision, each recorded in
//! the audit log (records of kind `approval`, sharing the call's id) and published as an event.
//!
//! Order of a held call: the request is recorded, then listed and published; the call waits
//! for [`Runtime::decide_approval`] or the timeout (`approvals.timeout_ms`). A decision is
//! recorded before it takes effect; a decision that cannot be recorded denies the call. A
//! timeout is a deny, recorded with the caller as actor. A caller that stops waiting (its
//! request was dropped) withdraws the approval, recorded as a deny too.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sigil_audit::{Actor, AuditSink, NewRecord, RecordKind, Verdict};
use sigil_policy::{Capability, Decision, DenyRule};

use super::{InvokeError, Runtime};

/// What a person needs, in the workspace of a held call, to approve or deny it.
pub const APPROVALS_DECIDE: &str = "approvals.decide";
use crate::approval_rules::{ApprovalDecision, ApprovalError, ApprovalMode, PendingApproval};
use crate::events::Event;

/// A call asking for a person's approval before it goes on: what
/// [`Runtime::await_approval`] needs. The dispatch path asks when a tool's blast radius matches
/// `approvals.require`; other callers (hooks) may ask with their own reason.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRequest<'a> {
    /// The plugin called.
    pub plugin: &'a str,
    /// The tool called.
    pub tool: &'a str,
    /// On whose behalf.
    pub actor: &'a Actor,
    /// The call's id, shared by its audit records.
    pub call_id: &'a str,
    /// The call's arguments, shown to whoever decides.
    pub input: &'a Value,
    /// Why an approval is needed, shown and recorded.
    pub reason: &'a str,
}

/// What a decision did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecidedApproval {
    /// The approval as it was pending.
    pub approval: PendingApproval,
    /// Approved or denied.
    pub decision: ApprovalDecision,
    /// The recorded rule, e.g. `approved by alice: looks fine`.
    pub rule: String,
    /// The audit record's sequence number.
    pub seq: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn approval_record(
    approval: &PendingApproval,
    version: Option<&str>,
    actor: &Actor,
    decision: Option<Verdict>,
    rule: String,
) -> NewRecord {
    NewRecord {
        kind: RecordKind::Approval,
        actor: actor.clone(),
        plugin: Some(approval.plugin.clone()),
        plugin_version: version.map(str::to_string),
        capability: Some(format!("tool.{}.{}", approval.plugin, approval.tool)),
        decision,
        rule,
        call_id: Some(approval.call_id.clone()),
        duration_us: None,
        outcome: None,
        steps: Vec::new(),
    }
}

fn decided_event(
    approval: &PendingApproval,
    decision: ApprovalDecision,
    decided_by: Option<String>,
    rule: &str,
) -> Event {
    Event::ApprovalDecided {
        id: approval.id.clone(),
        call_id: approval.call_id.clone(),
        plugin: approval.plugin.clone(),
        tool: approval.tool.clone(),
        actor: approval.actor.clone(),
        decision,
        decided_by,
        rule: rule.to_string(),
    }
}

fn denied(approval: &PendingApproval, reason: String) -> InvokeError {
    InvokeError::ApprovalDenied {
        plugin: approval.plugin.clone(),
        tool: approval.tool.clone(),
        approval: Some(approval.id.clone()),
        reason,
    }
}

/// Withdraws the approval if the waiting call is dropped before it ends (its caller went away),
/// recording the withdrawal as a deny.
struct Withdraw<'a> {
    runtime: &'a Runtime,
    id: Option<String>,
    version: Option<String>,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let Some(approval) = self.runtime.approvals.withdraw(&id) else {
            return;
        };
        let rule = "withdrawn: the caller stopped waiting".to_string();
        self.runtime.approvals.remember(&id, rule.clone());
        let record = approval_record(
            &approval,
            self.version.as_deref(),
            &approval.actor,
            Some(Verdict::Deny),
            rule.clone(),
        );
        // Written even though nobody waits for the commit (`AuditSink::submit`).
        drop(self.runtime.audit.submit(record));
        self.runtime.events().publish(decided_event(
            &approval,
            ApprovalDecision::Deny,
            None,
            &rule,
        ));
    }
}

impl Runtime {
    /// Holds a call until a person approves it, denies it, or `approvals.timeout_ms` passes
    /// (a deny). The request and the decision are audit records of kind `approval` with the
    /// call's id; both are published as events ([`Event::ApprovalRequested`],
    /// [`Event::ApprovalDecided`]), and the request is listed by
    /// [`Runtime::pending_approvals`] meanwhile. With [`ApprovalMode::Refuse`] the call is
    /// denied at once, recorded, as nobody could decide it.
    ///
    /// [`Runtime::invoke`] calls this when a tool's blast radius matches `approvals.require`.
    ///
    /// # Errors
    /// [`InvokeError::ApprovalDenied`] when denied, timed out, refused or withdrawn;
    /// [`InvokeError::Audit`] when the request cannot be recorded (the call does not go on).
    pub async fn await_approval(&self, request: ApprovalRequest<'_>) -> Result<(), InvokeError> {
        let created_ms = now_ms();
        let timeout = self.approvals.timeout();
        let approval = PendingApproval {
            id: uuid::Uuid::now_v7().to_string(),
            call_id: request.call_id.to_string(),
            plugin: request.plugin.to_string(),
            tool: request.tool.to_string(),
            actor: request.actor.clone(),
            input: request.input.clone(),
            reason: request.reason.to_string(),
            created_ms,
            deadline_ms: created_ms
                .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)),
        };
        let version = self
            .manager
            .get(request.plugin)
            .map(|e| e.manifest().version().to_string());
        let record = |actor: &Actor, verdict, rule: String| {
            approval_record(&approval, version.as_deref(), actor, verdict, rule)
        };

        if self.approvals.mode() == ApprovalMode::Refuse {
            let rule = format!(
                "approval required ({}), but nobody can decide it here: run the call through a daemon (`sigil serve`) where `sigil approvals approve` can approve it",
                request.reason
            );
            self.audit
                .submit(record(request.actor, Some(Verdict::Deny), rule.clone()))
                .await
                .map_err(|e| InvokeError::Audit(e.to_string()))?;
            return Err(InvokeError::ApprovalDenied {
                plugin: approval.plugin,
                tool: approval.tool,
                approval: None,
                reason: rule,
            });
        }

        self.audit
            .submit(record(
                request.actor,
                None,
                format!("approval {} requested: {}", approval.id, request.reason),
            ))
            .await
            .map_err(|e| InvokeError::Audit(e.to_string()))?;
        let mut answer = self.approvals.insert(approval.clone());
        let mut withdraw = Withdraw {
            runtime: self,
            id: Some(approval.id.clone()),
            version: version.clone(),
        };
        tracing::info!(plugin = %approval.plugin, tool = %approval.tool, call_id = %approval.call_id, approval = %approval.id, "call waits for approval");
        self.events().publish(Event::ApprovalRequested {
            approval: approval.clone(),
        });

        let verdict = match tokio::time::timeout(timeout, &mut answer).await {
            Ok(answer) => answer.ok(),
            Err(_elapsed) => match self.approvals.withdraw(&approval.id) {
                Some(_) => {
                    withdraw.id = None;
                    let rule = format!(
                        "timed out after {} ms without a decision (approvals.timeout_ms): denied",
                        timeout.as_millis()
                    );
                    self.approvals.remember(&approval.id, rule.clone());
                    let recorded = self
                        .audit
                        .submit(record(request.actor, Some(Verdict::Deny), rule.clone()))
                        .await;
                    self.events().publish(decided_event(
                        &approval,
                        ApprovalDecision::Deny,
                        None,
                        &rule,
                    ));
                    recorded.map_err(|e| InvokeError::Audit(e.to_string()))?;
                    return Err(denied(&approval, rule));
                }
                // A decider claimed it as the time ran out: its answer is on the way.
                None => answer.await.ok(),
            },
        };
        withdraw.id = None;
        match verdict {
            Some(v) if v.decision == ApprovalDecision::Approve => Ok(()),
            Some(v) => Err(denied(&approval, v.rule)),
            // The decider's record could not be written: fail closed.
            None => Err(denied(
                &approval,
                "the decision could not be recorded in the audit log: denied".to_string(),
            )),
        }
    }

    /// Denies every pending approval with `rule` (recorded, the caller as actor, and
    /// published), so the waiting calls end now: for a daemon shutting down. Returns how many
    /// were denied.
    pub async fn deny_pending_approvals(&self, rule: &str) -> usize {
        let mut denied = 0;
        for pending in self.approvals.pending() {
            let Some((approval, answer)) = self.approvals.take(&pending.id) else {
                continue;
            };
            self.approvals.remember(&approval.id, rule.to_string());
            let version = self
                .manager
                .get(&approval.plugin)
                .map(|e| e.manifest().version().to_string());
            let record = approval_record(
                &approval,
                version.as_deref(),
                &approval.actor,
                Some(Verdict::Deny),
                rule.to_string(),
            );
            if let Err(e) = self.audit.submit(record).await {
                tracing::error!(error = %e, approval = %approval.id, "denial of a pending approval not recorded");
            }
            self.events()
                .publish(decided_event(&approval, ApprovalDecision::Deny, None, rule));
            let _ = answer.send(crate::approval_rules::Answer {
                decision: ApprovalDecision::Deny,
                rule: rule.to_string(),
            });
            denied += 1;
        }
        denied
    }

    /// Takes `[approvals]` (rules, timeout, self-approval) from `config` for calls from now on,
    /// as when `sigil.toml` is read again; calls already waiting keep their deadline.
    pub fn reconfigure_approvals(&self, config: &crate::config::Config) {
        self.approvals.reconfigure(config);
    }

    /// Why a call of `plugin/tool` would wait for a person's approval under `[approvals]`
    /// (the matching rules), or `None` when it would run at once. For listings; the call
    /// itself is decided when it is made.
    pub fn approval_required(&self, plugin: &str, tool: &str) -> Option<String> {
        let entry = self.manager.get(plugin)?;
        self.approvals
            .required(plugin, tool, entry.claimed_blast_radius(tool))
    }

    /// The calls waiting for a decision, oldest first.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.approvals.pending()
    }

    /// What happens to calls that need an approval: [`ApprovalMode::Wait`] (the default) or
    /// [`ApprovalMode::Refuse`], for a runtime serving one command where nobody could decide.
    pub fn set_approval_mode(&self, mode: ApprovalMode) {
        self.approvals.set_mode(mode);
    }

    /// `decider` approves or denies pending approval `id`, with an optional reason. The
    /// decision is recorded (actor: the decider, in the call's workspace) before the waiting
    /// call learns it, and published as [`Event::ApprovalDecided`].
    ///
    /// # Security
    /// An approval is decided in the workspace of the call it holds, whatever workspace the
    /// decider names: the decider's user must hold [`APPROVALS_DECIDE`] there (which needs it
    /// to belong to that workspace), asked of the enforcer and recorded. The user who made the
    /// call cannot approve it unless `approvals.allow_self_approval` is set; anyone allowed to
    /// decide may deny it.
    ///
    /// # Errors
    /// [`ApprovalError::NotFound`], [`ApprovalError::AlreadyDecided`],
    /// [`ApprovalError::Forbidden`], [`ApprovalError::OwnCall`], or [`ApprovalError::Audit`]
    /// when the decision cannot be recorded (the call is then denied).
    pub async fn decide_approval(
        &self,
        id: &str,
        decision: ApprovalDecision,
        decider: &Actor,
        reason: Option<&str>,
    ) -> Result<DecidedApproval, ApprovalError> {
        let pending = self.approvals.get(id)?;
        // The workspace of the call, never the one the decider acts in: a decider cannot pick
        // a workspace where it holds `approvals.decide` to approve a call from one where it
        // does not.
        let decider = &Actor {
            workspace: pending.actor.workspace.clone(),
            ..decider.clone()
        };
        let decided = match Capability::parse(APPROVALS_DECIDE) {
            Ok(capability) => self.enforcer.check_actor(&capability, decider).await,
            Err(error) => Decision::Deny {
                rule: DenyRule::InvalidCapability {
                    error: error.to_string(),
                },
            },
        };
        if let Decision::Deny { rule } = decided {
            return Err(match rule {
                DenyRule::AuditFailed { error } => ApprovalError::Audit(error),
                rule => ApprovalError::Forbidden {
                    user: decider.user.clone().unwrap_or_default(),
                    workspace: decider.workspace.clone().unwrap_or_default(),
                    call_id: pending.call_id,
                    rule: rule.to_string(),
                },
            });
        }
        let (approval, answer) = self.approvals.claim(id, decision, decider)?;
        let mut rule = format!(
            "{decision} by {}",
            decider.user.as_deref().unwrap_or("an unnamed user")
        );
        if let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) {
            rule.push_str(": ");
            rule.push_str(reason);
        }
        self.approvals.remember(id, rule.clone());
        let version = self
            .manager
            .get(&approval.plugin)
            .map(|e| e.manifest().version().to_string());
        let verdict = match decision {
            ApprovalDecision::Approve => Verdict::Allow,
            ApprovalDecision::Deny => Verdict::Deny,
        };
        let record = approval_record(
            &approval,
            version.as_deref(),
            decider,
            Some(verdict),
            rule.clone(),
        );
        let seq = match self.audit.submit(record).await {
            Ok(seq) => seq,
            Err(e) => {
                // Dropping `answer` denies the call.
                drop(answer);
                self.events().publish(decided_event(
                    &approval,
                    ApprovalDecision::Deny,
                    None,
                    "the decision could not be recorded in the audit log: denied",
                ));
                return Err(ApprovalError::Audit(e.to_string()));
            }
        };
        self.events().publish(decided_event(
            &approval,
            decision,
            decider.user.clone(),
            &rule,
        ));
        // The call may have gone away meanwhile; the decision stands in the log either way.
        let _ = answer.send(crate::approval_rules::Answer {
            decision,
            rule: rule.clone(),
        });
        Ok(DecidedApproval {
            approval,
            decision,
            rule,
            seq,
        })
    }
}
