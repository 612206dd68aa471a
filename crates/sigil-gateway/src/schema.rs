//! The API's response and request bodies, with their JSON Schemas for the OpenAPI document.
//!
//! These are the gateway's own types, converted from the runtime's, so the wire format is
//! stated here once and the runtime's types stay free of HTTP concerns.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the daemon serves.
    #[schema(example = "ok")]
    pub status: String,
    /// The Sigil version.
    pub version: String,
}

/// Where a plugin came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceBody {
    /// `builtin` or `directory`.
    #[schema(example = "builtin")]
    pub kind: String,
    /// The plugin directory, for `directory`.
    pub path: Option<String>,
}

/// A plugin's trust level, from how it arrived (never from its manifest).
#[derive(Debug, Serialize, ToSchema)]
pub struct TrustBody {
    /// `trusted` (compiled in), `verified` (signed by a key in the operator's trust store,
    /// every file matching its digest) or `sandboxed` (neither).
    #[schema(example = "verified")]
    pub level: String,
    /// The trusted key's name, for `verified`.
    pub key: Option<String>,
    /// The key's minisign id (16 hex digits), for `verified`.
    pub key_id: Option<String>,
}

impl From<&sigil_runtime::Trust> for TrustBody {
    fn from(trust: &sigil_runtime::Trust) -> TrustBody {
        let (key, key_id) = match trust {
            sigil_runtime::Trust::Verified { key, key_id } => {
                (Some(key.clone()), Some(key_id.clone()))
            }
            _ => (None, None),
        };
        TrustBody {
            level: trust.level().to_string(),
            key,
            key_id,
        }
    }
}

/// A plugin and its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginBody {
    /// The plugin id.
    #[schema(example = "text")]
    pub id: String,
    /// Its human name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its tier: `builtin`, `wasm`, `process`, `container`.
    pub tier: String,
    /// The kinds it provides.
    pub kinds: Vec<String>,
    /// Its lifecycle state: `discovered`, `validating`, `loading`, `running`, `draining`,
    /// `stopping`, `stopped` or `error`.
    #[schema(example = "running")]
    pub state: String,
    /// Why it is in the error state.
    pub error: Option<String>,
    /// Where it came from.
    pub source: SourceBody,
    /// Its trust level.
    pub trust: TrustBody,
    /// Its tools' names.
    pub tools: Vec<String>,
    /// Tools held for an operator's approval (a bridged MCP server changed them since they
    /// were approved); calls to them are refused until `POST /v1/plugins/{id}/approve`.
    pub held: Vec<HeldBody>,
}

/// A tool held for an operator's approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldBody {
    /// The tool.
    pub tool: String,
    /// What changed since the last approval.
    pub reason: String,
}

/// A plugin's configuration as shown: secret fields read `"<secret>"`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginConfigBody {
    /// The plugin.
    pub plugin: String,
    /// `[plugins.<id>.config]` with the stored secret fields, each as `"<secret>"`.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// What a configuration change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigChangeBody {
    /// The plugins whose own configuration changed; their next calls see it.
    pub plugins: Vec<String>,
    /// Whether sigil.toml changed at all (workspaces, users and denies are in force at once too).
    pub file_changed: bool,
}

impl From<sigil_runtime::ConfigChange> for ConfigChangeBody {
    fn from(change: sigil_runtime::ConfigChange) -> Self {
        ConfigChangeBody {
            plugins: change.plugins,
            file_changed: change.file_changed,
        }
    }
}

/// What an approval changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalBody {
    /// The tools whose current definitions were approved; empty when nothing was held.
    pub approved: Vec<String>,
    /// The plugin afterwards.
    pub plugin: PluginBody,
}

impl From<sigil_runtime::PluginSummary> for PluginBody {
    fn from(s: sigil_runtime::PluginSummary) -> PluginBody {
        PluginBody {
            id: s.id,
            name: s.name,
            version: s.version,
            tier: s.tier,
            kinds: s.kinds,
            state: s.state.to_string(),
            error: s.error,
            source: source(&s.source),
            trust: TrustBody::from(&s.trust),
            tools: s.tools,
            held: s
                .held
                .into_iter()
                .map(|h| HeldBody {
                    tool: h.tool,
                    reason: h.reason,
                })
                .collect(),
        }
    }
}

pub(crate) fn source(source: &sigil_runtime::Source) -> SourceBody {
    match source {
        sigil_runtime::Source::Builtin => SourceBody {
            kind: "builtin".into(),
            path: None,
        },
        sigil_runtime::Source::Directory(dir) => SourceBody {
            kind: "directory".into(),
            path: Some(dir.display().to_string()),
        },
    }
}

/// `GET /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Every plugin the runtime holds.
    pub plugins: Vec<PluginBody>,
    /// Plugin directories whose manifests did not validate.
    pub failed: Vec<FailureBody>,
}

/// A plugin directory that did not validate.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureBody {
    /// The directory.
    pub dir: String,
    /// Every problem, with file, line and column.
    pub diagnostics: Vec<String>,
}

/// `GET /v1/plugins/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginDetail {
    /// The plugin and its state.
    pub plugin: PluginBody,
    /// The validated manifest.
    pub manifest: Value,
    /// Its tools.
    pub tools: Vec<ToolBody>,
}

/// The optional pipeline steps of a tool.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepsBody {
    /// Checks the input before anything happens.
    pub validate_pre: bool,
    /// Checks the result after the invocation.
    pub validate_post: bool,
    /// Undoes an invocation that failed.
    pub rollback: bool,
}

/// A tool.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolBody {
    /// The plugin providing it.
    #[schema(example = "text")]
    pub plugin: String,
    /// The tool's name.
    #[schema(example = "sha256")]
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
    /// JSON Schema of its output, when it has one.
    pub output_schema: Option<Value>,
    /// Which optional pipeline steps it provides.
    pub steps: StepsBody,
    /// Its blast radius from the manifest, when declared.
    pub blast_radius: Option<Value>,
    /// Why a call of it waits for a person's approval (`[approvals]` in sigil.toml); `null`
    /// when it runs at once.
    pub approval: Option<String>,
}

impl ToolBody {
    /// Notes why a call of this tool waits for a person's approval.
    pub(crate) fn with_approval(mut self, approval: Option<String>) -> ToolBody {
        self.approval = approval;
        self
    }

    pub(crate) fn new(
        plugin: &str,
        tool: &sigil_runtime::ToolDescriptor,
        blast_radius: Option<Value>,
    ) -> ToolBody {
        ToolBody {
            plugin: plugin.to_string(),
            name: tool.name.clone(),
            description: tool.description.clone(),
            input_schema: tool.input_schema.clone(),
            output_schema: tool.output_schema.clone(),
            steps: StepsBody {
                validate_pre: tool.steps.validate_pre,
                validate_post: tool.steps.validate_post,
                rollback: tool.steps.rollback,
            },
            blast_radius,
            approval: None,
        }
    }
}

/// `GET /v1/tools`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    /// Every tool of every running plugin.
    pub tools: Vec<ToolBody>,
}

/// A successful tool call.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationBody {
    /// The id shared by every audit record of the call.
    pub call_id: String,
    /// The tool's result.
    pub output: Value,
    /// How long the call took, end to end, in microseconds.
    pub duration_us: u64,
}

/// `POST /v1/plugins`: install a plugin from a directory on the server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// The plugin directory's absolute path on the server (built: its `execution.entry` must
    /// exist).
    #[schema(example = "/srv/plugins/weather")]
    pub path: String,
    /// Replace an installed plugin with the same id.
    #[serde(default)]
    pub force: bool,
}

/// `DELETE /v1/plugins/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    /// The plugin removed.
    pub removed: String,
    /// Whether its installed directory was deleted (plugins found through `plugin_dirs` are
    /// left on disk).
    pub files_deleted: bool,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records of this plugin.
    pub plugin: Option<String>,
    /// Only records whose actor is this user.
    pub user: Option<String>,
    /// Only decisions with this verdict: `allow` or `deny`.
    #[param(pattern = "^(allow|deny)$")]
    pub decision: Option<String>,
    /// Only records of this call.
    pub call_id: Option<String>,
    /// Only records since this time: RFC 3339 (`2026-11-23T10:00:00Z`) or an age (`15m`, `2h`,
    /// `7d`).
    pub since: Option<String>,
    /// At most this many records, the newest (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Who caused a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorBody {
    /// The user.
    pub user: Option<String>,
    /// The workspace.
    pub workspace: Option<String>,
    /// The session.
    pub session: Option<String>,
    /// The channel (`http`, `cli`, `mcp`, ...).
    pub channel: Option<String>,
}

impl From<&sigil_audit::Actor> for ActorBody {
    fn from(a: &sigil_audit::Actor) -> ActorBody {
        ActorBody {
            user: a.user.clone(),
            workspace: a.workspace.clone(),
            session: a.session.clone(),
            channel: a.channel.clone(),
        }
    }
}

/// An audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    /// Sequence number: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// `decision`, `outcome` or `approval`.
    pub kind: String,
    /// Who.
    pub actor: ActorBody,
    /// The plugin concerned.
    pub plugin: Option<String>,
    /// Its version.
    pub plugin_version: Option<String>,
    /// The capability decided.
    pub capability: Option<String>,
    /// `allow` or `deny`, for decisions.
    pub decision: Option<String>,
    /// The rule that decided; for an outcome, `completed` or the stage that stopped the call
    /// (`stopped at validate-input`).
    pub rule: String,
    /// The call the record belongs to.
    pub call_id: Option<String>,
    /// How long the call took, for outcomes.
    pub duration_us: Option<u64>,
    /// How the call ended, for outcomes.
    pub outcome: Option<String>,
    /// The steps an outcome's call went through, in order; absent on other records.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepBody>,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl From<sigil_audit::Record> for AuditRecord {
    fn from(r: sigil_audit::Record) -> AuditRecord {
        let d = r.record;
        AuditRecord {
            seq: r.seq,
            time_ms: r.time_ms,
            kind: d.kind.to_string(),
            actor: ActorBody::from(&d.actor),
            plugin: d.plugin,
            plugin_version: d.plugin_version,
            capability: d.capability,
            decision: d.decision.map(|v| v.to_string()),
            rule: d.rule,
            call_id: d.call_id,
            duration_us: d.duration_us,
            outcome: d.outcome,
            steps: d
                .steps
                .into_iter()
                .map(|s| StepBody {
                    step: s.step,
                    ok: s.ok,
                    detail: s.detail,
                })
                .collect(),
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// One step of a call, as its outcome record keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepBody {
    /// The step: `before-hooks`, `approval`, `validate-pre`, `invoke`, `validate-post`,
    /// `rollback`, or the stage that stopped the call.
    #[schema(example = "invoke")]
    pub step: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed, or what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecords {
    /// The matching records, oldest first.
    pub records: Vec<AuditRecord>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyBody {
    /// How many records the log holds.
    pub records: u64,
    /// Whether the hash chain is intact.
    pub intact: bool,
    /// The first edited, deleted or reordered record, when not intact.
    pub problem: Option<String>,
}

/// A workspace of `sigil.toml`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceBody {
    /// Its name.
    pub name: String,
    /// What it allows.
    pub allow: Vec<String>,
    /// What it denies.
    pub deny: Vec<String>,
    /// Whether it is `[defaults] workspace`.
    pub default: bool,
}

/// `GET /v1/workspaces`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceList {
    /// Every workspace.
    pub workspaces: Vec<WorkspaceBody>,
}

/// A user of `sigil.toml`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub permissions: Vec<String>,
    /// What it may not.
    pub deny: Vec<String>,
    /// The workspaces it belongs to: the only ones its requests may name.
    pub workspaces: Vec<String>,
}

/// `GET /v1/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Every user.
    pub users: Vec<UserBody>,
    /// The user this request acts as.
    pub me: String,
}

/// A call waiting for a person's approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingApprovalBody {
    /// The approval's id, to approve or deny it.
    pub id: String,
    /// The call it holds; its audit records share this id.
    pub call_id: String,
    /// The plugin called.
    #[schema(example = "fs")]
    pub plugin: String,
    /// The tool called.
    #[schema(example = "read_text")]
    pub tool: String,
    /// Who made the call.
    pub actor: ActorBody,
    /// The call's arguments.
    pub input: Value,
    /// Why it needs an approval, e.g. the `approvals.require` rules its blast radius matches.
    pub reason: String,
    /// When it was requested, in Unix milliseconds.
    pub created_ms: i64,
    /// When it is denied unless decided, in Unix milliseconds.
    pub deadline_ms: i64,
}

impl From<sigil_runtime::PendingApproval> for PendingApprovalBody {
    fn from(a: sigil_runtime::PendingApproval) -> PendingApprovalBody {
        PendingApprovalBody {
            id: a.id,
            call_id: a.call_id,
            plugin: a.plugin,
            tool: a.tool,
            actor: ActorBody::from(&a.actor),
            input: a.input,
            reason: a.reason,
            created_ms: a.created_ms,
            deadline_ms: a.deadline_ms,
        }
    }
}

/// `GET /v1/approvals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    /// The pending approvals the caller may see, oldest first.
    pub approvals: Vec<PendingApprovalBody>,
}

/// `POST /v1/approvals/{id}/approve` and `/deny`: an optional body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Why, recorded in the audit log and told to the caller.
    #[schema(example = "checked with the team")]
    pub reason: Option<String>,
}

/// What a decision did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionBody {
    /// The approval.
    pub id: String,
    /// The call it held.
    pub call_id: String,
    /// `approve` or `deny`.
    #[schema(example = "approve")]
    pub decision: String,
    /// The recorded rule, e.g. `approved by alice: checked with the team`.
    pub rule: String,
    /// The decision's audit record.
    pub seq: u64,
}
