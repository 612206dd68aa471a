//! Tools as typed functions, and the [`Plugin`] that dispatches to them.
//!
//! A [`Tool`] wraps `fn(&mut Ctx, Input) -> Result<Output, ToolError>`: the input and output
//! JSON Schemas are derived from the types, the input is decoded before the function runs,
//! and the output encoded after. [`Plugin`] is the one dispatch path: the component's exports
//! and the test harness both call [`Plugin::invoke`] and the step methods.

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::ToolError;
use crate::host::{CallInfo, Host};

type Invoke = Box<dyn Fn(&mut Ctx<'_>, &str) -> Result<String, ToolError> + Send + Sync>;
type Pre = Box<dyn Fn(&mut Ctx<'_>, &str) -> Result<(), ToolError> + Send + Sync>;
type Post = Box<dyn Fn(&mut Ctx<'_>, &str, &str) -> Result<(), ToolError> + Send + Sync>;
type Rollback =
    Box<dyn Fn(&mut Ctx<'_>, &str, Option<&str>) -> Result<(), ToolError> + Send + Sync>;

/// Which optional steps of the execution pipeline a tool provides (the WIT `steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Steps {
    /// Runs before the tool, and can refuse the call.
    pub validate_pre: bool,
    /// Runs after the tool succeeded, and can refuse its output.
    pub validate_post: bool,
    /// Undoes an invocation that failed, or whose output was refused.
    pub rollback: bool,
}

/// One tool as the host sees it (the WIT `tool-descriptor`, schemas as JSON values).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDescriptor {
    /// Unique within the plugin: lowercase letters, digits, `_` and `-`.
    pub name: String,
    /// What the tool does, for the model and the operator.
    pub description: String,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// JSON Schema of the output, checked by the host on every result.
    pub output_schema: Option<Value>,
    /// The optional pipeline steps the tool provides.
    pub steps: Steps,
}

/// A tool: a typed function with a name and a description, and optionally the pipeline steps
/// validate-pre, validate-post and rollback.
///
/// `I` is decoded from the call's JSON input; a mismatch fails the call with
/// [`ToolError::InvalidInput`] before the function runs. Derive `JsonSchema` on `I` and `O`:
/// their schemas are what the host validates against. Use `#[serde(deny_unknown_fields)]` on
/// `I` to refuse properties the tool does not know.
pub struct Tool<I, O> {
    erased: Erased,
    types: PhantomData<fn(I) -> O>,
}

impl<I, O> fmt::Debug for Tool<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.erased.fmt(f)
    }
}

/// A tool with its types erased: what a [`Plugin`] holds.
struct Erased {
    name: String,
    description: String,
    input_schema: Value,
    output_schema: Value,
    invoke: Invoke,
    validate_pre: Option<Pre>,
    validate_post: Option<Post>,
    rollback: Option<Rollback>,
}

impl fmt::Debug for Erased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("steps", &self.steps())
            .finish_non_exhaustive()
    }
}

impl Erased {
    fn steps(&self) -> Steps {
        Steps {
            validate_pre: self.validate_pre.is_some(),
            validate_post: self.validate_post.is_some(),
            rollback: self.rollback.is_some(),
        }
    }

    fn descriptor(&self) -> ToolDescriptor {
        ToolDescriptor {
            name: self.name.clone(),
            description: self.description.clone(),
            input_schema: self.input_schema.clone(),
            output_schema: Some(self.output_schema.clone()),
            steps: self.steps(),
        }
    }
}

fn decode_input<I: DeserializeOwned>(tool: &str, input: &str) -> Result<I, ToolError> {
    serde_json::from_str(input)
        .map_err(|e| ToolError::invalid_input(format!("input of `{tool}` does not fit: {e}")))
}

fn decode_output<O: DeserializeOwned>(tool: &str, output: &str) -> Result<O, ToolError> {
    serde_json::from_str(output)
        .map_err(|e| ToolError::failed(format!("output of `{tool}` does not decode: {e}")))
}

impl<I, O> Tool<I, O>
where
    I: DeserializeOwned + JsonSchema + 'static,
    O: Serialize + JsonSchema + 'static,
{
    /// A tool named `name` (lowercase letters, digits, `_` and `-`) that runs `run`.
    pub fn new<F>(name: &str, description: &str, run: F) -> Tool<I, O>
    where
        F: Fn(&mut Ctx<'_>, I) -> Result<O, ToolError> + Send + Sync + 'static,
    {
        let tool = name.to_string();
        let invoke: Invoke = Box::new(move |ctx, input| {
            let input = decode_input::<I>(&tool, input)?;
            let output = run(ctx, input)?;
            serde_json::to_string(&output).map_err(|e| {
                ToolError::failed(format!("output of `{tool}` cannot be encoded as JSON: {e}"))
            })
        });
        Tool {
            erased: Erased {
                name: name.to_string(),
                description: description.to_string(),
                input_schema: schemars::schema_for!(I).to_value(),
                output_schema: schemars::schema_for!(O).to_value(),
                invoke,
                validate_pre: None,
                validate_post: None,
                rollback: None,
            },
            types: PhantomData,
        }
    }

    /// Adds validate-pre: `check` runs before the tool and can refuse the call (usually with
    /// [`ToolError::InvalidInput`]). The tool does not run when it fails.
    pub fn validate_pre<F>(mut self, check: F) -> Tool<I, O>
    where
        F: Fn(&mut Ctx<'_>, &I) -> Result<(), ToolError> + Send + Sync + 'static,
    {
        let tool = self.erased.name.clone();
        self.erased.validate_pre = Some(Box::new(move |ctx, input| {
            check(ctx, &decode_input::<I>(&tool, input)?)
        }));
        self
    }
}

impl<I, O> Tool<I, O>
where
    I: DeserializeOwned + JsonSchema + 'static,
    O: Serialize + DeserializeOwned + JsonSchema + 'static,
{
    /// Adds validate-post: `check` sees the input and the output after the tool succeeded and
    /// can refuse the output; rollback then runs, when the tool has one.
    pub fn validate_post<F>(mut self, check: F) -> Tool<I, O>
    where
        F: Fn(&mut Ctx<'_>, &I, &O) -> Result<(), ToolError> + Send + Sync + 'static,
    {
        let tool = self.erased.name.clone();
        self.erased.validate_post = Some(Box::new(move |ctx, input, output| {
            let input = decode_input::<I>(&tool, input)?;
            let output = decode_output::<O>(&tool, output)?;
            check(ctx, &input, &output)
        }));
        self
    }

    /// Adds rollback: `undo` runs when the invocation failed (`output` is `None`) or when its
    /// output was refused afterwards by the output schema or validate-post (`output` is the
    /// refused output).
    pub fn rollback<F>(mut self, undo: F) -> Tool<I, O>
    where
        F: Fn(&mut Ctx<'_>, &I, Option<&O>) -> Result<(), ToolError> + Send + Sync + 'static,
    {
        let tool = self.erased.name.clone();
        self.erased.rollback = Some(Box::new(move |ctx, input, output| {
            let input = decode_input::<I>(&tool, input)?;
            let output = output.map(|o| decode_output::<O>(&tool, o)).transpose()?;
            undo(ctx, &input, output.as_ref())
        }));
        self
    }
}

/// A problem with a plugin's definition, found by [`Plugin::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The plugin has no tools.
    #[error("the plugin has no tools")]
    NoTools,
    /// A tool name the host would refuse.
    #[error("tool name `{0}` is not lowercase letters, digits, `_` and `-`")]
    BadName(String),
    /// Two tools with one name.
    #[error("two tools are named `{0}`")]
    Duplicate(String),
}

/// A plugin's tools, and the one dispatch path to them.
///
/// Made by [`crate::plugin!`] (which also exports it from the component), or by hand with
/// [`Plugin::new`] and [`Plugin::tool`] to run it against a [`Host`] of your own.
#[derive(Default)]
pub struct Plugin {
    tools: Vec<Erased>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.tools).finish()
    }
}

impl Plugin {
    /// A plugin with no tools yet.
    pub fn new() -> Plugin {
        Plugin::default()
    }

    /// Adds `tool`.
    #[must_use]
    pub fn tool<I, O>(mut self, tool: Tool<I, O>) -> Plugin {
        self.tools.push(tool.erased);
        self
    }

    /// Checks what the host checks when it loads the plugin: at least one tool, names of
    /// lowercase letters, digits, `_` and `-`, no name twice.
    ///
    /// # Errors
    /// Every problem found.
    pub fn check(&self) -> Result<(), Vec<PluginError>> {
        let mut problems = Vec::new();
        if self.tools.is_empty() {
            problems.push(PluginError::NoTools);
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let name = tool.name.as_str();
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !valid {
                problems.push(PluginError::BadName(name.to_string()));
            }
            if self.tools[..i].iter().any(|t| t.name == name) {
                problems.push(PluginError::Duplicate(name.to_string()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The tools, as the host's `describe` sees them.
    pub fn descriptors(&self) -> Vec<ToolDescriptor> {
        self.tools.iter().map(Erased::descriptor).collect()
    }

    fn find(&self, tool: &str) -> Result<&Erased, ToolError> {
        self.tools.iter().find(|t| t.name == tool).ok_or_else(|| {
            let known: Vec<String> = self.tools.iter().map(|t| format!("`{}`", t.name)).collect();
            ToolError::failed(format!(
                "no tool `{tool}` in this plugin (it has {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// Runs the tool `call.tool` with `input` (JSON text) and returns its output as JSON text.
    ///
    /// # Errors
    /// [`ToolError::InvalidInput`] when the input does not decode as the tool's input type;
    /// [`ToolError::Failed`] for an unknown tool; whatever the tool returns.
    pub fn invoke(
        &self,
        host: &mut dyn Host,
        call: &CallInfo,
        input: &str,
    ) -> Result<String, ToolError> {
        let tool = self.find(&call.tool)?;
        (tool.invoke)(&mut Ctx::new(host, call), input)
    }

    /// Runs the tool's validate-pre; succeeds when it has none.
    ///
    /// # Errors
    /// As [`Plugin::invoke`], with the step's own error.
    pub fn validate_pre(
        &self,
        host: &mut dyn Host,
        call: &CallInfo,
        input: &str,
    ) -> Result<(), ToolError> {
        match &self.find(&call.tool)?.validate_pre {
            Some(step) => step(&mut Ctx::new(host, call), input),
            None => Ok(()),
        }
    }

    /// Runs the tool's validate-post on `output` (JSON text); succeeds when it has none.
    ///
    /// # Errors
    /// As [`Plugin::invoke`], with the step's own error; [`ToolError::Failed`] when `output`
    /// does not decode as the tool's output type.
    pub fn validate_post(
        &self,
        host: &mut dyn Host,
        call: &CallInfo,
        input: &str,
        output: &str,
    ) -> Result<(), ToolError> {
        match &self.find(&call.tool)?.validate_post {
            Some(step) => step(&mut Ctx::new(host, call), input, output),
            None => Ok(()),
        }
    }

    /// Runs the tool's rollback; succeeds when it has none.
    ///
    /// # Errors
    /// As [`Plugin::validate_post`].
    pub fn rollback(
        &self,
        host: &mut dyn Host,
        call: &CallInfo,
        input: &str,
        output: Option<&str>,
    ) -> Result<(), ToolError> {
        match &self.find(&call.tool)?.rollback {
            Some(step) => step(&mut Ctx::new(host, call), input, output),
            None => Ok(()),
        }
    }
}
