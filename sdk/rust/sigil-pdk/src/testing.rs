//! Test tools natively, without building a component.
//!
//! [`Harness`] plays the host. For each call it validates the input against the tool's JSON
//! Schema, then runs validate-pre, the tool, the output-schema check, validate-post and, when
//! the call fails after the tool started, rollback, in the order Sigil's host does. It serves
//! the host calls from memory: key-value state, configuration, secrets (as placeholders, never
//! values) and captured log lines. The tools run through the same [`Plugin`] dispatch the
//! component's exports use.
//!
//! ```
//! use sigil_pdk::prelude::*;
//! use sigil_pdk::testing::{Harness, Step};
//! use serde_json::json;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { key: String }
//!
//! fn read(ctx: &mut Ctx, input: Input) -> Result<Option<String>, ToolError> {
//!     let value = ctx.kv_get(&input.key)?;
//!     Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
//! }
//!
//! sigil_pdk::plugin![Tool::new("read", "Reads a key.", read)];
//!
//! # fn main() {
//! // No key-value grant: the host call is denied, and the tool fails with `denied`.
//! let mut h = Harness::new(plugin());
//! let error = h.invoke("read", json!({"key": "k"})).unwrap_err();
//! assert_eq!(error.kind(), "denied");
//!
//! let mut h = Harness::new(plugin()).kv_entry("k", "v");
//! assert_eq!(h.invoke("read", json!({"key": "k"})).unwrap(), json!("v"));
//! assert_eq!(h.trace().iter().map(|(s, _)| *s).collect::<Vec<_>>(),
//!            [Step::InputSchema, Step::Invoke, Step::OutputSchema]);
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::error::ToolError;
use crate::host::{CallInfo, Host, Level};
use crate::tool::{Plugin, ToolDescriptor};

/// The harness's stand-in for a secret reference. A real host's placeholders differ: a plugin
/// must never parse one.
pub fn secret_placeholder(name: &str) -> String {
    format!("<sigil-secret:{name}>")
}

/// One step of a call's pipeline, as recorded in [`Harness::trace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The input checked against the tool's input schema.
    InputSchema,
    /// The tool's validate-pre.
    ValidatePre,
    /// The tool itself.
    Invoke,
    /// The output checked against the tool's output schema.
    OutputSchema,
    /// The tool's validate-post.
    ValidatePost,
    /// The tool's rollback.
    Rollback,
}

/// The host calls, served from memory.
#[derive(Debug, Default)]
struct MemoryHost {
    /// `None`: no key-value access granted.
    kv: Option<BTreeMap<String, Vec<u8>>>,
    config: Value,
    secrets: BTreeSet<String>,
    logs: Vec<(Level, String)>,
}

impl MemoryHost {
    fn kv(&mut self, op: &str, key: &str) -> Result<&mut BTreeMap<String, Vec<u8>>, String> {
        self.kv.as_mut().ok_or_else(|| {
            format!(
                "denied `kv.{op}:{key}`: the harness grants no key-value access \
                 (use `Harness::grant_kv` or `Harness::kv_entry`)"
            )
        })
    }
}

impl Host for MemoryHost {
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }

    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.kv("read", key)?.get(key).cloned())
    }

    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.kv("write", key)?
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), String> {
        self.kv("write", key)?.remove(key);
        Ok(())
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }

    fn secret_reference(&mut self, name: &str) -> Result<String, String> {
        if self.secrets.contains(name) {
            Ok(secret_placeholder(name))
        } else {
            Err(format!(
                "denied `secret.use:{name}`: the harness grants no such secret (use `Harness::grant_secret`)"
            ))
        }
    }
}

/// A host in memory, for unit tests. Grants nothing until told: no key-value access, no
/// secrets, an empty configuration.
pub struct Harness {
    plugin: Plugin,
    host: MemoryHost,
    user: Option<String>,
    workspace: Option<String>,
    calls: u64,
    trace: Vec<(Step, Result<(), ToolError>)>,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin)
            .field("host", &self.host)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness running `plugin`'s tools.
    pub fn new(plugin: Plugin) -> Harness {
        Harness {
            plugin,
            host: MemoryHost {
                config: Value::Object(Default::default()),
                ..MemoryHost::default()
            },
            user: None,
            workspace: None,
            calls: 0,
            trace: Vec::new(),
        }
    }

    /// Grants key-value access (every key), starting empty.
    #[must_use]
    pub fn grant_kv(mut self) -> Harness {
        self.host.kv.get_or_insert_with(BTreeMap::new);
        self
    }

    /// Grants key-value access and stores `value` under `key`.
    #[must_use]
    pub fn kv_entry(mut self, key: &str, value: impl Into<Vec<u8>>) -> Harness {
        self.host
            .kv
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.into());
        self
    }

    /// Sets the operator's configuration the tools see.
    #[must_use]
    pub fn config(mut self, config: Value) -> Harness {
        self.host.config = config;
        self
    }

    /// Grants the secret `name`: `secret_ref(name)` then returns [`secret_placeholder`]`(name)`.
    /// The harness never holds a value.
    #[must_use]
    pub fn grant_secret(mut self, name: &str) -> Harness {
        self.host.secrets.insert(name.to_string());
        self
    }

    /// Makes calls on behalf of `user`.
    #[must_use]
    pub fn user(mut self, user: &str) -> Harness {
        self.user = Some(user.to_string());
        self
    }

    /// Makes calls in `workspace`.
    #[must_use]
    pub fn workspace(mut self, workspace: &str) -> Harness {
        self.workspace = Some(workspace.to_string());
        self
    }

    /// The plugin under test.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// The tools, as the host's `describe` sees them.
    pub fn descriptors(&self) -> Vec<ToolDescriptor> {
        self.plugin.descriptors()
    }

    /// The descriptor of `tool`, if the plugin has it.
    pub fn descriptor(&self, tool: &str) -> Option<ToolDescriptor> {
        self.plugin
            .descriptors()
            .into_iter()
            .find(|d| d.name == tool)
    }

    /// The log lines written so far, in order.
    pub fn logs(&self) -> &[(Level, String)] {
        &self.host.logs
    }

    /// The value stored under `key`, if key-value access is granted and the key is set.
    pub fn kv(&self, key: &str) -> Option<&[u8]> {
        self.host.kv.as_ref()?.get(key).map(Vec::as_slice)
    }

    /// The steps the last call ran, each with its outcome.
    pub fn trace(&self) -> &[(Step, Result<(), ToolError>)] {
        &self.trace
    }

    /// Runs `tool` with `input` through the host's pipeline and returns its output.
    ///
    /// # Errors
    /// The error the host would report: [`ToolError::InvalidInput`] for an input the schema
    /// refuses, [`ToolError::Failed`] for an unknown tool, an invalid plugin definition or an
    /// output the output schema refuses, and the tool's or a step's own error. When rollback
    /// fails too, the error is still the call's, with a note about the rollback.
    pub fn invoke(&mut self, tool: &str, input: Value) -> Result<Value, ToolError> {
        self.invoke_json(tool, &input.to_string())
    }

    /// [`Harness::invoke`] with the input as JSON text, as the host passes it.
    ///
    /// # Errors
    /// As [`Harness::invoke`]; [`ToolError::InvalidInput`] when `input` is not JSON.
    pub fn invoke_json(&mut self, tool: &str, input: &str) -> Result<Value, ToolError> {
        self.calls += 1;
        self.trace.clear();
        let call = CallInfo {
            call_id: format!("test-{}", self.calls),
            tool: tool.to_string(),
            user: self.user.clone(),
            workspace: self.workspace.clone(),
        };
        self.pipeline(&call, input)
    }

    fn record<T>(&mut self, step: Step, result: Result<T, ToolError>) -> Result<T, ToolError> {
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        self.trace.push((step, outcome));
        result
    }

    fn pipeline(&mut self, call: &CallInfo, input: &str) -> Result<Value, ToolError> {
        if let Err(problems) = self.plugin.check() {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(ToolError::failed(format!(
                "the plugin would not load: {}",
                problems.join("; ")
            )));
        }
        let Some(descriptor) = self.descriptor(&call.tool) else {
            let known: Vec<String> = self
                .descriptors()
                .iter()
                .map(|d| format!("`{}`", d.name))
                .collect();
            return Err(ToolError::failed(format!(
                "no tool `{}` in this plugin (it has {})",
                call.tool,
                known.join(", ")
            )));
        };
        let name = descriptor.name.as_str();

        let checked = serde_json::from_str::<Value>(input)
            .map_err(|e| ToolError::invalid_input(format!("input of `{name}` is not JSON: {e}")))
            .and_then(|value| {
                schema_problems(&descriptor.input_schema, &value).map_err(|problems| {
                    ToolError::invalid_input(format!(
                        "input does not match the schema of `{name}`: {problems}"
                    ))
                })
            });
        self.record(Step::InputSchema, checked)?;

        if descriptor.steps.validate_pre {
            let result = self.plugin.validate_pre(&mut self.host, call, input);
            self.record(Step::ValidatePre, result)?;
        }

        let invoked = self.plugin.invoke(&mut self.host, call, input);
        let output = match self.record(Step::Invoke, invoked) {
            Ok(output) => output,
            Err(error) => {
                return Err(self.undo(descriptor.steps.rollback, call, input, None, error));
            }
        };

        let decoded = serde_json::from_str::<Value>(&output)
            .map_err(|e| ToolError::failed(format!("output of `{name}` is not JSON: {e}")));
        let value = match decoded {
            Ok(value) => value,
            Err(error) => {
                return Err(self.undo(
                    descriptor.steps.rollback,
                    call,
                    input,
                    Some(&output),
                    error,
                ));
            }
        };
        if let Some(schema) = &descriptor.output_schema {
            let checked = schema_problems(schema, &value).map_err(|problems| {
                ToolError::failed(format!(
                    "output does not match the output schema of `{name}`: {problems}"
                ))
            });
            if let Err(error) = self.record(Step::OutputSchema, checked) {
                return Err(self.undo(
                    descriptor.steps.rollback,
                    call,
                    input,
                    Some(&output),
                    error,
                ));
            }
        }

        if descriptor.steps.validate_post {
            let result = self
                .plugin
                .validate_post(&mut self.host, call, input, &output);
            if let Err(error) = self.record(Step::ValidatePost, result) {
                return Err(self.undo(
                    descriptor.steps.rollback,
                    call,
                    input,
                    Some(&output),
                    error,
                ));
            }
        }
        Ok(value)
    }

    /// Runs rollback after `error`, when the tool has one, and returns the error to report.
    fn undo(
        &mut self,
        has_rollback: bool,
        call: &CallInfo,
        input: &str,
        output: Option<&str>,
        error: ToolError,
    ) -> ToolError {
        if !has_rollback {
            return error;
        }
        let result = self.plugin.rollback(&mut self.host, call, input, output);
        match self.record(Step::Rollback, result) {
            Ok(()) => error,
            Err(failure) => error.with_note(&format!(
                "rollback failed too: {}: {}",
                failure.kind(),
                failure.message()
            )),
        }
    }
}

/// `Err` with every problem of `value` against `schema`, joined, like the host reports them.
fn schema_problems(schema: &Value, value: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the schema itself is invalid: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at `{at}`: {e}")
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
