//! Entry points for the fuzz targets under `fuzz/`: the host's handling of the messages a
//! plugin sends, after protobuf decoding. Not part of the crate's API; hidden from its docs.

use serde_json::Value;
use sigil_runtime::fuzzing::CheckedTool;
use sigil_runtime::{HookVerdict, ToolError};

use crate::proto;

/// A tool's result (`Tool.Invoke`), as the runtime receives it.
///
/// # Errors
/// The tool's error, or why its reply is unusable.
pub fn invoke_result(reply: proto::InvokeResponse) -> Result<Value, ToolError> {
    crate::plugin::invoke_result(reply)
}

/// A pipeline step's result (`Tool.ValidatePre`, `ValidatePost`, `Rollback`).
///
/// # Errors
/// The step's error.
pub fn step_result(reply: proto::StepResponse) -> Result<(), ToolError> {
    crate::plugin::tool_error(reply.error)
}

/// A hook's verdict (`Hook.OnEvent`).
///
/// # Errors
/// Why the verdict is unusable.
pub fn hook_verdict(reply: proto::HookVerdict) -> Result<HookVerdict, ToolError> {
    crate::plugin::verdict(reply)
}

/// The plugin's answer to `Lifecycle.Init`: whether its protocol version is accepted.
///
/// # Errors
/// Why the plugin does not load.
pub fn init(reply: &proto::InitResponse) -> Result<(), String> {
    crate::instance::check_version(&reply.protocol_version)
}

/// The plugin's tools (`Tool.Describe`), lifted and then checked and compiled by the runtime
/// as at load; `instance` is validated against each input schema as a call's arguments are.
///
/// # Errors
/// Why the plugin does not load.
pub fn describe(
    reply: proto::DescribeResponse,
    instance: &Value,
) -> Result<Vec<CheckedTool>, String> {
    let tools = reply
        .tools
        .into_iter()
        .map(crate::plugin::descriptor)
        .collect::<Result<Vec<_>, _>>()?;
    sigil_runtime::fuzzing::check_tools(tools, instance)
}

/// Where a plugin's `Host.HttpSend` goes.
#[derive(Debug)]
pub struct HttpDestination {
    /// The capability the request is decided on.
    pub capability: String,
    /// The host the connection is made to, as the resolver takes it.
    pub connect_host: String,
    /// The port the connection is made to.
    pub port: u16,
}

/// What the host makes of a plugin's `Host.HttpSend` before the decision.
///
/// # Errors
/// Why the request is refused.
pub fn http_destination(request: &proto::HttpSendRequest) -> Result<HttpDestination, String> {
    let uri: http::Uri = request.url.parse().map_err(|e| format!("{e}"))?;
    let destination =
        sigil_egress::HttpDestination::of(&uri).map_err(|e| e.reason().to_string())?;
    let connect_host = match destination.host.ip() {
        Some(ip) => ip.to_string(),
        None => destination.host.as_str().to_string(),
    };
    Ok(HttpDestination {
        capability: format!("net.connect:{}:{}", destination.host, destination.port),
        connect_host,
        port: destination.port,
    })
}
