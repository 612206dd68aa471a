//! The tool contract every tier implements: describe, invoke, and the optional
//! validate-pre / validate-post / rollback steps of the execution pipeline.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use sigil_audit::Actor;
use sigil_manifest::HookEvent;
use sigil_policy::{Capability, Decision, DenyRule};

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::enforcer::{Check, Enforcer, Refusal, Subject};
use crate::kv::KvStore;
use crate::secret_binding::BoundSecret;

/// What a tool is: shown to agents and operators, and used to validate calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDescriptor {
    /// The tool's name, unique within its plugin: `[a-z0-9_-]+`.
    pub name: String,
    /// What the tool does, for a model deciding whether to call it.
    pub description: String,
    /// JSON Schema of the input. Arguments are validated against it before the plugin sees them.
    pub input_schema: Value,
    /// JSON Schema of the output, checked on every result when present.
    pub output_schema: Option<Value>,
    /// Which optional pipeline steps the tool provides.
    pub steps: Steps,
}

/// A tool refused until an operator approves it: its definition is not the one approved (an
/// MCP server that changed a tool after install). Calls to it are denied and audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldTool {
    /// The tool's name.
    pub tool: String,
    /// What changed, for the operator deciding.
    pub reason: String,
}

/// The optional steps of the execution pipeline a tool provides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Steps {
    /// Checks the input before anything happens.
    pub validate_pre: bool,
    /// Checks the result after the invocation.
    pub validate_post: bool,
    /// Undoes an invocation whose execution or post-validation failed.
    pub rollback: bool,
}

/// What a hook answers for one event. Only before-hooks' verdicts take effect; after-hooks
/// observe, and their verdicts are ignored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "value")]
pub enum HookVerdict {
    /// Go ahead; the next hook decides next.
    Allow,
    /// Stop the action, for this reason (shown to the caller and recorded).
    Deny(String),
    /// Go ahead with this payload instead: the whole payload, modified. The host takes from it
    /// only what the event lets a hook change (for `before_tool_execute`, `input`) and
    /// validates that again.
    Patch(Value),
    /// Stop until an operator approves the action, for this reason.
    Ask(String),
}

/// A tool's failure, as the plugin reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// A host call was denied by the enforcer.
    #[error("denied `{capability}`: {rule}")]
    Denied {
        /// The capability asked for.
        capability: String,
        /// Why it was denied.
        rule: String,
    },
    /// The input made sense to the schema but not to the tool.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool failed.
    #[error("{0}")]
    Failed(String),
}

/// One call into a plugin: who asked, and the plugin's door back to the host.
///
/// Owned and cheap to clone, so a tier can keep it in a sandbox's host state for the call's
/// duration.
///
/// # Security
/// Every method that reaches outside the plugin asks the enforcer first, with the plugin as
/// subject and this call's actor, and the decision is recorded under this call's id.
#[derive(Debug, Clone)]
pub struct Call {
    inner: Arc<CallInner>,
}

#[derive(Debug)]
struct CallInner {
    enforcer: Arc<Enforcer>,
    kv: Arc<KvStore>,
    config: Arc<Config>,
    plugin: String,
    tool: String,
    call_id: String,
    actor: Actor,
}

impl Call {
    pub(crate) fn new(
        enforcer: Arc<Enforcer>,
        kv: Arc<KvStore>,
        config: Arc<Config>,
        plugin: &str,
        tool: &str,
        call_id: &str,
        actor: &Actor,
    ) -> Call {
        Call {
            inner: Arc::new(CallInner {
                enforcer,
                kv,
                config,
                plugin: plugin.to_string(),
                tool: tool.to_string(),
                call_id: call_id.to_string(),
                actor: actor.clone(),
            }),
        }
    }

    /// The plugin being called.
    pub fn plugin(&self) -> &str {
        &self.inner.plugin
    }

    /// The tool being called.
    pub fn tool(&self) -> &str {
        &self.inner.tool
    }

    /// The call's id, shared by every audit record of this call.
    pub fn call_id(&self) -> &str {
        &self.inner.call_id
    }

    /// On whose behalf the call runs.
    pub fn actor(&self) -> &Actor {
        &self.inner.actor
    }

    /// Asks the enforcer for `capability` on behalf of this call.
    ///
    /// # Security
    /// Text that does not parse as a capability (a kv key or path with a NUL or a newline) is
    /// denied and recorded like any other deny ([`Enforcer::check_text`]).
    ///
    /// # Errors
    /// [`ToolError::Denied`] when the capability does not parse or is not granted at every
    /// layer, or when its audit record cannot be written.
    pub async fn authorize(&self, capability: &str) -> Result<Capability, ToolError> {
        self.inner
            .enforcer
            .check_text(
                Subject::Plugin(&self.inner.plugin),
                capability,
                &self.inner.actor,
                Some(&self.inner.call_id),
            )
            .await
            .map_err(|denial| ToolError::Denied {
                capability: denial.capability,
                rule: denial.rule.to_string(),
            })
    }

    /// Refuses a host action whose input cannot be made into a capability at all (a URL with
    /// no host, say): records the deny as a malformed capability, `text` being what was asked
    /// for (escaped and cut), and returns the error for the plugin.
    pub async fn refuse_malformed(&self, text: &str, reason: &str) -> ToolError {
        let denial = self
            .inner
            .enforcer
            .refuse_malformed(
                Subject::Plugin(&self.inner.plugin),
                text,
                reason,
                &self.inner.actor,
                Some(&self.inner.call_id),
            )
            .await;
        ToolError::Denied {
            capability: denial.capability,
            rule: denial.rule.to_string(),
        }
    }

    /// Asks the enforcer whether the plugin may connect to `address` (`net.connect:<ip>:<port>`,
    /// the address actually connected to, after name resolution) reached through `host`
    /// (`net.connect:<host>:<port>` as the plugin named it), with `reach` saying what the
    /// address's class takes. Records the decision under this call.
    ///
    /// # Errors
    /// [`ToolError::Denied`] naming the address and the rule.
    pub async fn authorize_destination(
        &self,
        address: &str,
        host: &str,
        reach: sigil_policy::Reach<'_>,
    ) -> Result<(), ToolError> {
        let parse = |text: &str| {
            Capability::parse(text).map_err(|e| ToolError::Denied {
                capability: text.to_string(),
                rule: e.to_string(),
            })
        };
        let address = parse(address)?;
        let host = parse(host)?;
        let check = Check {
            subject: Subject::Plugin(&self.inner.plugin),
            capability: &address,
            actor: &self.inner.actor,
            call_id: Some(&self.inner.call_id),
        };
        match self
            .inner
            .enforcer
            .check_destination(&check, &host, reach)
            .await
        {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { rule } => Err(ToolError::Denied {
                capability: address.to_string(),
                rule: rule.to_string(),
            }),
        }
    }

    /// Refuses `capability` for this call for a reason the policy does not know (what the tier
    /// holds no longer matches what was granted): records it as a deny of this call, then
    /// returns the error to end the step with.
    pub async fn refuse(&self, capability: &str, reason: &str) -> ToolError {
        let refusal = Refusal {
            plugin: &self.inner.plugin,
            version: None,
            capability: Some(capability),
            actor: &self.inner.actor,
            call_id: Some(&self.inner.call_id),
            reason,
        };
        self.inner.enforcer.refuse(&refusal).await;
        ToolError::Denied {
            capability: capability.to_string(),
            rule: reason.to_string(),
        }
    }

    /// A deny, at any level, that reaches `capability` or anything below it (for a path: any
    /// path under it). A tier must not hand the plugin a whole directory that such a deny
    /// carves into.
    pub fn deny_within(&self, capability: &Capability) -> Option<String> {
        self.inner
            .enforcer
            .deny_within(&self.inner.plugin, &self.inner.actor, capability)
            .map(|pattern| pattern.to_string())
    }

    /// Reads `key` from the plugin's own key-value namespace, after `kv.read:<key>`.
    ///
    /// # Errors
    /// Denied, or a storage failure.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, ToolError> {
        self.authorize(&format!("kv.read:{key}")).await?;
        self.inner
            .kv
            .get(&self.inner.plugin, key)
            .map_err(ToolError::Failed)
    }

    /// Writes `key` in the plugin's own key-value namespace, after `kv.write:<key>`.
    ///
    /// # Errors
    /// Denied, a value over the size limit, or a storage failure.
    pub async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), ToolError> {
        self.authorize(&format!("kv.write:{key}")).await?;
        self.inner
            .kv
            .set(&self.inner.plugin, key, value)
            .map_err(ToolError::Failed)
    }

    /// Removes `key` from the plugin's own key-value namespace, after `kv.write:<key>`.
    ///
    /// # Errors
    /// Denied, or a storage failure.
    pub async fn kv_delete(&self, key: &str) -> Result<(), ToolError> {
        self.authorize(&format!("kv.write:{key}")).await?;
        self.inner
            .kv
            .delete(&self.inner.plugin, key)
            .map_err(ToolError::Failed)
    }

    /// The plugin's own configuration (`[plugins.<id>.config]` in sigil.toml).
    pub fn config(&self) -> serde_json::Value {
        self.inner.config.plugin_config(&self.inner.plugin)
    }

    /// The value of secret `name` and the destinations it is bound to, after
    /// `secret.use:<name>`: for host code that injects it at a boundary, and only into a request
    /// [`BoundSecret::value_for`] admits (a refusal is recorded with [`Call::refuse_secret`]).
    /// Never hand it to the plugin.
    ///
    /// # Errors
    /// Denied, or the secret is not configured or cannot be read.
    pub async fn secret(&self, name: &str) -> Result<BoundSecret, ToolError> {
        self.authorize(&format!("secret.use:{name}")).await?;
        self.inner.config.secret(name).map_err(ToolError::Failed)
    }
}

impl Call {
    /// Records that `secret` was not sent to a destination it is not bound to, as a deny of
    /// `secret.use:<name>` for this call, and returns the error to end the request with.
    /// `reason` comes from [`BoundSecret::value_for`] and never holds the value.
    pub async fn refuse_secret(&self, secret: &BoundSecret, reason: String) -> ToolError {
        let capability_text = format!("secret.use:{}", secret.name());
        let Ok(capability) = Capability::parse(&capability_text) else {
            return ToolError::Denied {
                capability: capability_text,
                rule: reason,
            };
        };
        let check = Check {
            subject: Subject::Plugin(&self.inner.plugin),
            capability: &capability,
            actor: &self.inner.actor,
            call_id: Some(&self.inner.call_id),
        };
        let rule = DenyRule::SecretNotBound { reason };
        match self.inner.enforcer.record_refusal(&check, rule).await {
            Decision::Deny { rule } => ToolError::Denied {
                capability: capability_text,
                rule: rule.to_string(),
            },
            Decision::Allow { .. } => ToolError::Denied {
                capability: capability_text,
                rule: "refused".into(),
            },
        }
    }
}

/// A plugin that provides tools. Only [`ToolPlugin::tools`] and [`ToolPlugin::invoke`] are
/// required; the pipeline steps are called only for tools whose [`Steps`] say they exist.
///
/// # Deadlines and blocking
/// Every step runs under a deadline (the manifest's `execution.limits.timeout_ms`, a hook's
/// `timeout_ms`) that ends the call whatever the step does; a result that comes later is a
/// timeout. A compiled-in plugin's steps run on a blocking-pool thread of their own, so one
/// that blocks holds neither the runtime's worker threads nor its caller; it should still do
/// its blocking work with `tokio::task::spawn_blocking`, since a thread stuck in a system call
/// is only released when the call returns. A tier's implementation must never block in a
/// poll: its steps run on the caller's task.
#[async_trait]
pub trait ToolPlugin: Send + Sync + std::fmt::Debug {
    /// The tools this plugin provides.
    fn tools(&self) -> Vec<ToolDescriptor>;

    /// Why the plugin, although loaded, cannot serve calls now, when its tier knows (a process
    /// plugin quarantined after crashing too often). `None` while it serves.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Stops the plugin's work now: a replaced generation whose drain timeout has passed.
    /// Calls still inside it end with an error. Nothing further is sent to it; the plugin's
    /// resources go when it is dropped. The default does nothing (calls end at their deadline).
    fn stop(&self) {}

    /// The tools held for an operator's approval; calls to them are refused. Empty for a
    /// plugin whose tools are fixed by its installed files.
    fn held(&self) -> Vec<HeldTool> {
        Vec::new()
    }

    /// The operator approves the plugin's tools as they are defined now, which releases every
    /// held tool. Returns the tools whose approval changed.
    ///
    /// # Errors
    /// When the current definitions cannot be read or the approval cannot be recorded.
    fn approve(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    /// Whether this plugin's tier can deliver lifecycle events to it ([`ToolPlugin::on_event`]).
    /// A plugin whose manifest subscribes to hooks is refused at load when this is `false`.
    fn handles_hooks(&self) -> bool {
        false
    }

    /// Delivers a lifecycle event the plugin's manifest subscribes to (`[[hooks]]`).
    /// `call` is the hook's own call (its host actions are decided for the hook plugin, under
    /// the id of the action that raised the event); `timeout` is the hook's `timeout_ms`,
    /// which the runtime enforces too. The default refuses: the plugin is not a hook plugin.
    ///
    /// # Errors
    /// When the hook cannot be run or fails. For a before-hook, the runtime treats any error
    /// as a deny (fail closed).
    async fn on_event(
        &self,
        call: &Call,
        event: HookEvent,
        _payload: &Value,
        _timeout: Duration,
    ) -> Result<HookVerdict, ToolError> {
        Err(ToolError::Failed(format!(
            "plugin `{}` does not handle hook events (asked for `{event}`)",
            call.plugin()
        )))
    }

    /// Runs a tool. `input` has been validated against the tool's input schema.
    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError>;

    /// Checks a call before it runs.
    async fn validate_pre(&self, _call: &Call, _input: &Value) -> Result<(), ToolError> {
        Ok(())
    }

    /// Checks a result after the call ran.
    async fn validate_post(
        &self,
        _call: &Call,
        _input: &Value,
        _output: &Value,
    ) -> Result<(), ToolError> {
        Ok(())
    }

    /// Undoes a call whose invocation or post-validation failed. `output` is the result when
    /// the invocation itself succeeded.
    async fn rollback(
        &self,
        _call: &Call,
        _input: &Value,
        _output: Option<&Value>,
    ) -> Result<(), ToolError> {
        Ok(())
    }
}
