//! The stages around the plugin's own steps ([`super::execute`]), one type each.

use std::time::{Duration, Instant};

use sigil_audit::{CallStep, NewRecord, RecordKind};
use sigil_manifest::HookEvent;
use sigil_policy::Decision;

use super::{CallContext, Deadline, Resolved, Stage};
use crate::enforcer::{Check, Subject};
use crate::lifecycle::State;
use crate::runtime::{
    ApprovalRequest, DEFAULT_TIMEOUT, InvokeError, Origin, Runtime, schema_errors,
};

fn audit_error(error: sigil_audit::AuditError) -> InvokeError {
    InvokeError::Audit(error.to_string())
}

fn resolved<'c>(cx: &'c CallContext<'_>) -> &'c Resolved {
    // The stages after `Resolve` run only once it has set this.
    #[allow(
        clippy::expect_used,
        reason = "set by the resolve stage, which runs first"
    )]
    cx.resolved.as_ref().expect("resolved before this stage")
}

/// The enforcer decides whether the actor may call the tool. Its record waits in the call's
/// journal like the rest.
pub(super) struct Authorise;

impl Authorise {
    pub(super) async fn run(
        runtime: &Runtime,
        cx: &mut CallContext<'_>,
    ) -> Result<(), InvokeError> {
        let check = Check {
            subject: Subject::CallInto(cx.plugin),
            capability: &cx.capability,
            actor: cx.actor,
            call_id: Some(&cx.call_id),
        };
        match runtime.enforcer.check(&check).await {
            Decision::Allow { .. } => {
                cx.authorised = true;
                Ok(())
            }
            Decision::Deny { rule } => Err(InvokeError::Denied {
                rule: rule.to_string(),
            }),
        }
    }
}

/// Finds the running generation of the plugin and its tool, counts the call in flight on it,
/// and sets the call's deadline from its manifest.
pub(super) struct Resolve;

impl Resolve {
    pub(super) fn run(runtime: &Runtime, cx: &mut CallContext<'_>) -> Result<(), InvokeError> {
        let Some(mut entry) = runtime.manager.get(cx.plugin) else {
            // Registered with the enforcer but gone from the manager: removed in between.
            return Err(InvokeError::NotRunning {
                plugin: cx.plugin.into(),
                state: State::Stopped,
                reason: None,
            });
        };
        // Counted in flight before the state is read: a generation being replaced either sees
        // this call and waits for it, or this call sees it draining and takes its successor.
        let mut in_flight = entry.begin_call();
        let mut state = entry.lifecycle().state();
        // A generation replaced meanwhile (draining, or already stopped) hands the call to its
        // successor; a few rounds cover reloads in quick succession.
        for _ in 0..4 {
            if state == State::Running {
                break;
            }
            match runtime.manager.get(cx.plugin) {
                Some(successor) if !std::sync::Arc::ptr_eq(&successor, &entry) => {
                    drop(in_flight);
                    entry = successor;
                    in_flight = entry.begin_call();
                    state = entry.lifecycle().state();
                }
                _ => break,
            }
        }
        let version = entry.manifest().version().to_string();
        let (Some(implementation), State::Running) = (entry.plugin.clone(), state) else {
            let error = InvokeError::NotRunning {
                plugin: cx.plugin.into(),
                state,
                reason: entry.lifecycle().error(),
            };
            cx.version = Some(version);
            return Err(error);
        };
        let Some(tool) = entry
            .tools
            .iter()
            .position(|t| t.descriptor.name == cx.tool)
        else {
            let error = InvokeError::UnknownTool {
                plugin: cx.plugin.into(),
                tool: cx.tool.into(),
                available: entry.tools().map(|t| t.name.clone()).collect(),
            };
            cx.version = Some(version);
            return Err(error);
        };
        let budget = entry
            .manifest()
            .execution()
            .limits
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        cx.deadline = Some(Deadline::new(budget));
        cx.version = Some(version);
        cx.resolved = Some(Resolved {
            entry,
            implementation,
            tool,
            in_flight: Some(in_flight),
        });
        Ok(())
    }
}

/// The tool may be called this way: not only through an authenticated command, and not held
/// for an operator's approval of its changed definition.
pub(super) struct Admit;

impl Admit {
    pub(super) fn run(cx: &mut CallContext<'_>) -> Result<(), InvokeError> {
        let resolved = resolved(cx);
        let (plugin, tool) = (cx.plugin, cx.tool);
        if cx.origin == Origin::Direct
            && let Some(command) = resolved
                .entry
                .manifest()
                .commands()
                .iter()
                .find(|c| c.require_auth && c.tool == tool)
        {
            // Otherwise calling the tool would skip the command's authentication.
            return Err(InvokeError::Denied {
                rule: format!(
                    "tool `{plugin}/{tool}` runs only as the authenticated command `sigil {}`",
                    command.name
                ),
            });
        }
        if let Some(held) = resolved
            .implementation
            .held()
            .into_iter()
            .find(|h| h.tool == tool)
        {
            return Err(InvokeError::Held {
                plugin: plugin.into(),
                tool: tool.into(),
                reason: held.reason,
            });
        }
        Ok(())
    }
}

/// The arguments must match the tool's input schema.
pub(super) struct ValidateInput;

impl ValidateInput {
    pub(super) fn run(cx: &mut CallContext<'_>) -> Result<(), InvokeError> {
        let errors = schema_errors(&resolved(cx).tool().input, &cx.input);
        if errors.is_empty() {
            return Ok(());
        }
        Err(InvokeError::InvalidArguments {
            target: cx.target.into(),
            errors,
        })
    }
}

/// The `before_tool_execute` hooks: nothing to do, at the cost of one index lookup, when no
/// plugin subscribes.
pub(super) struct BeforeHooks;

impl BeforeHooks {
    pub(super) async fn run(
        runtime: &Runtime,
        cx: &mut CallContext<'_>,
    ) -> Result<(), InvokeError> {
        let subscribed = runtime.manager.subscribed(HookEvent::BeforeToolExecute);
        if subscribed.is_empty() {
            return Ok(());
        }
        let input = std::mem::take(&mut cx.input);
        let event = cx.tool_event();
        let deadline = cx.deadline();
        let resolved = resolved(cx);
        let admitted = runtime
            .before_tool_execute(
                &event,
                subscribed,
                input,
                &resolved.tool().input,
                cx.journal()?,
                &deadline,
            )
            .await;
        match admitted {
            Ok(admitted) => {
                cx.steps.push(CallStep {
                    step: Stage::BeforeHooks.name().into(),
                    ok: true,
                    detail: Some(admitted.summary),
                });
                cx.input = admitted.input;
                cx.asks = admitted.asks;
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

/// A person approves the call, when an `[approvals]` rule matches the tool's blast radius or a
/// hook asked. The call's records are committed first: the request is visible to people.
pub(super) struct Approval;

impl Approval {
    pub(super) async fn run(
        runtime: &Runtime,
        cx: &mut CallContext<'_>,
    ) -> Result<(), InvokeError> {
        let (plugin, tool) = (cx.plugin, cx.tool);
        let blast = resolved(cx).entry.claimed_blast_radius(tool);
        let required = runtime.approvals.required(plugin, tool, blast);
        if required.is_none() && cx.asks.is_empty() {
            return Ok(());
        }
        let reason = required
            .into_iter()
            .chain(std::mem::take(&mut cx.asks))
            .collect::<Vec<_>>()
            .join("; ");
        cx.journal()?.flush().await.map_err(audit_error)?;
        let request = ApprovalRequest {
            plugin,
            tool,
            actor: cx.actor,
            call_id: &cx.call_id,
            input: &cx.input,
            reason: &reason,
        };
        // Not counted in flight while a person decides: a reload or disable does not wait for
        // them. The state is read again once the call may go on.
        if let Some(resolved) = cx.resolved.as_mut() {
            resolved.in_flight = None;
        }
        let waited = Instant::now();
        let approved = runtime.await_approval(request).await;
        if let Some(deadline) = cx.deadline.as_mut() {
            deadline.extend(waited.elapsed());
        }
        let resolved = cx
            .resolved
            .as_mut()
            .ok_or_else(|| InvokeError::Audit("the call lost its plugin".into()))?;
        resolved.in_flight = Some(resolved.entry.begin_call());
        let state = resolved.entry.lifecycle().state();
        approved?;
        if state != State::Running {
            return Err(InvokeError::NotRunning {
                plugin: plugin.into(),
                state,
                reason: Some("it changed while the call waited for approval; call again".into()),
            });
        }
        // The policy may have changed while a person decided (a configuration reload revoking
        // the caller's permission): the call goes on only if it would still be allowed. The
        // refusal is recorded with the call's outcome.
        let check = Check {
            subject: Subject::CallInto(plugin),
            capability: &cx.capability,
            actor: cx.actor,
            call_id: Some(&cx.call_id),
        };
        if let Decision::Deny { rule } = runtime.enforcer.explain(&check) {
            return Err(InvokeError::Denied {
                rule: format!("{rule} (checked again after the approval)"),
            });
        }
        cx.steps.push(CallStep::ok(Stage::Approval.name()));
        Ok(())
    }
}

/// Commits the call's journal: its decision, host decisions and hook decisions, then (once
/// the call was authorised) its outcome, in one transaction.
pub(super) struct Record;

impl Record {
    pub(super) async fn run(cx: &mut CallContext<'_>) -> Result<(), InvokeError> {
        let Some(journal) = cx.journal.take() else {
            return Err(InvokeError::Audit("the call's journal is closed".into()));
        };
        let outcome = cx.authorised.then(|| {
            let (rule, outcome) = match &cx.stop {
                None => ("completed".to_string(), "ok".to_string()),
                Some((stage, error)) => {
                    if *stage != Stage::Execute {
                        cx.steps
                            .push(CallStep::failed(stage.name(), error.to_string()));
                    }
                    (format!("stopped at {stage}"), format!("error: {error}"))
                }
            };
            NewRecord {
                kind: RecordKind::Outcome,
                actor: cx.actor.clone(),
                plugin: Some(cx.plugin.to_string()),
                plugin_version: cx.version.clone(),
                capability: Some(cx.capability.to_string()),
                decision: None,
                rule,
                call_id: Some(cx.call_id.clone()),
                duration_us: Some(
                    u64::try_from(cx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
                ),
                outcome: Some(outcome),
                steps: std::mem::take(&mut cx.steps),
            }
        });
        journal.finish(outcome).await.map_err(audit_error)
    }
}

/// The `after_tool_execute` hooks observe the result of a call whose plugin ran; they cannot
/// change it. They run before the caller is answered, so an observer has seen the call when
/// its caller has.
pub(super) struct AfterHooks;

impl AfterHooks {
    pub(super) async fn run(
        runtime: &Runtime,
        cx: &mut CallContext<'_>,
    ) -> Result<(), InvokeError> {
        if !cx.executed {
            return Ok(());
        }
        let subscribed = runtime.manager.subscribed(HookEvent::AfterToolExecute);
        if subscribed.is_empty() {
            return Ok(());
        }
        let event = cx.tool_event();
        runtime
            .after_tool_execute(&event, subscribed, &cx.input, &cx.result())
            .await;
        Ok(())
    }
}
