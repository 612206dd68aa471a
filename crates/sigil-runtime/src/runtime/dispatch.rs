//! The call path: every tool call passes the same stages, in the order [`STAGES`] lists.
//!
//! Each stage is a small type with one job ([`stages`], [`execute`]) working on one
//! [`CallContext`]. A stage that refuses the call stops it: the stages after it are skipped,
//! but for those that must run whatever happened ([`Stage::runs_after_stop`]): the record of
//! the call and, when the plugin ran, the hooks that observe its result.
//!
//! Two things span the stages:
//! - the call's **journal** ([`crate::enforcer::CallJournal`]): its audit records wait there
//!   and are committed in one transaction with the outcome, or earlier when an effect needs
//!   them durable first;
//! - its **deadline** ([`Deadline`]): set once, when the plugin is resolved, from the
//!   manifest's `execution.limits.timeout_ms`; the hooks and steps that run plugin code share it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sigil_audit::{Actor, CallStep};
use sigil_policy::Capability;

use super::{Invocation, InvokeError, Origin, Runtime};
use crate::enforcer::CallJournal;
use crate::manager::{CallGuard, PluginEntry, ToolEntry};
use crate::tool::ToolPlugin;

mod execute;
mod stages;

/// A stage of the call path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The enforcer decides whether the actor may call `tool.<plugin>.<tool>`.
    Authorise,
    /// The plugin must be running and provide the tool; the call's deadline is set.
    Resolve,
    /// The tool may be called this way: not only through an authenticated command, and not
    /// held for an operator's approval of its changed definition.
    Admit,
    /// The arguments must match the tool's input schema.
    ValidateInput,
    /// The `before_tool_execute` hooks allow, deny, patch or ask for approval.
    BeforeHooks,
    /// A person approves the call, when a rule or a hook asks for it.
    Approval,
    /// Validate-pre, invoke (with the output's size and schema checked), validate-post, and
    /// rollback after a failure.
    Execute,
    /// The call's records and its outcome are committed, in one transaction.
    Record,
    /// The `after_tool_execute` hooks observe the result.
    AfterHooks,
}

/// The stages, in the order every call passes them.
pub const STAGES: [Stage; 9] = [
    Stage::Authorise,
    Stage::Resolve,
    Stage::Admit,
    Stage::ValidateInput,
    Stage::BeforeHooks,
    Stage::Approval,
    Stage::Execute,
    Stage::Record,
    Stage::AfterHooks,
];

impl Stage {
    /// The stage's name, as `ARCHITECTURE.md` and the outcome records' steps spell it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Authorise => "authorise",
            Stage::Resolve => "resolve",
            Stage::Admit => "admit",
            Stage::ValidateInput => "validate-input",
            Stage::BeforeHooks => "before-hooks",
            Stage::Approval => "approval",
            Stage::Execute => "execute",
            Stage::Record => "record",
            Stage::AfterHooks => "after-hooks",
        }
    }

    /// Whether the stage runs after an earlier one stopped the call.
    fn runs_after_stop(self) -> bool {
        matches!(self, Stage::Record | Stage::AfterHooks)
    }

    async fn run(self, runtime: &Runtime, cx: &mut CallContext<'_>) -> Result<(), InvokeError> {
        match self {
            Stage::Authorise => stages::Authorise::run(runtime, cx).await,
            Stage::Resolve => stages::Resolve::run(runtime, cx),
            Stage::Admit => stages::Admit::run(cx),
            Stage::ValidateInput => stages::ValidateInput::run(cx),
            Stage::BeforeHooks => stages::BeforeHooks::run(runtime, cx).await,
            Stage::Approval => stages::Approval::run(runtime, cx).await,
            Stage::Execute => execute::Execute::run(runtime, cx).await,
            Stage::Record => stages::Record::run(cx).await,
            Stage::AfterHooks => stages::AfterHooks::run(runtime, cx).await,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The time a call's plugin code may take: one budget for the call, set when its plugin is
/// resolved. Time spent waiting for a person's approval is not plugin time and does not count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub(crate) fn new(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// What is left of the budget.
    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The whole budget (`execution.limits.timeout_ms`).
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// Moves the deadline back by time the call spent waiting on a person.
    fn extend(&mut self, by: Duration) {
        self.at += by;
    }
}

/// The plugin generation and tool a call resolved to.
pub(super) struct Resolved {
    pub(super) entry: Arc<PluginEntry>,
    pub(super) implementation: Arc<dyn ToolPlugin>,
    tool: usize,
    /// Counts the call in flight on its generation; `None` while it waits for a person.
    pub(super) in_flight: Option<CallGuard>,
}

impl Resolved {
    pub(super) fn tool(&self) -> &ToolEntry {
        &self.entry.tools[self.tool]
    }
}

/// Everything the stages of one call share.
pub(super) struct CallContext<'a> {
    pub(super) actor: &'a Actor,
    pub(super) target: &'a str,
    pub(super) plugin: &'a str,
    pub(super) tool: &'a str,
    pub(super) origin: Origin,
    pub(super) call_id: String,
    pub(super) capability: Capability,
    pub(super) started: Instant,
    /// The version of the plugin generation the call resolved to, once known.
    pub(super) version: Option<String>,
    /// Taken by [`Stage::Record`], which closes it.
    pub(super) journal: Option<CallJournal<'a>>,
    /// The arguments: as given, then as the before-hooks patched them.
    pub(super) input: Value,
    /// Set once the enforcer allowed the call: from then on its outcome is recorded.
    pub(super) authorised: bool,
    pub(super) resolved: Option<Resolved>,
    pub(super) deadline: Option<Deadline>,
    /// Why hooks asked for a person's approval.
    pub(super) asks: Vec<String>,
    /// The steps taken, for the outcome record.
    pub(super) steps: Vec<CallStep>,
    /// Whether [`Stage::Execute`] ran the plugin.
    pub(super) executed: bool,
    pub(super) output: Option<Value>,
    /// The stage that stopped the call, and why.
    pub(super) stop: Option<(Stage, InvokeError)>,
}

impl CallContext<'_> {
    /// The call's result as its caller will see it, for the hooks that observe it.
    pub(super) fn result(&self) -> Result<Value, InvokeError> {
        match (&self.stop, &self.output) {
            (Some((_, error)), _) => Err(error.clone()),
            (None, Some(output)) => Ok(output.clone()),
            (None, None) => Err(InvokeError::Audit("the call produced no result".into())),
        }
    }

    /// The call's deadline; set by `resolve`, which every stage running plugin code follows.
    pub(super) fn deadline(&self) -> Deadline {
        self.deadline
            .unwrap_or_else(|| Deadline::new(super::DEFAULT_TIMEOUT))
    }

    /// The call as its tool hooks see it.
    pub(super) fn tool_event(&self) -> super::hooks::ToolEvent<'_> {
        super::hooks::ToolEvent {
            actor: self.actor,
            plugin: self.plugin,
            tool: self.tool,
            call_id: &self.call_id,
        }
    }

    pub(super) fn journal(&self) -> Result<&CallJournal<'_>, InvokeError> {
        self.journal
            .as_ref()
            .ok_or_else(|| InvokeError::Audit("the call's journal is closed".into()))
    }
}

impl Runtime {
    /// [`Runtime::invoke`], saying whether the call comes from a plugin command that has
    /// already passed its `require_auth` check ([`Runtime::run_command`]).
    pub(crate) async fn invoke_as(
        &self,
        actor: &Actor,
        target: &str,
        input: Value,
        origin: Origin,
    ) -> Result<Invocation, InvokeError> {
        let started = Instant::now();
        let bad_target = || InvokeError::BadTarget(target.to_string());
        let (plugin, tool) = target.split_once('/').ok_or_else(bad_target)?;
        let capability =
            Capability::parse(&format!("tool.{plugin}.{tool}")).map_err(|_| bad_target())?;
        let call_id = uuid::Uuid::now_v7().to_string();
        let journal = self.enforcer.open_journal(&call_id);
        let mut cx = CallContext {
            actor,
            target,
            plugin,
            tool,
            origin,
            call_id,
            capability,
            started,
            version: None,
            journal: Some(journal),
            input,
            authorised: false,
            resolved: None,
            deadline: None,
            asks: Vec::new(),
            steps: Vec::new(),
            executed: false,
            output: None,
            stop: None,
        };
        let timed = timing::enabled();
        for stage in STAGES {
            if cx.stop.is_some() && !stage.runs_after_stop() {
                continue;
            }
            let at = timed.then(Instant::now);
            let ran = stage.run(self, &mut cx).await;
            if let Some(at) = at {
                timing::add(stage, at.elapsed());
            }
            if let Err(error) = ran {
                // A failure to record overrides an earlier refusal: the caller must learn that
                // the log is failing.
                if cx.stop.is_none() || stage == Stage::Record {
                    cx.stop = Some((stage, error));
                }
            }
        }
        match (cx.stop, cx.output) {
            (Some((_, error)), _) => Err(error),
            (None, Some(output)) => Ok(Invocation {
                call_id: cx.call_id,
                output,
                duration: started.elapsed(),
            }),
            (None, None) => Err(InvokeError::Audit("the call produced no result".into())),
        }
    }
}

/// Per-stage time, summed over calls, for benchmarks and profiling: off unless
/// [`timing::enable`] was called, when it costs a clock read per stage.
#[doc(hidden)]
pub mod timing {
    use std::sync::Mutex;

    use super::{AtomicBool, Duration, Ordering, STAGES, Stage};

    static ENABLED: AtomicBool = AtomicBool::new(false);
    static TOTALS: Mutex<[(u64, Duration); STAGES.len()]> =
        Mutex::new([(0, Duration::ZERO); STAGES.len()]);

    /// Starts summing each stage's time.
    pub fn enable() {
        ENABLED.store(true, Ordering::Relaxed);
    }

    pub(super) fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    pub(super) fn add(stage: Stage, took: Duration) {
        if let Some(index) = STAGES.iter().position(|s| *s == stage)
            && let Ok(mut totals) = TOTALS.lock()
        {
            totals[index].0 += 1;
            totals[index].1 += took;
        }
    }

    /// Each stage's mean time since the last call, in order, and resets the sums.
    pub fn take() -> Vec<(Stage, Duration)> {
        let Ok(mut totals) = TOTALS.lock() else {
            return Vec::new();
        };
        let taken = STAGES
            .iter()
            .zip(totals.iter())
            .map(|(stage, (count, total))| {
                let mean = if *count == 0 {
                    Duration::ZERO
                } else {
                    *total / u32::try_from(*count).unwrap_or(u32::MAX)
                };
                (*stage, mean)
            })
            .collect();
        *totals = [(0, Duration::ZERO); STAGES.len()];
        taken
    }
}
