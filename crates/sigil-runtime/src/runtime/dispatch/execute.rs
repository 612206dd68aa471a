//! The plugin's own steps: validate-pre, invoke, validate-post, and rollback after a failure.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigil_audit::CallStep;

use super::{CallContext, Deadline, Resolved};
use crate::runtime::deadline::{self, Confinement, Fault};
use crate::runtime::{DEFAULT_OUTPUT_BYTES, InvokeError, Runtime, Step, schema_errors};
use crate::tool::{Call, ToolError, ToolPlugin};

/// Runs the plugin's steps for the call, each noted in the call's steps, under the call's
/// deadline. A plugin that can act without a host call ([`crate::PluginEntry`] with a writable
/// grant mounted) runs only once the call's records are committed.
pub(super) struct Execute;

impl Execute {
    pub(super) async fn run(
        runtime: &Runtime,
        cx: &mut CallContext<'_>,
    ) -> Result<(), InvokeError> {
        let Some(resolved) = cx.resolved.as_ref() else {
            return Err(InvokeError::Audit(
                "the call reached execution unresolved".into(),
            ));
        };
        if resolved.entry.acts_directly() {
            cx.journal()?
                .flush()
                .await
                .map_err(|e| InvokeError::Audit(e.to_string()))?;
        }
        let call = Call::new(
            runtime.enforcer.clone(),
            runtime.kv.clone(),
            runtime.config(),
            cx.plugin,
            cx.tool,
            &cx.call_id,
            cx.actor,
        );
        let deadline = cx.deadline();
        cx.executed = true;
        let steps = Steps {
            resolved,
            call: &call,
            input: &cx.input,
            deadline,
            confinement: Confinement::of(&resolved.entry),
        };
        let output = steps.run(&mut cx.steps).await?;
        cx.output = Some(output);
        Ok(())
    }
}

/// What the steps of one call share.
struct Steps<'a> {
    resolved: &'a Resolved,
    call: &'a Call,
    input: &'a Value,
    deadline: Deadline,
    confinement: Confinement,
}

impl Steps<'_> {
    async fn run(&self, noted: &mut Vec<CallStep>) -> Result<Value, InvokeError> {
        let has = self.resolved.tool().descriptor.steps;
        if has.validate_pre {
            let result = self
                .guarded(
                    self.deadline.remaining(),
                    |plugin, call, input| async move { plugin.validate_pre(&call, &input).await },
                )
                .await;
            note(noted, Step::ValidatePre, &result);
            if let Err(error) = result {
                return Err(InvokeError::Failed {
                    step: Step::ValidatePre,
                    error,
                    rollback: None,
                });
            }
        }
        let invoked = self
            .guarded(
                self.deadline.remaining(),
                |plugin, call, input| async move { plugin.invoke(&call, input).await },
            )
            .await
            .and_then(|output| self.checked(output));
        note(noted, Step::Invoke, &invoked);
        let (failed, error, output) = match invoked {
            Err(error) => (Step::Invoke, error, None),
            Ok(output) if has.validate_post => {
                let checked = output.clone();
                let result = self
                    .guarded(
                        self.deadline.remaining(),
                        move |plugin, call, input| async move {
                            plugin.validate_post(&call, &input, &checked).await
                        },
                    )
                    .await;
                note(noted, Step::ValidatePost, &result);
                match result {
                    Ok(()) => return Ok(output),
                    Err(error) => (Step::ValidatePost, error, Some(output)),
                }
            }
            Ok(output) => return Ok(output),
        };
        let rollback = if has.rollback {
            // A rollback is the one step with a budget of its own: after a timeout, the
            // call's is spent, and undoing is what the time is for.
            let result = self
                .guarded(
                    self.deadline.budget(),
                    move |plugin, call, input| async move {
                        plugin.rollback(&call, &input, output.as_ref()).await
                    },
                )
                .await;
            noted.push(match &result {
                Ok(()) => CallStep::ok("rollback"),
                Err(e) => CallStep::failed("rollback", e.clone()),
            });
            Some(match result {
                Ok(()) => "rolled back".to_string(),
                Err(e) => format!("rollback failed: {e}"),
            })
        } else {
            None
        };
        Err(InvokeError::Failed {
            step: failed,
            error,
            rollback,
        })
    }

    /// The output's size and schema checks.
    fn checked(&self, output: Value) -> Result<Value, String> {
        let limits = &self.resolved.entry.manifest().execution().limits;
        let cap = limits.output_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES);
        let size = serde_json::to_vec(&output).map_or(u64::MAX, |v| v.len() as u64);
        if size > cap {
            return Err(format!(
                "output of {size} bytes exceeds the limit of {cap} bytes (execution.limits.output_bytes)"
            ));
        }
        if let Some(schema) = &self.resolved.tool().output {
            let errors = schema_errors(schema, &output);
            if !errors.is_empty() {
                return Err(format!(
                    "output does not match the tool's output schema: {}",
                    errors.join("; ")
                ));
            }
        }
        Ok(output)
    }

    /// Runs one step for at most `limit` under the one guard ([`deadline::guard`]). Each step
    /// owns what it uses: a confined step may outlive this call's wait for it.
    async fn guarded<T, F, Fut>(&self, limit: Duration, step: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn ToolPlugin>, Call, Value) -> Fut,
        Fut: std::future::Future<Output = Result<T, ToolError>> + Send + 'static,
    {
        let budget = self.deadline.budget();
        let exceeded = || {
            format!(
                "deadline of {} ms exceeded (execution.limits.timeout_ms)",
                budget.as_millis()
            )
        };
        if limit.is_zero() {
            return Err(exceeded());
        }
        let step = step(
            self.resolved.implementation.clone(),
            self.call.clone(),
            self.input.clone(),
        );
        match deadline::guard(limit, self.confinement, step).await {
            Ok(value) => Ok(value),
            Err(Fault::TimedOut) => Err(exceeded()),
            Err(Fault::Panicked) => Err("the plugin panicked".to_string()),
            // The plugin's own words, shown and recorded under the one rule for guest text.
            Err(Fault::Failed(error)) => Err(crate::guest_text::clean(&error.to_string())),
        }
    }
}

fn note<T>(noted: &mut Vec<CallStep>, step: Step, result: &Result<T, String>) {
    noted.push(match result {
        Ok(_) => CallStep::ok(step.to_string()),
        Err(e) => CallStep::failed(step.to_string(), e.clone()),
    });
}
