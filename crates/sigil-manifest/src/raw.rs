//! The manifest as written: serde and JSON Schema derives, no meaning checked yet.
//!
//! These structs are the single source of the schema: [`crate::json_schema`] is generated from
//! them, and the doc comments become the descriptions editors show. Every struct denies unknown
//! fields, which the schema expresses as `additionalProperties: false`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{Access, HookEvent, Kind, Protocol, Scope, Tier};

/// Default for `lifecycle.drain_timeout_ms`.
pub(crate) const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 5_000;

/// A Sigil plugin manifest (`plugin.toml` or `plugin.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Manifest", title = "Sigil plugin manifest")]
pub(crate) struct RawManifest {
    /// Unique plugin id: kebab-case (lowercase letters, digits and `-`), at most 64 characters.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]*$"), length(min = 1, max = 64))]
    pub id: String,
    /// Human-readable name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Plugin version, semver (`1.2.0`).
    pub version: String,
    /// What the plugin does, shown to the operator at install and consent.
    #[schemars(length(min = 1))]
    pub description: String,
    /// Authors, e.g. `Ada Lovelace <ada@example.com>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// SPDX license expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Project home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Contracts the plugin implements: tool, channel, provider, skill, hook, command.
    #[schemars(length(min = 1))]
    pub kinds: Vec<Kind>,
    /// Semver range of Sigil versions the plugin works with (`>=0.1, <0.3`, `*`).
    pub engine: String,
    /// Other plugins this one needs: plugin id to semver range.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, String>,
    /// Capabilities asked for and renounced.
    #[serde(default, skip_serializing_if = "RawCapabilities::is_empty")]
    pub capabilities: RawCapabilities,
    /// How and where the plugin runs.
    pub execution: RawExecution,
    /// Operator configuration accepted by the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RawConfig>,
    /// Blast radius of each action the plugin performs, by action name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, RawBlastRadius>,
    /// Reload and shutdown behaviour.
    #[serde(default)]
    pub lifecycle: RawLifecycle,
    /// Lifecycle events the plugin subscribes to (hook plugins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<RawHook>,
    /// CLI subcommands the plugin contributes (command plugins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<RawCommand>,
}

/// Capabilities the plugin asks for and those it renounces; each with a reason for the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Capabilities")]
pub(crate) struct RawCapabilities {
    /// Capabilities the plugin asks for, e.g. `net.connect:api.github.com:443`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<RawCapability>,
    /// Capabilities the plugin renounces, even if granted more broadly, e.g. `fs.write:/etc/**`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<RawCapability>,
}

impl RawCapabilities {
    fn is_empty(&self) -> bool {
        self.request.is_empty() && self.deny.is_empty()
    }
}

/// One capability with the reason shown to the operator at consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Capability")]
pub(crate) struct RawCapability {
    /// Capability pattern: `action[:resource]`, e.g. `kv.read`, `fs.read:/data/**`.
    pub capability: String,
    /// Why the plugin needs (or renounces) it, in plain words.
    #[schemars(length(min = 1))]
    pub reason: String,
}

/// How and where the plugin runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Execution")]
pub(crate) struct RawExecution {
    /// Isolation tier: builtin, wasm, process or container.
    pub tier: Tier,
    /// What to run, relative to the plugin directory: a Wasm component, an executable or an
    /// image path. Required unless the tier is builtin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// For the process and container tiers, the program that runs `entry` when it is a script:
    /// an absolute path inside the sandbox (`/usr/bin/python3`) or a name found on the
    /// sandbox's `PATH` (`python3`). Without it, `entry` itself must be executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// For the process tier, what the plugin speaks: `grpc` (the default, Sigil's plugin
    /// protocol) or `mcp` (an existing stdio MCP server, bridged: its tools become Sigil tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Resource limits; unset limits take the runtime's defaults.
    #[serde(default, skip_serializing_if = "RawLimits::is_empty")]
    pub limits: RawLimits,
    /// What the sandbox exposes: filesystem paths and network egress.
    #[serde(default, skip_serializing_if = "RawSandbox::is_empty")]
    pub sandbox: RawSandbox,
    /// Environment variables set for the plugin (the host environment is never passed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Resource limits, each a positive integer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub(crate) struct RawLimits {
    /// Memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_mib: Option<u64>,
    /// Wasm fuel per call (wasm tier only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub fuel: Option<u64>,
    /// CPU time per call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpu_ms: Option<u64>,
    /// Wall-clock deadline per call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Largest output accepted from one call, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub output_bytes: Option<u64>,
    /// Most processes the plugin may run at once (process and container tiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub processes: Option<u64>,
    /// Most files the plugin may hold open (process and container tiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub open_files: Option<u64>,
}

impl RawLimits {
    fn is_empty(&self) -> bool {
        self == &RawLimits::default()
    }
}

/// What the sandbox exposes. Nothing is exposed unless listed here and granted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Sandbox")]
pub(crate) struct RawSandbox {
    /// Filesystem paths mounted into the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fs: Vec<RawMount>,
    /// Network destinations reachable through the host's egress proxy, as `host:port`
    /// (`*.example.com:443`, `api.example.com:*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

impl RawSandbox {
    fn is_empty(&self) -> bool {
        self.fs.is_empty() && self.egress.is_empty()
    }
}

/// A filesystem path exposed to the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Mount")]
pub(crate) struct RawMount {
    /// Absolute path, e.g. `/data`.
    pub path: String,
    /// `read` or `write`.
    pub access: Access,
}

/// Operator configuration accepted by the plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Config")]
pub(crate) struct RawConfig {
    /// JSON Schema (an object schema) of the configuration. A property with `secret = true` is
    /// stored encrypted and never logged.
    pub schema: serde_json::Map<String, serde_json::Value>,
}

/// How far an action's effects reach and whether they can be undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "BlastRadius")]
pub(crate) struct RawBlastRadius {
    /// vm, container, host or network.
    pub scope: Scope,
    /// Whether the action changes state outside the call.
    pub mutates_state: bool,
    /// Whether the change can be undone (by the plugin's rollback).
    pub reversible: bool,
}

/// Reload and shutdown behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Lifecycle")]
pub(crate) struct RawLifecycle {
    /// Whether a new version may replace a running one without a restart.
    #[serde(default)]
    pub hot_reload: bool,
    /// How long calls in flight may run after a reload or stop, in milliseconds.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

impl Default for RawLifecycle {
    fn default() -> Self {
        RawLifecycle {
            hot_reload: false,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
        }
    }
}

fn default_drain_timeout_ms() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}

/// A lifecycle event the plugin subscribes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Hook")]
pub(crate) struct RawHook {
    /// The event, e.g. `before_tool_execute`.
    pub event: HookEvent,
    /// Lower runs first; default 0.
    #[serde(default)]
    #[schemars(range(min = -2_147_483_648, max = 2_147_483_647))]
    pub priority: i32,
    /// How long the hook may take, in milliseconds; unset takes the runtime's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
}

/// A CLI subcommand contributed by the plugin (`sigil NAME ...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Command")]
pub(crate) struct RawCommand {
    /// Subcommand name: lowercase letters, digits and `-`, starting with a letter.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub name: String,
    /// One line of help.
    #[schemars(length(min = 1))]
    pub description: String,
    /// Whether the caller must hold `capability` to run it.
    #[serde(default)]
    pub require_auth: bool,
    /// Capability the caller must hold; required when `require_auth` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The plugin's tool that runs the command, called with `{"args": [...]}`; default: the
    /// tool named like the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tool: Option<String>,
}
