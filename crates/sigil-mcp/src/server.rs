//! The MCP server handler: the running plugins' tools listed and called through
//! [`Runtime::invoke`], on behalf of the caller.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use sigil_manifest::{BlastRadius, Scope};
use sigil_runtime::{Actor, Runtime, ToolListing};

use crate::names::{mcp_tool_name, parse_mcp_tool_name};

/// The channel recorded in the audit log for calls that arrive over MCP, unless the caller's
/// actor already names one.
pub const CHANNEL: &str = "mcp";

/// What the server tells clients it is, in `initialize`.
const INSTRUCTIONS: &str = "Sigil, a secure plugin runtime: each tool here is a tool of a \
running Sigil plugin, named PLUGIN__TOOL. Every call is checked against the operator's policy \
for the calling user and workspace and recorded in a tamper-evident audit log. A call the \
policy denies, arguments that do not match the tool's input schema, or a tool failure come \
back as a tool result with isError set and the reason as text.";

/// Sigil's MCP server: an rmcp [`ServerHandler`] over a shared [`Runtime`].
///
/// `tools/list` lists the tools of the running plugins that the caller may call (the
/// enforcer's decision for `tool.<plugin>.<tool>`, asked without recording it), named as
/// [`crate::names`] describes; `tools/call` runs [`Runtime::invoke`] on the caller's behalf, so
/// every call passes the enforcer and is audited.
///
/// Outcomes of `tools/call`:
/// - a successful call: `isError: false`, the output as JSON text, and as `structuredContent`
///   when it is a JSON object; `_meta["sigil/call_id"]` names the call in the audit log;
/// - every error of [`Runtime::invoke`] (a deny, invalid arguments, a plugin that is not
///   running, a failing tool, an audit failure): `isError: true` with the message as text and
///   `_meta["sigil/error"]` naming the kind (`denied`, `invalid_arguments`, ...);
/// - a name that is no running plugin's tool: a JSON-RPC error (`-32602`, invalid params),
///   nothing invoked;
/// - no caller identity on an HTTP request: a JSON-RPC error (`-32600`, invalid request),
///   nothing invoked;
/// - a caller whose user does not belong to its workspace (`[users.<name>] workspaces`): a
///   JSON-RPC error (`-32600`), recorded in the audit log, nothing listed or invoked.
///
/// # Security
/// Over HTTP the caller is only ever the [`Actor`] the authenticating layer put into the HTTP
/// request's extensions; there is no fallback to a default user.
#[derive(Debug, Clone)]
pub struct McpServer {
    runtime: Arc<Runtime>,
    caller: Caller,
}

/// Where the actor of a request comes from.
#[derive(Debug, Clone)]
enum Caller {
    /// One actor for the whole connection: the local user of a stdio server.
    Local(Actor),
    /// Each HTTP request's own extensions, put there by the authenticating layer.
    HttpRequest,
}

impl McpServer {
    /// A server acting for `actor` on every request: for a connection owned by one local user,
    /// such as stdio.
    pub fn local(runtime: Arc<Runtime>, actor: Actor) -> McpServer {
        McpServer {
            runtime,
            caller: Caller::Local(actor),
        }
    }

    /// A server acting, for each request, for the [`Actor`] in the extensions of the HTTP
    /// request it came in (see [`crate::http_service`]).
    pub(crate) fn per_http_request(runtime: Arc<Runtime>) -> McpServer {
        McpServer {
            runtime,
            caller: Caller::HttpRequest,
        }
    }

    /// The caller, once the enforcer has admitted it: its user belongs to its workspace. A
    /// refusal is recorded in the audit log and answered with a JSON-RPC error, whichever
    /// transport the actor came from (a stdio server started for a workspace its user does not
    /// belong to refuses every request).
    async fn admitted(&self, context: &RequestContext<RoleServer>) -> Result<Actor, ErrorData> {
        let actor = self.actor(context)?;
        match self.runtime.enforcer().check_membership(&actor).await {
            Ok(()) => Ok(actor),
            Err(rule) => {
                tracing::warn!(user = ?actor.user, workspace = ?actor.workspace, %rule, "mcp request refused");
                Err(ErrorData::invalid_request(format!("refused: {rule}"), None))
            }
        }
    }

    fn actor(&self, context: &RequestContext<RoleServer>) -> Result<Actor, ErrorData> {
        match &self.caller {
            Caller::Local(actor) => Ok(actor.clone()),
            Caller::HttpRequest => {
                let found = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| parts.extensions.get::<Actor>());
                let Some(actor) = found else {
                    tracing::warn!("mcp request over http without an authenticated actor");
                    return Err(ErrorData::invalid_request(
                        "no authenticated caller: the http request carries no sigil actor \
                         (the mcp service must be mounted behind sigil's authentication)",
                        None,
                    ));
                };
                let mut actor = actor.clone();
                if actor.channel.is_none() {
                    actor.channel = Some(CHANNEL.to_string());
                }
                Ok(actor)
            }
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("sigil", env!("CARGO_PKG_VERSION"))
                    .with_title("Sigil")
                    .with_description("A secure plugin runtime for AI agents."),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let actor = self.admitted(&context).await?;
        // Only what this caller may call, as the enforcer would decide it now. Listing is not
        // an action, so nothing is recorded; a call is still checked, and audited, on its own.
        let enforcer = self.runtime.enforcer();
        let tools = self
            .runtime
            .tools()
            .iter()
            .filter(|t| {
                enforcer
                    .explain_call(&t.plugin, &t.tool.name, &actor)
                    .is_allowed()
            })
            .map(mcp_tool)
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let (plugin, tool) = parse_mcp_tool_name(name)?;
        self.runtime
            .tools()
            .iter()
            .find(|t| t.plugin == plugin && t.tool.name == tool)
            .map(mcp_tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = self.admitted(&context).await?;
        let name = request.name.as_ref();
        // A tool held for an operator's approval is not listed, but it exists: a call to it
        // goes to the runtime, which refuses it as held, saying why, and records that.
        let known = parse_mcp_tool_name(name).filter(|(plugin, tool)| {
            self.runtime
                .tools()
                .iter()
                .any(|t| t.plugin == *plugin && t.tool.name == *tool)
                || self
                    .runtime
                    .manager()
                    .get(plugin)
                    .is_some_and(|entry| entry.held().iter().any(|h| h.tool == *tool))
        });
        let Some((plugin, tool)) = known else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`: no running plugin provides it (see tools/list)"),
                None,
            ));
        };
        let target = format!("{plugin}/{tool}");
        let input = Value::Object(request.arguments.unwrap_or_default());
        // The call is not raced against the client's cancellation: once the enforcer has
        // allowed it, it runs to its outcome record (bounded by the manifest's deadline).
        let result = match self.runtime.invoke(&actor, &target, input).await {
            Ok(invocation) => {
                tracing::info!(%target, user = ?actor.user, call_id = %invocation.call_id, "mcp call ok");
                let meta = meta("sigil/call_id", invocation.call_id);
                let result = match invocation.output {
                    output @ Value::Object(_) => CallToolResult::structured(output),
                    output => CallToolResult::success(vec![ContentBlock::text(output.to_string())]),
                };
                result.with_meta(Some(meta))
            }
            Err(error) => {
                tracing::info!(%target, user = ?actor.user, %error, "mcp call failed");
                CallToolResult::error(vec![ContentBlock::text(error.to_string())])
                    .with_meta(Some(meta("sigil/error", error.code().to_string())))
            }
        };
        Ok(result.into())
    }
}

/// A tool as MCP lists it.
fn mcp_tool(listing: &ToolListing) -> Tool {
    let descriptor = &listing.tool;
    // MCP wants an object schema; the runtime validates arguments against the real one anyway.
    let input = match &descriptor.input_schema {
        Value::Object(schema) => schema.clone(),
        _ => object_schema(),
    };
    let mut tool = Tool::new(
        mcp_tool_name(&listing.plugin, &descriptor.name),
        descriptor.description.clone(),
        Arc::new(input),
    )
    .with_title(format!("{}/{}", listing.plugin, descriptor.name));
    // MCP output schemas describe `structuredContent`, which is an object: an output schema
    // of any other type is not listed, and such a tool's result comes back as text only.
    if let Some(Value::Object(schema)) = &descriptor.output_schema
        && schema.get("type").and_then(Value::as_str) == Some("object")
    {
        tool = tool.with_raw_output_schema(Arc::new(schema.clone()));
    }
    if let Some(blast) = &listing.blast_radius {
        tool = tool.with_annotations(annotations(blast));
    }
    tool
}

/// MCP's behaviour hints, from the manifest's blast radius.
fn annotations(blast: &BlastRadius) -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(!blast.mutates_state)
        .destructive(blast.mutates_state && !blast.reversible)
        .open_world(blast.scope == Scope::Network)
}

fn object_schema() -> JsonObject {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema
}

fn meta(key: &str, value: String) -> MetaObject {
    let mut object = JsonObject::new();
    object.insert(key.to_string(), Value::String(value));
    MetaObject(object)
}
