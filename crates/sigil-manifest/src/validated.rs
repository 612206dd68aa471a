//! The manifest after validation: typed, checked, and only constructible by this crate.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use semver::{Version, VersionReq};
use serde::{Serialize, Serializer};
use sigil_policy::Pattern;

use crate::check::{parse_capability, parse_egress, secret_fields};
use crate::raw::{
    RawBlastRadius, RawCapabilities, RawCapability, RawCommand, RawConfig, RawExecution, RawHook,
    RawLifecycle, RawLimits, RawManifest, RawMount, RawSandbox,
};
use crate::types::{Access, HookEvent, Kind, PluginId, Protocol, Scope, Tier};

/// A capability the plugin asks for or renounces, with the reason shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CapabilityRequest {
    /// The capability pattern, in canonical form.
    pub pattern: Pattern,
    /// Why, in the author's words.
    pub reason: String,
}

impl Serialize for CapabilityRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(serializer)
    }
}

impl CapabilityRequest {
    fn to_raw(&self) -> RawCapability {
        RawCapability {
            capability: self.pattern.as_str().to_owned(),
            reason: self.reason.clone(),
        }
    }
}

/// How and where the plugin runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Execution {
    /// Isolation tier. The runtime may move a plugin to a stronger tier, never a weaker one.
    pub tier: Tier,
    /// What to run, relative to the plugin directory, free of `..`; `None` only for builtin.
    pub entry: Option<PathBuf>,
    /// The program that runs `entry` (process and container tiers): an absolute path or a
    /// bare program name, never a relative path.
    pub interpreter: Option<String>,
    /// What a process-tier plugin speaks; `grpc` unless the manifest says `mcp`.
    pub protocol: Protocol,
    /// Resource limits.
    pub limits: Limits,
    /// What the sandbox exposes.
    pub sandbox: Sandbox,
    /// Environment variables set for the plugin; the host environment is never passed.
    pub env: BTreeMap<String, String>,
}

/// Resource limits. `None` means the runtime's default applies, never "unlimited".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Memory, in MiB.
    pub memory_mib: Option<u64>,
    /// Wasm fuel per call (wasm tier only).
    pub fuel: Option<u64>,
    /// CPU time per call, in milliseconds.
    pub cpu_ms: Option<u64>,
    /// Wall-clock deadline per call, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Largest output accepted from one call, in bytes.
    pub output_bytes: Option<u64>,
    /// Most processes at once.
    pub processes: Option<u64>,
    /// Most open files.
    pub open_files: Option<u64>,
}

/// What the sandbox exposes. Empty (the default) exposes nothing: no paths, no network.
///
/// # Security
/// These are what the plugin asks to be reachable; each is still subject to the matching
/// `fs.*` or `net.*` grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sandbox {
    /// Filesystem paths mounted into the sandbox.
    pub fs: Vec<Mount>,
    /// Network destinations reachable through the host's egress proxy.
    pub egress: Vec<Egress>,
}

/// A filesystem path exposed to the sandbox: absolute, free of `..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The path.
    pub path: PathBuf,
    /// Read-only or read-write.
    pub access: Access,
}

/// A network destination: a host (`api.example.com`, `*.example.com`, `10.0.0.1`, `[::1]`),
/// lowercased, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Egress {
    /// Host name, pattern or address.
    pub host: String,
    /// Port; `None` means any port (`*`).
    pub port: Option<u16>,
}

impl fmt::Display for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}:*", self.host),
        }
    }
}

impl Serialize for Egress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How far an action's effects reach and whether they can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct BlastRadius {
    /// Reach of the effects.
    pub scope: Scope,
    /// Whether the action changes state outside the call.
    pub mutates_state: bool,
    /// Whether the change can be undone.
    pub reversible: bool,
}

/// Reload and shutdown behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// Whether a new version may replace a running one without a restart.
    pub hot_reload: bool,
    /// How long calls in flight may run after a reload or stop, in milliseconds.
    pub drain_timeout_ms: u64,
}

/// A lifecycle event the plugin subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct HookSubscription {
    /// The event.
    pub event: HookEvent,
    /// Lower runs first.
    pub priority: i32,
    /// How long the hook may take, in milliseconds; `None` takes the runtime's default.
    pub timeout_ms: Option<u64>,
}

/// A CLI subcommand the plugin contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Subcommand name, not one Sigil reserves.
    pub name: String,
    /// One line of help.
    pub description: String,
    /// Whether the caller must hold `capability`; when true, `capability` is set.
    pub require_auth: bool,
    /// Capability the caller must hold.
    pub capability: Option<Pattern>,
    /// The plugin's tool that runs the command, called with `{"args": [...]}`.
    pub tool: String,
}

impl Serialize for CommandSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(serializer)
    }
}

impl CommandSpec {
    fn to_raw(&self) -> RawCommand {
        RawCommand {
            name: self.name.clone(),
            description: self.description.clone(),
            require_auth: self.require_auth,
            capability: self.capability.as_ref().map(|p| p.as_str().to_owned()),
            tool: (self.tool != self.name).then(|| self.tool.clone()),
        }
    }
}

/// A manifest that passed validation.
///
/// Only [`crate::parse_str`] and [`crate::load_dir`] make one, so holding one means every field
/// was checked: the id is kebab-case, versions and ranges are semver, every capability parses,
/// paths stay inside their roots, and nothing unknown was written.
///
/// It serializes (and [`ValidatedManifest::to_json`] converts) to the manifest's own schema,
/// in canonical form: what `sigil plugin inspect` shows, and valid against [`crate::json_schema`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedManifest {
    file: String,
    id: PluginId,
    name: String,
    version: Version,
    description: String,
    authors: Vec<String>,
    license: Option<String>,
    homepage: Option<String>,
    kinds: Vec<Kind>,
    engine: VersionReq,
    dependencies: BTreeMap<PluginId, VersionReq>,
    requested: Vec<CapabilityRequest>,
    denied: Vec<CapabilityRequest>,
    execution: Execution,
    config_schema: Option<serde_json::Value>,
    secret_fields: Vec<String>,
    actions: BTreeMap<String, BlastRadius>,
    lifecycle: Lifecycle,
    hooks: Vec<HookSubscription>,
    commands: Vec<CommandSpec>,
}

impl ValidatedManifest {
    /// The plugin id.
    pub fn id(&self) -> &PluginId {
        &self.id
    }

    /// Human-readable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Plugin version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// What the plugin does.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Authors, possibly none.
    pub fn authors(&self) -> &[String] {
        &self.authors
    }

    /// SPDX license expression.
    pub fn license(&self) -> Option<&str> {
        self.license.as_deref()
    }

    /// Project home page (http or https).
    pub fn homepage(&self) -> Option<&str> {
        self.homepage.as_deref()
    }

    /// Contracts implemented; at least one, no duplicates.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Sigil versions the plugin works with.
    pub fn engine(&self) -> &VersionReq {
        &self.engine
    }

    /// Plugins this one needs, with the versions it accepts.
    pub fn dependencies(&self) -> &BTreeMap<PluginId, VersionReq> {
        &self.dependencies
    }

    /// Capabilities asked for, in manifest order, no duplicates.
    ///
    /// # Security
    /// A request is not a grant: the operator consents, and the workspace and user layers
    /// still apply.
    pub fn requested(&self) -> &[CapabilityRequest] {
        &self.requested
    }

    /// Capabilities the plugin renounces; none is also requested verbatim.
    pub fn denied(&self) -> &[CapabilityRequest] {
        &self.denied
    }

    /// How and where the plugin runs.
    pub fn execution(&self) -> &Execution {
        &self.execution
    }

    /// JSON Schema of the plugin's configuration (an object schema that compiles).
    pub fn config_schema(&self) -> Option<&serde_json::Value> {
        self.config_schema.as_ref()
    }

    /// Config properties marked `secret: true` (nested ones as `outer.inner`): stored encrypted
    /// and never logged.
    pub fn secret_fields(&self) -> &[String] {
        &self.secret_fields
    }

    /// Blast radius per action name.
    pub fn actions(&self) -> &BTreeMap<String, BlastRadius> {
        &self.actions
    }

    /// Reload and shutdown behaviour.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Hook subscriptions, one per event.
    pub fn hooks(&self) -> &[HookSubscription] {
        &self.hooks
    }

    /// CLI subcommands contributed, unique, none reserved.
    pub fn commands(&self) -> &[CommandSpec] {
        &self.commands
    }

    /// Where the manifest was read from, as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The manifest as JSON, in the manifest's own schema and canonical form (capabilities
    /// canonical, defaults filled in). The source file is not part of it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_raw()).unwrap_or(serde_json::Value::Null)
    }

    fn to_raw(&self) -> RawManifest {
        let execution = &self.execution;
        RawManifest {
            id: self.id.as_str().to_owned(),
            name: self.name.clone(),
            version: self.version.to_string(),
            description: self.description.clone(),
            authors: self.authors.clone(),
            license: self.license.clone(),
            homepage: self.homepage.clone(),
            kinds: self.kinds.clone(),
            engine: self.engine.to_string(),
            dependencies: self
                .dependencies
                .iter()
                .map(|(id, range)| (id.as_str().to_owned(), range.to_string()))
                .collect(),
            capabilities: RawCapabilities {
                request: self
                    .requested
                    .iter()
                    .map(CapabilityRequest::to_raw)
                    .collect(),
                deny: self.denied.iter().map(CapabilityRequest::to_raw).collect(),
            },
            execution: RawExecution {
                tier: execution.tier,
                entry: execution
                    .entry
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                interpreter: execution.interpreter.clone(),
                protocol: (execution.protocol != Protocol::Grpc).then_some(execution.protocol),
                limits: RawLimits {
                    memory_mib: execution.limits.memory_mib,
                    fuel: execution.limits.fuel,
                    cpu_ms: execution.limits.cpu_ms,
                    timeout_ms: execution.limits.timeout_ms,
                    output_bytes: execution.limits.output_bytes,
                    processes: execution.limits.processes,
                    open_files: execution.limits.open_files,
                },
                sandbox: RawSandbox {
                    fs: execution
                        .sandbox
                        .fs
                        .iter()
                        .map(|m| RawMount {
                            path: m.path.to_string_lossy().into_owned(),
                            access: m.access,
                        })
                        .collect(),
                    egress: execution
                        .sandbox
                        .egress
                        .iter()
                        .map(|e| e.to_string())
                        .collect(),
                },
                env: execution.env.clone(),
            },
            config: self.config_schema.as_ref().and_then(|schema| {
                schema.as_object().map(|schema| RawConfig {
                    schema: schema.clone(),
                })
            }),
            actions: self
                .actions
                .iter()
                .map(|(name, b)| {
                    let raw = RawBlastRadius {
                        scope: b.scope,
                        mutates_state: b.mutates_state,
                        reversible: b.reversible,
                    };
                    (name.clone(), raw)
                })
                .collect(),
            lifecycle: RawLifecycle {
                hot_reload: self.lifecycle.hot_reload,
                drain_timeout_ms: self.lifecycle.drain_timeout_ms,
            },
            hooks: self
                .hooks
                .iter()
                .map(|h| RawHook {
                    event: h.event,
                    priority: h.priority,
                    timeout_ms: h.timeout_ms,
                })
                .collect(),
            commands: self.commands.iter().map(CommandSpec::to_raw).collect(),
        }
    }

    /// Lifts a raw manifest that passed every check.
    ///
    /// Every step repeats a parse the checks already made, so an error here is an internal
    /// inconsistency; it is returned rather than unwrapped.
    pub(crate) fn lift(raw: RawManifest, file: &str) -> Result<ValidatedManifest, String> {
        let capabilities = |list: Vec<RawCapability>| -> Result<Vec<CapabilityRequest>, String> {
            list.into_iter()
                .map(|c| {
                    Ok(CapabilityRequest {
                        pattern: parse_capability(&c.capability)?,
                        reason: c.reason,
                    })
                })
                .collect()
        };
        let dependencies = raw
            .dependencies
            .iter()
            .map(|(id, range)| {
                let id = PluginId::new(id).map_err(|e| e.to_string())?;
                let range = VersionReq::parse(range).map_err(|e| e.to_string())?;
                Ok((id, range))
            })
            .collect::<Result<_, String>>()?;
        let sandbox = Sandbox {
            fs: raw
                .execution
                .sandbox
                .fs
                .into_iter()
                .map(|m| Mount {
                    path: PathBuf::from(m.path),
                    access: m.access,
                })
                .collect(),
            egress: raw
                .execution
                .sandbox
                .egress
                .iter()
                .map(|text| {
                    parse_egress(text)
                        .map(|(host, port)| Egress { host, port })
                        .map_err(|problem| format!("egress `{text}` {problem}"))
                })
                .collect::<Result<_, String>>()?,
        };
        let limits = raw.execution.limits;
        let commands = raw
            .commands
            .into_iter()
            .map(|c| {
                let capability = c.capability.as_deref().map(parse_capability).transpose()?;
                Ok(CommandSpec {
                    tool: c.tool.unwrap_or_else(|| c.name.clone()),
                    name: c.name,
                    description: c.description,
                    require_auth: c.require_auth,
                    capability,
                })
            })
            .collect::<Result<_, String>>()?;
        let (config_schema, secret_fields) = match raw.config {
            Some(config) => {
                let secrets = secret_fields(&config.schema);
                (Some(serde_json::Value::Object(config.schema)), secrets)
            }
            None => (None, Vec::new()),
        };
        Ok(ValidatedManifest {
            file: file.to_owned(),
            id: PluginId::new(&raw.id).map_err(|e| e.to_string())?,
            name: raw.name,
            version: Version::parse(&raw.version).map_err(|e| e.to_string())?,
            description: raw.description,
            authors: raw.authors,
            license: raw.license,
            homepage: raw.homepage,
            kinds: raw.kinds,
            engine: VersionReq::parse(&raw.engine).map_err(|e| e.to_string())?,
            dependencies,
            requested: capabilities(raw.capabilities.request)?,
            denied: capabilities(raw.capabilities.deny)?,
            execution: Execution {
                tier: raw.execution.tier,
                entry: raw.execution.entry.map(PathBuf::from),
                interpreter: raw.execution.interpreter,
                protocol: raw.execution.protocol.unwrap_or(Protocol::Grpc),
                limits: Limits {
                    memory_mib: limits.memory_mib,
                    fuel: limits.fuel,
                    cpu_ms: limits.cpu_ms,
                    timeout_ms: limits.timeout_ms,
                    output_bytes: limits.output_bytes,
                    processes: limits.processes,
                    open_files: limits.open_files,
                },
                sandbox,
                env: raw.execution.env,
            },
            config_schema,
            secret_fields,
            actions: raw
                .actions
                .into_iter()
                .map(|(name, b)| {
                    let radius = BlastRadius {
                        scope: b.scope,
                        mutates_state: b.mutates_state,
                        reversible: b.reversible,
                    };
                    (name, radius)
                })
                .collect(),
            lifecycle: Lifecycle {
                hot_reload: raw.lifecycle.hot_reload,
                drain_timeout_ms: raw.lifecycle.drain_timeout_ms,
            },
            hooks: raw
                .hooks
                .into_iter()
                .map(|h| HookSubscription {
                    event: h.event,
                    priority: h.priority,
                    timeout_ms: h.timeout_ms,
                })
                .collect(),
            commands,
        })
    }
}

impl Serialize for ValidatedManifest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(serializer)
    }
}
