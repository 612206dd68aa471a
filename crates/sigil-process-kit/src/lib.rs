//! Write Sigil process-tier plugins in Rust.
//!
//! A plugin registers its tools (and its hook, [`Plugin::hook`]) and calls [`serve`] from
//! `main`. Sigil starts the executable in its sandbox with `SIGIL_PLUGIN_SOCKET` naming a Unix
//! socket; [`serve`] listens there and answers the `Lifecycle`, `Tool` and `Hook` services of
//! `proto/sigil/plugin/v1`. While a call runs,
//! the tool reaches the host through its [`Context`]: key-value state, configuration, secret
//! placeholders, logs and HTTP, each checked by Sigil against the plugin's grants.
//!
//! ```no_run
//! use serde_json::{Value, json};
//! use sigil_process_kit::{Context, Plugin, ToolError};
//!
//! fn main() -> Result<(), sigil_process_kit::KitError> {
//!     let plugin = Plugin::new().function(
//!         "greet",
//!         "Greets someone by name.",
//!         json!({ "type": "object", "properties": { "name": { "type": "string" } } }),
//!         |ctx: Context, input: Value| async move {
//!             ctx.log_info("greeting").await;
//!             let name = input["name"].as_str().unwrap_or("world").to_string();
//!             Ok::<_, ToolError>(json!({ "greeting": format!("hello, {name}") }))
//!         },
//!     );
//!     sigil_process_kit::serve(plugin)
//! }
//! ```
//!
//! Stdout and stderr are free for diagnostics: Sigil logs them line by line and never reads
//! protocol data from them.
//!
//! # Security
//! The plugin never holds more authority than Sigil grants it: every host call names the call
//! it belongs to, and Sigil decides it with that call's actor and the plugin's grants. Secrets
//! arrive only as placeholders, replaced by the host on allowed outgoing requests.

#![forbid(unsafe_code)]

mod context;
mod server;

/// The generated protocol types and services (`sigil.plugin.v1`).
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("sigil.plugin.v1");
}

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

pub use async_trait::async_trait;
pub use context::{Context, HttpRequest, HttpResponse, LogLevel};
pub use server::{serve, serve_at};

/// The protocol version this kit speaks. The host refuses a different major version.
pub const PROTOCOL_VERSION: &str = "1.0.0";

/// The environment variable naming the socket the plugin serves on.
pub const SOCKET_ENV: &str = "SIGIL_PLUGIN_SOCKET";

/// A tool's failure, as the host will report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// A host call the tool needed was denied.
    #[error("denied: {0}")]
    Denied(String),
    /// The input made sense to the schema but not to the tool.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool failed.
    #[error("{0}")]
    Failed(String),
}

/// Why the plugin could not serve.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// `SIGIL_PLUGIN_SOCKET` is not set: the executable was not started by Sigil.
    #[error("{SOCKET_ENV} is not set: this program is a Sigil plugin, started by Sigil")]
    NoSocket,
    /// The socket could not be bound.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The gRPC server failed.
    #[error("serving failed: {0}")]
    Serve(String),
}

/// Which optional pipeline steps a tool provides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Steps {
    /// The tool checks its input before running.
    pub validate_pre: bool,
    /// The tool checks its result after running.
    pub validate_post: bool,
    /// The tool can undo a failed run.
    pub rollback: bool,
}

/// What a tool is, as described to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// Unique within the plugin: lowercase letters, digits, `_` and `-`.
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// JSON Schema of the input; the host validates arguments against it.
    pub input_schema: Value,
    /// JSON Schema of the output; the host checks every result against it.
    pub output_schema: Option<Value>,
    /// The optional steps the tool provides.
    pub steps: Steps,
}

/// A tool with the whole execution pipeline. Only [`Tool::descriptor`] and [`Tool::invoke`]
/// are required; the host calls the other steps only when [`Descriptor::steps`] says so.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// What the tool is.
    fn descriptor(&self) -> Descriptor;

    /// Runs the tool on input the host has validated against the input schema.
    async fn invoke(&self, ctx: &Context, input: Value) -> Result<Value, ToolError>;

    /// Checks the input before anything happens.
    async fn validate_pre(&self, _ctx: &Context, _input: &Value) -> Result<(), ToolError> {
        Ok(())
    }

    /// Checks the result after the run.
    async fn validate_post(
        &self,
        _ctx: &Context,
        _input: &Value,
        _output: &Value,
    ) -> Result<(), ToolError> {
        Ok(())
    }

    /// Undoes a run whose execution or post-validation failed; `output` is the result when
    /// the run itself succeeded.
    async fn rollback(
        &self,
        _ctx: &Context,
        _input: &Value,
        _output: Option<&Value>,
    ) -> Result<(), ToolError> {
        Ok(())
    }
}

type Handler = Arc<
    dyn Fn(Context, Value) -> Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>
        + Send
        + Sync,
>;

/// A tool made from a function.
struct FunctionTool {
    descriptor: Descriptor,
    handler: Handler,
}

#[async_trait]
impl Tool for FunctionTool {
    fn descriptor(&self) -> Descriptor {
        self.descriptor.clone()
    }

    async fn invoke(&self, ctx: &Context, input: Value) -> Result<Value, ToolError> {
        (self.handler)(ctx.clone(), input).await
    }
}

/// What a plugin answers when the host checks its health.
///
/// The host checks every few seconds. A plugin that answers [`Health::NotServing`], fails the
/// check, or does not answer within the host's control timeout is ended and restarted (and
/// quarantined if that keeps happening), so report `NotServing` only when a fresh process
/// would do better.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Ready for calls.
    Serving,
    /// Cannot serve calls; the reason is logged by the host with the restart.
    NotServing(String),
}

/// A hook's answer to one lifecycle event. Only before-events' verdicts take effect; for the
/// others (`after_tool_execute`, `gateway_start`, ...) the host ignores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Stop the action, for this reason (shown to the caller and recorded).
    Deny(String),
    /// Go ahead with this payload instead: the whole payload, modified. The host takes only
    /// what the event lets a hook change (for `before_tool_execute`, `input`) and validates it
    /// again (for a tool call, against the tool's input schema).
    Patch(Value),
    /// Stop the action until an operator approves it, for this reason.
    AskApproval(String),
}

type HookHandler = Arc<
    dyn Fn(Context, String, Value) -> Pin<Box<dyn Future<Output = Verdict> + Send>> + Send + Sync,
>;

type HealthCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Health> + Send>> + Send + Sync>;

/// A plugin: the tools it provides, its hook, and how it reports its health.
#[derive(Clone, Default)]
pub struct Plugin {
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    /// `None`: the plugin handles no lifecycle events.
    pub(crate) hook: Option<HookHandler>,
    /// `None`: always [`Health::Serving`] while the process answers.
    health: Option<HealthCheck>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.tools.iter().map(|t| t.descriptor().name).collect();
        f.debug_struct("Plugin")
            .field("tools", &names)
            .field("hook", &self.hook.is_some())
            .field("health_check", &self.health.is_some())
            .finish()
    }
}

impl Plugin {
    /// A plugin with no tools yet.
    pub fn new() -> Plugin {
        Plugin::default()
    }

    /// Sets the plugin's own health check, run each time the host asks. Without one, a plugin
    /// whose process answers is [`Health::Serving`].
    ///
    /// The check should be quick: the host ends a plugin whose check does not answer within
    /// its control timeout (5 s), as it does one that answers [`Health::NotServing`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use sigil_process_kit::{Health, Plugin};
    ///
    /// let broken = Arc::new(AtomicBool::new(false));
    /// let plugin = Plugin::new().health(move || {
    ///     let broken = broken.load(Ordering::Relaxed);
    ///     async move {
    ///         if broken {
    ///             Health::NotServing("lost its database connection".into())
    ///         } else {
    ///             Health::Serving
    ///         }
    ///     }
    /// });
    /// # let _ = plugin;
    /// ```
    pub fn health<F, Fut>(mut self, check: F) -> Plugin
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Health> + Send + 'static,
    {
        self.health = Some(Arc::new(move || Box::pin(check())));
        self
    }

    /// Runs the health check.
    pub(crate) async fn check_health(&self) -> Health {
        match &self.health {
            Some(check) => check().await,
            None => Health::Serving,
        }
    }

    /// Sets the plugin's hook: an async function of the hook's context, the event's name and
    /// its payload, called for each event the manifest subscribes to (`[[hooks]]`, with
    /// `kinds` listing `hook`). The manifest's `timeout_ms` bounds each run; a hook that runs
    /// longer, fails or ends its process denies a before-event.
    ///
    /// For `before_tool_execute` the payload is `{ "plugin", "tool", "input", "actor",
    /// "call_id" }`; a [`Verdict::Patch`] returns it with `input` changed.
    ///
    /// ```
    /// use serde_json::Value;
    /// use sigil_process_kit::{Plugin, Verdict};
    ///
    /// let plugin = Plugin::new().hook(|_ctx, _event: String, payload: Value| async move {
    ///     if payload["input"].to_string().contains("rm -rf") {
    ///         Verdict::Deny("destructive command".into())
    ///     } else {
    ///         Verdict::Allow
    ///     }
    /// });
    /// # let _ = plugin;
    /// ```
    pub fn hook<F, Fut>(mut self, hook: F) -> Plugin
    where
        F: Fn(Context, String, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Verdict> + Send + 'static,
    {
        self.hook = Some(Arc::new(move |ctx, event, payload| {
            Box::pin(hook(ctx, event, payload))
        }));
        self
    }

    /// Adds a tool implementing the whole pipeline.
    pub fn tool(mut self, tool: impl Tool) -> Plugin {
        self.tools.push(Arc::new(tool));
        self
    }

    /// Adds a tool made from an async function of the call's context and its JSON input.
    pub fn function<F, Fut>(
        self,
        name: &str,
        description: &str,
        input_schema: Value,
        function: F,
    ) -> Plugin
    where
        F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx, input| Box::pin(function(ctx, input)));
        self.tool(FunctionTool {
            descriptor: Descriptor {
                name: name.to_string(),
                description: description.to_string(),
                input_schema,
                output_schema: None,
                steps: Steps::default(),
            },
            handler,
        })
    }

    /// Adds a tool made from an async function of typed input and output, converted from and
    /// to JSON with serde. Input that does not deserialize is an
    /// [`ToolError::InvalidInput`].
    pub fn typed<I, O, F, Fut>(
        self,
        name: &str,
        description: &str,
        input_schema: Value,
        function: F,
    ) -> Plugin
    where
        I: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let function = Arc::new(function);
        self.function(name, description, input_schema, move |ctx, input| {
            let function = function.clone();
            async move {
                let input: I = serde_json::from_value(input)
                    .map_err(|e| ToolError::InvalidInput(e.to_string()))?;
                let output = function(ctx, input).await?;
                serde_json::to_value(output)
                    .map_err(|e| ToolError::Failed(format!("cannot encode the result: {e}")))
            }
        })
    }
}
