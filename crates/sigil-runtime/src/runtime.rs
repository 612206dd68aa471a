//! The runtime: a data directory, its configuration, the audit log, the enforcer and the
//! plugins, and the one dispatch path every tool call takes.
//!
//! The dispatch path is a list of stages ([`STAGES`], in `runtime/dispatch.rs`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sigil_audit::{Actor, AuditLog, AuditSink};
use sigil_manifest::BlastRadius;
use sigil_policy::{Capability, Decision};

use crate::approval_rules::Approvals;
use crate::config::{Config, ConfigError, Home};
use crate::enforcer::{Check, Enforcer, Subject};
use crate::kv::KvStore;
use crate::lifecycle::State;
use crate::manager::{Builtin, Manager, TierLoader};
use crate::tool::ToolDescriptor;

mod commands;
mod config_reload;
mod control;
mod deadline;
mod dispatch;
mod hooks;
mod pending_calls;
mod tool_pins;
mod watch;
pub use commands::{
    CommandCaller, CommandError, MAX_COMMAND_ARGS_BYTES, PluginCommand, clean_command_args,
};
pub use config_reload::{ADMIN_CONFIG, ConfigChange, ConfigUpdateError, ConfigWatch};
pub use control::ControlError;
#[doc(hidden)]
pub use dispatch::timing as stage_timing;
pub use dispatch::{STAGES, Stage};
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
