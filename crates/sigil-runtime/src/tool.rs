//! The tool contract every tier implements: describe, invoke, and the optional
//! validate-pre / validate-post / rollback steps of the execution pipeline.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use sigil_audit::Actor;
use sigil_policy::{Capability, Decision};

use crate::enforcer::{Check, Enforcer, Subject};

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
/// # Security
/// [`Call::authorize`] is the only way a plugin gets authority for a host action: it checks the
/// capability against the plugin's grants, the operator's consent, the workspace and the
/// user, and records the decision.
#[derive(Debug)]
pub struct Call<'a> {
    pub(crate) enforcer: &'a Enforcer,
    pub(crate) plugin: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) actor: &'a Actor,
}

impl Call<'_> {
    /// The plugin being called.
    pub fn plugin(&self) -> &str {
        self.plugin
    }

    /// The tool being called.
    pub fn tool(&self) -> &str {
        self.tool
    }

    /// The call's id, shared by every audit record of this call.
    pub fn call_id(&self) -> &str {
        self.call_id
    }

    /// On whose behalf the call runs.
    pub fn actor(&self) -> &Actor {
        self.actor
    }

    /// Asks the enforcer for `capability` on behalf of this call.
    ///
    /// # Errors
    /// [`ToolError::Denied`] when the capability does not parse or is not granted at every
    /// layer, or when its audit record cannot be written.
    pub async fn authorize(&self, capability: &str) -> Result<Capability, ToolError> {
        let parsed = Capability::parse(capability).map_err(|e| ToolError::Denied {
            capability: capability.to_string(),
            rule: e.to_string(),
        })?;
        let check = Check {
            subject: Subject::Plugin(self.plugin),
            capability: &parsed,
            actor: self.actor,
            call_id: Some(self.call_id),
        };
        match self.enforcer.check(&check).await {
            Decision::Allow { .. } => Ok(parsed),
            Decision::Deny { rule } => Err(ToolError::Denied {
                capability: parsed.to_string(),
                rule: rule.to_string(),
            }),
        }
    }
}

/// A plugin that provides tools. Only [`ToolPlugin::tools`] and [`ToolPlugin::invoke`] are
/// required; the pipeline steps are called only for tools whose [`Steps`] say they exist.
#[async_trait]
pub trait ToolPlugin: Send + Sync + std::fmt::Debug {
    /// The tools this plugin provides.
    fn tools(&self) -> Vec<ToolDescriptor>;

    /// Runs a tool. `input` has been validated against the tool's input schema.
    async fn invoke(&self, call: &Call<'_>, input: Value) -> Result<Value, ToolError>;

    /// Checks a call before it runs.
    async fn validate_pre(&self, _call: &Call<'_>, _input: &Value) -> Result<(), ToolError> {
        Ok(())
    }

    /// Checks a result after the call ran.
    async fn validate_post(
        &self,
        _call: &Call<'_>,
        _input: &Value,
        _output: &Value,
    ) -> Result<(), ToolError> {
        Ok(())
    }

    /// Undoes a call whose invocation or post-validation failed. `output` is the result when
    /// the invocation itself succeeded.
    async fn rollback(
        &self,
        _call: &Call<'_>,
        _input: &Value,
        _output: Option<&Value>,
    ) -> Result<(), ToolError> {
        Ok(())
    }
}
