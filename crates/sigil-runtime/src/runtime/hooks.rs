//! Hooks: plugins that subscribe to lifecycle events (`[[hooks]]` in their manifest).
//!
//! The subscribers of an event are read from the manager's hook index at each dispatch (kept
//! by the registry as plugins come and go), so enabling, disabling, reloading or removing a
//! hook plugin takes effect at the next event, and an event nobody subscribes to costs one
//! lookup: only plugins that are running, list the `hook` kind and subscribe to the event take
//! part. They run one after another, lower `priority` first, ties in plugin id order, each under
//! its `timeout_ms` ([`DEFAULT_HOOK_TIMEOUT`] when unset); before-hooks also within what is left
//! of the call's deadline, which they share with the tool.
//!
//! Before-hooks decide. `allow` passes to the next hook; `deny` stops the action; `patch`
//! replaces what the event lets a hook change, validated again, and later hooks see the patched
//! payload; `ask` makes the call wait for a person's approval ([`ask_for_approval`]). A hook
//! that fails, panics or times out denies (fail closed). After-hooks observe: their verdicts are
//! ignored, and a failure is logged and recorded but changes nothing.
//!
//! Each hook run writes exactly one audit record under the id of the action that raised the
//! event (a before-hook's waits in the call's journal and is committed with the call's other
//! records), with the hook plugin as `plugin` and `hook.<event>` as capability: a before-hook's is
//! a decision record (allow or deny, and the rule saying which hook decided what), an
//! after-hook's an outcome record. A before-hook whose record cannot be written denies. Before-
//! hook decisions are published as `decision` events once recorded, like the enforcer's.
//!
//! # Security
//! A hook sees only the payload: for tool calls, the target, the input (and for after-hooks
//! the output or error), the actor and the call id; never the call's secrets. Its own host
//! actions pass the enforcer as the hook plugin, for the same actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sigil_audit::{Actor, AuditSink, NewRecord, RecordKind, Verdict};
use sigil_manifest::HookEvent;
use sigil_policy::Capability;

use super::deadline::{self, Confinement, Fault};
use super::dispatch::Deadline;
use super::{InvokeError, Runtime, schema_errors};
use crate::config::Config;
use crate::enforcer::CallJournal;
use crate::events::Event;
use crate::lifecycle::State;
use crate::manager::{PluginEntry, Source};
use crate::tool::{Call, HookVerdict, ToolPlugin};

/// How long a hook may run when its subscription sets no `timeout_ms`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest reason or error text of a hook kept in errors and audit records.
const MAX_REASON_CHARS: usize = 1000;

/// Why [`Runtime::emit`] refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// Before-hooks decide, so their event is raised by the code performing the action.
    #[error("`{0}` is a before-event: its hooks decide, so it cannot be emitted to be observed")]
    BeforeEvent(HookEvent),
}

/// One subscribed hook plugin.
struct Subscriber {
    entry: Arc<PluginEntry>,
    /// `None` when the plugin is not running (it failed to load or start): a before-hook that
    /// cannot run denies, as one that fails does.
    plugin: Option<Arc<dyn ToolPlugin>>,
    priority: i32,
    timeout: Duration,
}

impl Subscriber {
    fn id(&self) -> &str {
        self.entry.manifest().id().as_str()
    }
}

/// The hook plugins subscribed to `event` among `candidates` (the manager's index), in the
/// order they run: lower priority first, ties by plugin id. A directory plugin's subscription counts only with the operator's consent to
/// `hook.<event>` (given at install); compiled-in plugins are consented by construction. A
/// subscriber that is not running is listed all the same unless it was stopped (disabled or
/// removed), so that a guard that failed to load fails closed instead of vanishing.
fn subscribers(
    candidates: Vec<Arc<PluginEntry>>,
    config: &Config,
    event: HookEvent,
) -> Vec<Subscriber> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let consented = Capability::parse(&format!("hook.{event}")).ok();
    let mut list: Vec<Subscriber> = candidates
        .into_iter()
        .filter_map(|entry| {
            let subscription = *entry.manifest().hooks().iter().find(|h| h.event == event)?;
            if let Source::Directory(_) = entry.source()
                && !config.has_consent(entry.manifest().id().as_str(), consented.as_ref()?)
            {
                return None;
            }
            let plugin = match entry.lifecycle().state() {
                State::Running => entry.plugin.clone(),
                State::Stopped | State::Stopping | State::Draining => return None,
                _ => None,
            };
            Some(Subscriber {
                plugin,
                priority: subscription.priority,
                timeout: subscription
                    .timeout_ms
                    .map_or(DEFAULT_HOOK_TIMEOUT, Duration::from_millis),
                entry,
            })
        })
        .collect();
    list.sort_by(|a, b| (a.priority, a.id()).cmp(&(b.priority, b.id())));
    list
}

/// The tool call a `before_tool_execute` or `after_tool_execute` event is about.
pub(super) struct ToolEvent<'a> {
    pub(super) actor: &'a Actor,
    pub(super) plugin: &'a str,
    pub(super) tool: &'a str,
    pub(super) call_id: &'a str,
}

impl ToolEvent<'_> {
    fn payload(&self, input: &Value) -> Value {
        json!({
            "plugin": self.plugin,
            "tool": self.tool,
            "input": input,
            "actor": self.actor,
            "call_id": self.call_id,
        })
    }
}

/// What one before-hook's verdict does to the call.
struct Decided {
    verdict: Verdict,
    rule: String,
    /// The input from now on, when the hook patched it.
    patched: Option<Value>,
    /// Why the call stops here, if it does.
    stop: Option<InvokeError>,
    /// Why the call must wait for a person's approval, when the hook asked for one.
    ask: Option<String>,
}

/// What the before-hooks made of a call that may go on.
pub(super) struct Admitted {
    /// The input to call the tool with: the original, or the last patch.
    pub(super) input: Value,
    /// The reasons hooks gave for asking a person to approve the call; empty when none asked.
    pub(super) asks: Vec<String>,
    /// What the hooks did, for the call's steps: how many ran, and whether one patched.
    pub(super) summary: String,
}

impl Runtime {
    /// Runs the `before_tool_execute` hooks for a call whose input has passed the tool's input
    /// schema. Returns the input to call the tool with (the original, or the last patch) and
    /// the reasons of hooks that asked for a person's approval, which the caller turns into one
    /// pending approval ([`Runtime::await_approval`]). Every hook runs, even after one asked:
    /// a later one may still deny.
    ///
    /// # Errors
    /// [`InvokeError::HookDenied`] when a hook denies, fails, times out or returns a patch that
    /// breaks the schema; [`InvokeError::Audit`] when a hook's decision cannot be recorded.
    pub(super) async fn before_tool_execute(
        &self,
        call: &ToolEvent<'_>,
        candidates: Vec<Arc<PluginEntry>>,
        input: Value,
        schema: &jsonschema::Validator,
        journal: &CallJournal<'_>,
        deadline: &Deadline,
    ) -> Result<Admitted, InvokeError> {
        let event = HookEvent::BeforeToolExecute;
        let mut input = input;
        let mut asks = Vec::new();
        let (mut ran_count, mut patches) = (0, 0);
        for hook in subscribers(candidates, &self.config(), event) {
            if hook.entry.acts_directly() {
                // It can act without asking: what the call has recorded is committed first.
                journal
                    .flush()
                    .await
                    .map_err(|e| InvokeError::Audit(e.to_string()))?;
            }
            let started = Instant::now();
            let payload = call.payload(&input);
            let ran = self
                .run_hook(
                    &hook,
                    event,
                    &payload,
                    call.call_id,
                    call.actor,
                    Some(deadline),
                )
                .await;
            let decided = decide(hook.id(), call, ran, schema);
            let record = self.hook_record(&hook, event, call.actor, call.call_id, started);
            // Watchers of `/v1/events` see hook decisions beside the enforcer's, once recorded.
            let published = Event::Decision {
                seq: 0,
                plugin: Some(hook.id().to_string()),
                capability: format!("hook.{event}"),
                decision: decided.verdict,
                rule: decided.rule.clone(),
                actor: call.actor.clone(),
                call_id: Some(call.call_id.to_string()),
            };
            journal.add(
                NewRecord {
                    kind: RecordKind::Decision,
                    decision: Some(decided.verdict),
                    rule: decided.rule,
                    ..record
                },
                Some(published),
            );
            ran_count += 1;
            if let Some(stop) = decided.stop {
                return Err(stop);
            }
            if let Some(patched) = decided.patched {
                input = patched;
                patches += 1;
            }
            asks.extend(decided.ask);
        }
        let summary = match patches {
            0 => format!("{ran_count} ran"),
            n => format!("{ran_count} ran, {n} patched the input"),
        };
        Ok(Admitted {
            input,
            asks,
            summary,
        })
    }

    /// Runs the `after_tool_execute` hooks of a call that reached the execution pipeline,
    /// with its final input and its output or error. Nothing they do changes the result.
    pub(super) async fn after_tool_execute(
        &self,
        call: &ToolEvent<'_>,
        candidates: Vec<Arc<PluginEntry>>,
        input: &Value,
        result: &Result<Value, InvokeError>,
    ) {
        let mut payload = call.payload(input);
        match result {
            Ok(output) => payload["output"] = output.clone(),
            Err(error) => payload["error"] = Value::String(error.to_string()),
        }
        self.observe(
            HookEvent::AfterToolExecute,
            candidates,
            call.actor,
            call.call_id,
            &payload,
        )
        .await;
    }

    /// Delivers an observe-only event (one that is not `before_*`) to its subscribers, under a
    /// fresh id shared by their audit records, and returns that id. Sigil raises
    /// `after_tool_execute` itself; a front end raises the others it knows of (`sigil serve`
    /// raises `gateway_start` and `gateway_shutdown`).
    ///
    /// # Errors
    /// [`EmitError::BeforeEvent`] when `event` is a before-event: its hooks' verdicts must be
    /// acted on, which only the code performing that action can do.
    pub async fn emit(
        &self,
        event: HookEvent,
        actor: &Actor,
        payload: Value,
    ) -> Result<String, EmitError> {
        if event.is_before() {
            return Err(EmitError::BeforeEvent(event));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let candidates = self.manager.subscribed(event);
        self.observe(event, candidates, actor, &id, &payload).await;
        Ok(id)
    }

    async fn observe(
        &self,
        event: HookEvent,
        candidates: Vec<Arc<PluginEntry>>,
        actor: &Actor,
        call_id: &str,
        payload: &Value,
    ) {
        for hook in subscribers(candidates, &self.config(), event) {
            let started = Instant::now();
            let ran = self
                .run_hook(&hook, event, payload, call_id, actor, None)
                .await;
            let outcome = match ran {
                Ok(_) => "ok".to_string(),
                Err(problem) => {
                    tracing::warn!(plugin = %hook.id(), call_id, %event, %problem, "hook failed; the action stands");
                    format!("error: {problem}")
                }
            };
            let record = self.hook_record(&hook, event, actor, call_id, started);
            let written = self
                .audit
                .submit(NewRecord {
                    kind: RecordKind::Outcome,
                    rule: format!("hook {}: observed {event}", hook.id()),
                    outcome: Some(outcome),
                    steps: Vec::new(),
                    ..record
                })
                .await;
            if let Err(error) = written {
                tracing::error!(plugin = %hook.id(), call_id, %event, %error, "hook run not recorded in the audit log");
            }
        }
    }

    /// Runs one hook under its timeout, and within `deadline` (the call's) when it has one,
    /// under the one guard ([`deadline::guard`]). The hook's own call carries the event's id
    /// and actor, with the hook plugin as subject.
    async fn run_hook(
        &self,
        hook: &Subscriber,
        event: HookEvent,
        payload: &Value,
        call_id: &str,
        actor: &Actor,
        deadline: Option<&Deadline>,
    ) -> Result<HookVerdict, String> {
        // Counted in flight like a tool call, so a reload of the hook plugin drains it.
        let _in_flight = hook.entry.begin_call();
        let call = Call::new(
            self.enforcer.clone(),
            self.kv.clone(),
            self.config(),
            hook.id(),
            event.as_str(),
            call_id,
            actor,
        );
        let Some(plugin) = &hook.plugin else {
            let state = hook.entry.lifecycle().state();
            let why = hook
                .entry
                .lifecycle()
                .error()
                .map(|e| format!(": {}", clip(&e)))
                .unwrap_or_default();
            return Err(format!("failed: the hook plugin is {state}{why}"));
        };
        let left = deadline.map_or(hook.timeout, Deadline::remaining);
        let limit = hook.timeout.min(left);
        let timed_out = || match deadline {
            Some(deadline) if left < hook.timeout => format!(
                "the call's deadline of {} ms ran out (execution.limits.timeout_ms)",
                deadline.budget().as_millis()
            ),
            _ => format!(
                "timed out after {} ms (hooks.timeout_ms)",
                hook.timeout.as_millis()
            ),
        };
        if limit.is_zero() {
            return Err(timed_out());
        }
        let (plugin, payload) = (plugin.clone(), payload.clone());
        let run = async move { plugin.on_event(&call, event, &payload, limit).await };
        match deadline::guard(limit, Confinement::of(&hook.entry), run).await {
            Err(Fault::TimedOut) => Err(timed_out()),
            Err(Fault::Panicked) => Err("failed: the hook panicked".to_string()),
            Err(Fault::Failed(error)) => Err(format!("failed: {}", clip(&error.to_string()))),
            Ok(verdict) => Ok(verdict),
        }
    }

    /// The fields every hook record shares.
    fn hook_record(
        &self,
        hook: &Subscriber,
        event: HookEvent,
        actor: &Actor,
        call_id: &str,
        started: Instant,
    ) -> NewRecord {
        NewRecord {
            kind: RecordKind::Decision,
            actor: actor.clone(),
            plugin: Some(hook.id().to_string()),
            plugin_version: Some(hook.entry.manifest().version().to_string()),
            capability: Some(format!("hook.{event}")),
            decision: None,
            rule: String::new(),
            call_id: Some(call_id.to_string()),
            duration_us: Some(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)),
            outcome: None,
            steps: Vec::new(),
        }
    }
}

/// Turns one before-hook's verdict (or its failure) into what happens to the call.
fn decide(
    hook: &str,
    call: &ToolEvent<'_>,
    ran: Result<HookVerdict, String>,
    schema: &jsonschema::Validator,
) -> Decided {
    let deny = |rule: String, reason: String| Decided {
        verdict: Verdict::Deny,
        rule,
        patched: None,
        stop: Some(InvokeError::HookDenied {
            hook: hook.to_string(),
            reason,
        }),
        ask: None,
    };
    match ran {
        Ok(HookVerdict::Allow) => Decided {
            verdict: Verdict::Allow,
            rule: format!("hook {hook}: allow"),
            patched: None,
            stop: None,
            ask: None,
        },
        Ok(HookVerdict::Deny(reason)) => {
            let reason = clip(&reason);
            deny(format!("hook {hook}: deny: {reason}"), reason)
        }
        Ok(HookVerdict::Patch(patch)) => match patched_input(call, patch, schema) {
            Ok(input) => Decided {
                verdict: Verdict::Allow,
                rule: format!("hook {hook}: patched the input"),
                patched: Some(input),
                stop: None,
                ask: None,
            },
            Err(problem) => deny(
                format!("hook {hook}: patch rejected: {problem}"),
                format!("its patch was rejected: {problem}"),
            ),
        },
        Ok(HookVerdict::Ask(reason)) => ask_for_approval(hook, clip(&reason)),
        Err(problem) => deny(format!("hook {hook}: {problem}"), problem),
    }
}

/// A before-hook asks for a person's approval: this hook lets the call go on, and the call
/// then waits as a pending approval ([`Runtime::await_approval`]) with the hook's reason, unless
/// a later hook denies it. This is the one place that decides what an `ask` verdict does.
fn ask_for_approval(hook: &str, reason: String) -> Decided {
    Decided {
        verdict: Verdict::Allow,
        rule: format!("hook {hook}: asks for a person's approval: {reason}"),
        patched: None,
        stop: None,
        ask: Some(format!("hook {hook} asks: {reason}")),
    }
}

/// The input a `before_tool_execute` patch carries. A patch is the whole payload, modified; only
/// its `input` is taken (the target, actor and call id cannot be changed by a hook), and it must
/// match the tool's input schema.
fn patched_input(
    call: &ToolEvent<'_>,
    patch: Value,
    schema: &jsonschema::Validator,
) -> Result<Value, String> {
    let Value::Object(mut patch) = patch else {
        return Err("a patch must be the event's payload, a JSON object with `input`".to_string());
    };
    let Some(input) = patch.remove("input") else {
        return Err("the patched payload has no `input`".to_string());
    };
    let errors = schema_errors(schema, &input);
    if !errors.is_empty() {
        return Err(format!(
            "the patched input does not match the input schema of `{}/{}`: {}",
            call.plugin,
            call.tool,
            clip(&errors.join("; "))
        ));
    }
    Ok(input)
}

/// A text a hook chose, as people see it (approval listings, errors, the audit log): on one
/// line, at most [`MAX_REASON_CHARS`] characters ([`crate::guest_text::line`]).
fn clip(text: &str) -> String {
    crate::guest_text::line(text, MAX_REASON_CHARS)
}
