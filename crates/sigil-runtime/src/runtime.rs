//! The runtime: a data directory, its configuration, the audit log, the enforcer and the
//! plugins, and the one dispatch path every tool call takes.
//!
//! The dispatch path, in order (each layer runs only if the one before it passed):
//! 1. the enforcer checks that the actor may call `tool.<plugin>.<tool>` (recorded);
//! 2. the plugin must be running and provide the tool;
//! 3. the arguments are validated against the tool's input schema;
//!    then the `before_tool_execute` hooks run (`hooks.rs`): each may deny the call or patch
//!    its input, which is validated again;
//!    then a call waits for a person's approval when the tool's blast radius matches
//!    `approvals.require` or a hook asked for one
//!    approval ([`Runtime::await_approval`]);
//! 4. validate-pre, invoke (under the manifest's deadline), the output-size cap, the output
//!    schema, validate-post; on a failure after the invocation started, rollback;
//! 5. an outcome record with the steps taken, the duration and the result;
//!    then the `after_tool_execute` hooks observe the result, which they cannot change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use sigil_audit::{Actor, AuditLog, AuditSink, NewRecord, RecordKind};
use sigil_manifest::BlastRadius;
use sigil_policy::{Capability, Decision};

use crate::approval_rules::Approvals;
use crate::config::{Config, ConfigError, Home};
use crate::enforcer::{Check, Enforcer, Subject};
use crate::kv::KvStore;
use crate::lifecycle::State;
use crate::manager::{Builtin, Manager, PluginEntry, TierLoader, ToolEntry};
use crate::tool::{Call, ToolDescriptor, ToolError};
use deadline::{Confinement, Ended};

mod commands;
mod config_reload;
mod control;
mod deadline;
mod hooks;
mod pending_calls;
mod tool_pins;
mod watch;
pub use commands::{
    CommandCaller, CommandError, MAX_COMMAND_ARGS_BYTES, PluginCommand, clean_command_args,
};
pub use config_reload::{ADMIN_CONFIG, ConfigChange, ConfigUpdateError, ConfigWatch};
pub use control::ControlError;
pub use hooks::{DEFAULT_HOOK_TIMEOUT, EmitError};
pub use pending_calls::{APPROVALS_DECIDE, ApprovalRequest, DecidedApproval};
pub use tool_pins::Approval;
pub use watch::{HOT_RELOAD_QUIET, HotReload};

/// The deadline of a tool call whose manifest sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest result, serialised as JSON, of a tool whose manifest sets no limit.
pub const DEFAULT_OUTPUT_BYTES: u64 = 1024 * 1024;

/// Sigil, opened on a data directory.
#[derive(Debug)]
pub struct Runtime {
    home: Home,
    config: config_reload::LiveConfig,
    kv: Arc<KvStore>,
    audit: Arc<AuditLog>,
    enforcer: Arc<Enforcer>,
    manager: Manager,
    approvals: Approvals,
}

/// Why the runtime could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory or `sigil.toml`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The audit database.
    #[error("audit log: {0}")]
    Audit(#[from] sigil_audit::AuditError),
}

/// A tool as listed to callers.
#[derive(Debug, Clone, Serialize)]
pub struct ToolListing {
    /// The plugin providing it.
    pub plugin: String,
    /// The tool.
    #[serde(flatten)]
    pub tool: ToolDescriptor,
    /// Its blast radius, from the manifest's `[actions.<tool>]`.
    pub blast_radius: Option<BlastRadius>,
}

/// A successful tool call.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    /// The id shared by every audit record of the call.
    pub call_id: String,
    /// The tool's result.
    pub output: Value,
    /// How long the call took, end to end.
    #[serde(serialize_with = "micros")]
    pub duration: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_micros())
}

/// Why a tool call failed. Every variant after `BadTarget` has been recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The target is not `plugin/tool`.
    #[error("`{0}` is not a tool name: write it as PLUGIN/TOOL, e.g. `text/sha256`")]
    BadTarget(String),
    /// The enforcer denied the call.
    #[error("denied: {rule}")]
    Denied {
        /// Why.
        rule: String,
    },
    /// The plugin exists but is not serving calls.
    #[error("plugin `{plugin}` is {state}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    NotRunning {
        /// The plugin.
        plugin: String,
        /// Its state.
        state: State,
        /// Why, when it failed.
        reason: Option<String>,
    },
    /// The plugin has no such tool.
    #[error("plugin `{plugin}` has no tool `{tool}`; it has: {}", available.join(", "))]
    UnknownTool {
        /// The plugin.
        plugin: String,
        /// The tool asked for.
        tool: String,
        /// The tools it does have.
        available: Vec<String>,
    },
    /// The tool is held for an operator's approval: its definition changed since it was
    /// approved.
    #[error(
        "tool `{plugin}/{tool}` is held for approval ({reason}); an operator approves it with `sigil plugin approve {plugin}`"
    )]
    Held {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// What changed.
        reason: String,
    },
    /// The arguments do not match the tool's input schema.
    #[error("invalid arguments for `{target}`:\n  {}", errors.join("\n  "))]
    InvalidArguments {
        /// `plugin/tool`.
        target: String,
        /// Every schema violation, each with its location in the input.
        errors: Vec<String>,
    },
    /// A before-hook stopped the call: it denied it, its patch was rejected, or it failed or
    /// timed out (a before-hook fails closed).
    #[error("hook `{hook}` stopped the call: {reason}")]
    HookDenied {
        /// The hook plugin.
        hook: String,
        /// Why.
        reason: String,
    },
    /// A pipeline step failed.
    #[error("{step} failed: {error}{}", rollback.as_ref().map(|r| format!(" (rollback: {r})")).unwrap_or_default())]
    Failed {
        /// Which step.
        step: Step,
        /// What went wrong.
        error: String,
        /// What rollback did, when it ran.
        rollback: Option<String>,
    },
    /// The call needed a person's approval and did not get it: denied, timed out, or
    /// refused because nobody could decide it.
    #[error("call of `{plugin}/{tool}` was not approved: {reason}")]
    ApprovalDenied {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
        /// The approval's id, when one was pending.
        approval: Option<String>,
        /// Who denied it and why, or that it timed out.
        reason: String,
    },
    /// The call's outcome could not be recorded.
    #[error("the call ran but its outcome could not be recorded in the audit log: {0}")]
    Audit(String),
}

impl InvokeError {
    /// A stable name for this kind of failure, for clients that branch on it: the one table
    /// the HTTP API (`code`), MCP (`sigil/error` in a result's metadata) and the command line
    /// share.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::BadTarget(_) => "bad_target",
            InvokeError::Denied { .. } => "forbidden",
            InvokeError::NotRunning { .. } => "plugin_not_running",
            InvokeError::UnknownTool { .. } => "unknown_tool",
            InvokeError::Held { .. } => "tool_held",
            InvokeError::InvalidArguments { .. } => "invalid_arguments",
            InvokeError::HookDenied { .. } => "hook_denied",
            InvokeError::Failed { .. } => "tool_failed",
            InvokeError::ApprovalDenied { .. } => "approval_denied",
            InvokeError::Audit(_) => "audit_unavailable",
        }
    }
}

/// Where a tool call comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A caller naming the tool ([`Runtime::invoke`]).
    Direct,
    /// A plugin command whose `require_auth` check passed.
    Command,
}

/// A step of the execution pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Validation before the call.
    ValidatePre,
    /// The call itself, including its deadline, output cap and output schema.
    Invoke,
    /// Validation of the result.
    ValidatePost,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::ValidatePre => "validate-pre",
            Step::Invoke => "invoke",
            Step::ValidatePost => "validate-post",
        })
    }
}

impl Runtime {
    /// Opens the data directory: reads `sigil.toml`, opens the audit log, adds the builtins,
    /// and discovers plugin directories (`<home>/plugins` and `plugin_dirs`). Plugins the
    /// operator disabled ([`Runtime::disable`]) are loaded, then stopped.
    ///
    /// # Errors
    /// When `sigil.toml` is invalid or the database cannot be opened. Broken plugins are not
    /// errors: they are listed with their diagnostics.
    pub fn open(home: Home, builtins: Vec<Builtin>) -> Result<Runtime, OpenError> {
        Runtime::open_with(home, builtins, Vec::new())
    }

    /// [`Runtime::open`], loading directory plugins of each tier through its loader.
    ///
    /// # Errors
    /// As for [`Runtime::open`].
    pub fn open_with(
        home: Home,
        builtins: Vec<Builtin>,
        tiers: Vec<(sigil_manifest::Tier, Arc<dyn TierLoader>)>,
    ) -> Result<Runtime, OpenError> {
        Runtime::open_parts(home, builtins, |enforcer| Manager::new(enforcer, tiers))
    }

    /// Opens the runtime without starting any plugin from a directory: manifests are read and
    /// each plugin's authority registered, so the audit log, policy explanations and plugin
    /// listings answer as they would, but no process, sandbox, component or MCP server is
    /// started (see [`Manager::inactive`]). Costs a read of each manifest; blocks on the
    /// database like [`Runtime::open_with`].
    ///
    /// # Errors
    /// As [`Runtime::open_with`].
    pub fn open_inactive(home: Home, builtins: Vec<Builtin>) -> Result<Runtime, OpenError> {
        Runtime::open_parts(home, builtins, Manager::inactive)
    }

    fn open_parts(
        home: Home,
        builtins: Vec<Builtin>,
        manager: impl FnOnce(Arc<Enforcer>) -> Manager,
    ) -> Result<Runtime, OpenError> {
        let config = Config::load(&home.config_path())?;
        let audit = Arc::new(AuditLog::open_with(
            &home.database_path(),
            &home.audit_keys(),
            config.audit_durability(),
        )?);
        let kv = Arc::new(
            KvStore::open(&home.database_path()).map_err(|message| ConfigError {
                path: home.database_path(),
                message,
            })?,
        );
        let secrets =
            crate::secrets::SecretStore::open(&home.database_path(), home.secret_key_path())
                .map_err(|message| ConfigError {
                    path: home.database_path(),
                    message,
                })?;
        let config = config_reload::LiveConfig::new(config, secrets);
        let sink: Arc<dyn AuditSink> = audit.clone();
        let enforcer = Arc::new(Enforcer::new(&config.get(), sink));
        let manager = manager(enforcer.clone());
        for builtin in builtins {
            manager.add_builtin(builtin);
        }
        let loaded = config.get();
        manager.check_builtin_configs(&loaded);
        manager.discover(&home.plugins_dir(), &loaded);
        for dir in loaded.plugin_dirs() {
            let dir = if dir.is_relative() {
                home.root().join(dir)
            } else {
                dir.clone()
            };
            manager.discover(&dir, &loaded);
        }
        manager.check_dependencies();
        let approvals = Approvals::new(&loaded);
        let runtime = Runtime {
            home,
            config,
            kv,
            audit,
            enforcer,
            manager,
            approvals,
        };
        runtime.stop_disabled();
        Ok(runtime)
    }

    /// The data directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The configuration in force now. A reload ([`Runtime::reload_config`]) swaps it whole;
    /// the value returned stays as it was.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The enforcer.
    pub fn enforcer(&self) -> &Arc<Enforcer> {
        &self.enforcer
    }

    /// The plugins.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// An actor for the local command line: the named user, else `[defaults] user`; the named
    /// workspace, else the one the user acts in by default ([`Config::home_workspace`]).
    ///
    /// # Security
    /// The actor is what was asked for, not what is allowed: a workspace the user does not
    /// belong to makes every decision for it a deny ([`sigil_policy::DenyRule::NotMember`]).
    pub fn local_actor(&self, user: Option<&str>, workspace: Option<&str>) -> Actor {
        let config = self.config();
        let user = user.or(config.default_user());
        let workspace = workspace
            .or_else(|| user.and_then(|u| config.home_workspace(u)))
            .or(config.default_workspace());
        Actor {
            user: user.map(str::to_string),
            workspace: workspace.map(str::to_string),
            session: None,
            channel: Some("cli".to_string()),
        }
    }

    /// Every tool of every running plugin, but those held for an operator's approval.
    pub fn tools(&self) -> Vec<ToolListing> {
        let mut listings = Vec::new();
        for entry in self.manager.entries() {
            if entry.lifecycle().state() != State::Running {
                continue;
            }
            // A held tool's definition is what an operator has not approved: it is not shown
            // to callers (its plugin's listing names it, with what changed).
            let held = entry.held();
            let commands = entry.manifest().commands();
            for tool in entry.tools() {
                if held.iter().any(|h| h.tool == tool.name) {
                    continue;
                }
                // A tool behind an authenticated command is reached only through the command.
                if commands
                    .iter()
                    .any(|c| c.require_auth && c.tool == tool.name)
                {
                    continue;
                }
                listings.push(ToolListing {
                    plugin: entry.manifest().id().to_string(),
                    tool: tool.clone(),
                    blast_radius: entry.manifest().actions().get(&tool.name).cloned(),
                });
            }
        }
        listings
    }

    /// What the enforcer would decide for `plugin` using `capability` on the actor's behalf,
    /// without recording it.
    ///
    /// # Errors
    /// When `capability` does not parse.
    pub fn explain(
        &self,
        capability: &str,
        plugin: &str,
        actor: &Actor,
    ) -> Result<Decision, sigil_policy::CapabilityError> {
        let capability = Capability::parse(capability)?;
        Ok(self.enforcer.explain(&Check {
            subject: Subject::Plugin(plugin),
            capability: &capability,
            actor,
            call_id: None,
        }))
    }

    /// Calls `plugin/tool` with `input` on the actor's behalf, through the whole pipeline.
    ///
    /// # Errors
    /// [`InvokeError`], with every failure after target parsing recorded in the audit log.
    pub async fn invoke(
        &self,
        actor: &Actor,
        target: &str,
        input: Value,
    ) -> Result<Invocation, InvokeError> {
        self.invoke_as(actor, target, input, Origin::Direct).await
    }

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

        let check = Check {
            subject: Subject::CallInto(plugin),
            capability: &capability,
            actor,
            call_id: Some(&call_id),
        };
        if let Decision::Deny { rule } = self.enforcer.check(&check).await {
            return Err(InvokeError::Denied {
                rule: rule.to_string(),
            });
        }
        let record = OutcomeRecord {
            audit: &self.audit,
            actor,
            plugin,
            capability: &capability,
            call_id: &call_id,
            started,
        };
        let Some(mut entry) = self.manager.get(plugin) else {
            // Registered with the enforcer but gone from the manager: removed in between.
            let error = InvokeError::NotRunning {
                plugin: plugin.into(),
                state: State::Stopped,
                reason: None,
            };
            return Err(record.failure(None, error).await);
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
            match self.manager.get(plugin) {
                Some(successor) if !Arc::ptr_eq(&successor, &entry) => {
                    drop(in_flight);
                    entry = successor;
                    in_flight = entry.begin_call();
                    state = entry.lifecycle().state();
                }
                _ => break,
            }
        }
        let mut _in_flight = in_flight;
        let version = entry.manifest().version().to_string();
        let (Some(implementation), State::Running) = (entry.plugin.clone(), state) else {
            let error = InvokeError::NotRunning {
                plugin: plugin.into(),
                state,
                reason: entry.lifecycle().error(),
            };
            return Err(record.failure(Some(&version), error).await);
        };
        let Some(tool_entry) = entry.tools.iter().find(|t| t.descriptor.name == tool) else {
            let error = InvokeError::UnknownTool {
                plugin: plugin.into(),
                tool: tool.into(),
                available: entry.tools().map(|t| t.name.clone()).collect(),
            };
            return Err(record.failure(Some(&version), error).await);
        };
        if origin == Origin::Direct
            && let Some(command) = entry
                .manifest()
                .commands()
                .iter()
                .find(|c| c.require_auth && c.tool == tool)
        {
            // Otherwise calling the tool would skip the command's authentication.
            let error = InvokeError::Denied {
                rule: format!(
                    "tool `{plugin}/{tool}` runs only as the authenticated command `sigil {}`",
                    command.name
                ),
            };
            return Err(record.failure(Some(&version), error).await);
        }
        if let Some(held) = implementation.held().into_iter().find(|h| h.tool == tool) {
            let error = InvokeError::Held {
                plugin: plugin.into(),
                tool: tool.into(),
                reason: held.reason,
            };
            return Err(record.failure(Some(&version), error).await);
        }
        let errors = schema_errors(&tool_entry.input, &input);
        if !errors.is_empty() {
            let error = InvokeError::InvalidArguments {
                target: target.into(),
                errors,
            };
            return Err(record.failure(Some(&version), error).await);
        }
        let event = hooks::ToolEvent {
            actor,
            plugin,
            tool,
            call_id: &call_id,
        };
        let hooks::Admitted { input, asks } = match self
            .before_tool_execute(&event, input, &tool_entry.input)
            .await
        {
            Ok(admitted) => admitted,
            Err(error) => return Err(record.failure(Some(&version), error).await),
        };
        let blast = entry.claimed_blast_radius(tool);
        let reasons: Vec<String> = self
            .approvals
            .required(plugin, tool, blast)
            .into_iter()
            .chain(asks)
            .collect();
        if !reasons.is_empty() {
            let reason = reasons.join("; ");
            let request = ApprovalRequest {
                plugin,
                tool,
                actor,
                call_id: &call_id,
                input: &input,
                reason: &reason,
            };
            // Not counted in flight while a person decides: a reload or disable does not wait
            // for them. The state is read again once the call may go on.
            drop(_in_flight);
            let approved = self.await_approval(request).await;
            _in_flight = entry.begin_call();
            let state = entry.lifecycle().state();
            let error = match approved {
                Err(error) => Some(error),
                Ok(()) if state != State::Running => Some(InvokeError::NotRunning {
                    plugin: plugin.into(),
                    state,
                    reason: Some(
                        "it changed while the call waited for approval; call again".into(),
                    ),
                }),
                // The policy may have changed while a person decided (a configuration reload
                // revoking the caller's permission): the call goes on only if it would still
                // be allowed. The refusal is recorded with the call's outcome.
                Ok(()) => match self.enforcer.explain(&check) {
                    Decision::Allow { .. } => None,
                    Decision::Deny { rule } => Some(InvokeError::Denied {
                        rule: format!("{rule} (checked again after the approval)"),
                    }),
                },
            };
            if let Some(error) = error {
                return Err(record.failure(Some(&version), error).await);
            }
        }

        let call = Call::new(
            self.enforcer.clone(),
            self.kv.clone(),
            self.config(),
            plugin,
            tool,
            &call_id,
            actor,
        );
        let mut steps = Vec::new();
        let result = pipeline(
            &entry,
            tool_entry,
            &implementation,
            &call,
            &input,
            &mut steps,
        )
        .await;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        record
            .write(Some(&version), &steps.join("; "), outcome)
            .await
            .map_err(InvokeError::Audit)?;
        // Run before answering, so an observer has seen the call when its caller has.
        self.after_tool_execute(&event, &input, &result).await;
        result.map(|output| Invocation {
            call_id,
            output,
            duration: started.elapsed(),
        })
    }
}

/// Runs the execution pipeline, noting each step in `steps`.
///
/// Each step runs under the manifest's deadline, confined as [`Confinement::of`] says, so a
/// step that blocks holds neither the runtime's worker threads nor its caller past the
/// deadline.
async fn pipeline(
    entry: &PluginEntry,
    tool: &ToolEntry,
    plugin: &Arc<dyn crate::tool::ToolPlugin>,
    call: &Call,
    input: &Value,
    steps: &mut Vec<String>,
) -> Result<Value, InvokeError> {
    let limits = &entry.manifest().execution().limits;
    let deadline = limits
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);
    let confinement = Confinement::of(entry);
    let output_cap = limits.output_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES);
    let has = tool.descriptor.steps;
    let fail = |step, error: String, rollback| InvokeError::Failed {
        step,
        error,
        rollback,
    };
    // Each step owns what it uses: a confined step may outlive this call's wait for it.
    let owned = || (plugin.clone(), call.clone(), input.clone());

    if has.validate_pre {
        let (plugin, call, input) = owned();
        let step = async move { plugin.validate_pre(&call, &input).await };
        let result = guarded(deadline, confinement, step).await;
        note(steps, "validate-pre", &result);
        if let Err(error) = result {
            return Err(fail(Step::ValidatePre, error, None));
        }
    }

    let step = {
        let (plugin, call, input) = owned();
        async move { plugin.invoke(&call, input).await }
    };
    let invoked = guarded(deadline, confinement, step).await.and_then(|output| {
        let size = serde_json::to_vec(&output).map(|v| v.len() as u64).unwrap_or(u64::MAX);
        if size > output_cap {
            return Err(format!("output of {size} bytes exceeds the limit of {output_cap} bytes (execution.limits.output_bytes)"));
        }
        if let Some(schema) = &tool.output {
            let errors = schema_errors(schema, &output);
            if !errors.is_empty() {
                return Err(format!("output does not match the tool's output schema: {}", errors.join("; ")));
            }
        }
        Ok(output)
    });
    note(steps, "invoke", &invoked);
    let (failed_step, error, output) = match invoked {
        Err(error) => (Step::Invoke, error, None),
        Ok(output) if has.validate_post => {
            let (plugin, call, input) = owned();
            let checked = output.clone();
            let step = async move { plugin.validate_post(&call, &input, &checked).await };
            let result = guarded(deadline, confinement, step).await;
            note(steps, "validate-post", &result);
            match result {
                Ok(()) => return Ok(output),
                Err(error) => (Step::ValidatePost, error, Some(output)),
            }
        }
        Ok(output) => return Ok(output),
    };
    let rollback = if has.rollback {
        let (plugin, call, input) = owned();
        let step = async move { plugin.rollback(&call, &input, output.as_ref()).await };
        let result = guarded(deadline, confinement, step).await;
        note(steps, "rollback", &result);
        Some(match result {
            Ok(()) => "rolled back".to_string(),
            Err(e) => format!("rollback failed: {e}"),
        })
    } else {
        None
    };
    Err(fail(failed_step, error, rollback))
}

/// Runs one plugin step under the deadline, turning a panic into an error: a plugin fault
/// never takes the host down, and a step that overruns its deadline ends its call whatever it
/// does ([`deadline::within`]).
async fn guarded<T: Send + 'static>(
    deadline: Duration,
    confinement: Confinement,
    step: impl std::future::Future<Output = Result<T, ToolError>> + Send + 'static,
) -> Result<T, String> {
    match deadline::within(deadline, confinement, step).await {
        Ended::TimedOut => Err(format!(
            "deadline of {} ms exceeded (execution.limits.timeout_ms)",
            deadline.as_millis()
        )),
        Ended::Panicked => Err("the plugin panicked".to_string()),
        // The plugin's own words, shown and recorded under the one rule for guest text.
        Ended::Returned(result) => result.map_err(|e| crate::guest_text::clean(&e.to_string())),
    }
}

fn note<T>(steps: &mut Vec<String>, name: &str, result: &Result<T, String>) {
    steps.push(match result {
        Ok(_) => format!("{name} ok"),
        Err(e) => format!("{name} failed: {e}"),
    });
}

pub(crate) fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at `{at}`: {e}")
        })
        .collect()
}

/// Writes the outcome record of a call that passed the enforcer.
struct OutcomeRecord<'a> {
    audit: &'a AuditLog,
    actor: &'a Actor,
    plugin: &'a str,
    capability: &'a Capability,
    call_id: &'a str,
    started: Instant,
}

impl OutcomeRecord<'_> {
    async fn write(
        &self,
        version: Option<&str>,
        steps: &str,
        outcome: String,
    ) -> Result<u64, String> {
        let record = NewRecord {
            kind: RecordKind::Outcome,
            actor: self.actor.clone(),
            plugin: Some(self.plugin.to_string()),
            plugin_version: version.map(str::to_string),
            capability: Some(self.capability.to_string()),
            decision: None,
            rule: steps.to_string(),
            call_id: Some(self.call_id.to_string()),
            duration_us: Some(self.started.elapsed().as_micros() as u64),
            outcome: Some(outcome),
            steps: Vec::new(),
        };
        self.audit.submit(record).await.map_err(|e| e.to_string())
    }

    /// Records a call rejected before it reached the plugin, and returns its error.
    async fn failure(&self, version: Option<&str>, error: InvokeError) -> InvokeError {
        match self
            .write(version, "rejected before invoke", format!("error: {error}"))
            .await
        {
            Ok(_) => error,
            Err(audit) => InvokeError::Audit(audit),
        }
    }
}
