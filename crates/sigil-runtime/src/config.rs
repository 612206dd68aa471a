//! The data directory and the operator's configuration, `sigil.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sigil_policy::{CapabilitySet, Pattern, Scope};

use crate::approval_rules::{ApprovalRule, DEFAULT_APPROVAL_TIMEOUT};
use crate::secret_binding::{BoundSecret, SecretDestination};
use crate::secrets::PluginSecrets;

/// What a secret field of a plugin's configuration shows instead of its value wherever the
/// configuration is listed (API, command line). Sent back unchanged in a configuration update,
/// it keeps the stored value.
pub const SECRET_MARKER: &str = "<secret>";

/// The configuration written on first use, so the operator sees and can edit every default.
pub const DEFAULT_CONFIG: &str = r#"# Sigil configuration. Every capability list uses the grammar of `sigil policy explain`.

[defaults]
# Who the local command line acts as, and in which workspace, unless --user / --workspace say otherwise.
user = "local"
workspace = "default"

[policy]
# Denied everywhere, whatever a plugin, workspace or user is granted.
deny = []

[workspaces.default]
allow = ["*"]
deny = []

# The operator at this machine's command line. A user acts only in the workspaces listed in
# `workspaces`; without the field, only in [defaults] workspace. E.g.
#   [users.alice]
#   workspaces = ["default", "research"]
[users.local]
permissions = ["*"]
deny = []

[audit]
# "disk": a call goes on only once its audit record is on the disk (fsync; survives a power cut).
# "process": once SQLite has committed it (survives any crash of Sigil, not of the machine; faster).
durability = "disk"

# Calls that wait for a person's approval, by the tool's blast radius (its manifest's
# [actions.<tool>]; a tool declaring none counts as network, mutating, irreversible).
# Nothing is required by default. A pending call is listed by `sigil approvals list` and
# GET /v1/approvals, decided by a user holding `approvals.decide`, and denied after timeout_ms.
# [approvals]
# require = ["irreversible", "scope:host", "scope:network", "mutates_state", "tool:fs/read_text"]
# timeout_ms = 300000
# allow_self_approval = false   # may the user who made a call approve it?

# Plugin signatures (docs/trust.md). `sigil trust add` puts the public keys whose signatures
# make a plugin `verified` in [trust.keys], e.g. release = "RWQ...". The tiers unsigned
# (sandboxed) and signed (verified) plugins may run in are every tier unless narrowed here;
# sandboxed_tiers must be a subset of verified_tiers:
#   sandboxed_tiers = ["wasm", "process", "container"]
#   verified_tiers = ["wasm", "process", "container"]
[trust]

# Consent for plugins installed from directories, e.g.:
# [plugins.weather]
# consent = ["net.connect:api.weather.gov:443"]
"#;

/// Where Sigil keeps its state.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The data directory: `explicit`, else `$SIGIL_HOME`, else the platform data directory
    /// (`~/.local/share/sigil` on Linux). It is created, with a default `sigil.toml`, if missing.
    ///
    /// # Security
    /// The directory is private to the user (`0700`), as are `plugins/`, `sigil.toml` and
    /// `sigil.db` (`0600`), each created so whatever the umask (see [`crate::files`]). An
    /// existing data directory open to its group or others is narrowed to `0700`, with a
    /// warning; files found wider are left to the operator, and `sigil doctor` names them.
    ///
    /// # Errors
    /// When no directory can be determined or it cannot be created.
    pub fn resolve(explicit: Option<&Path>) -> Result<Home, ConfigError> {
        let root = match explicit {
            Some(path) => path.to_path_buf(),
            None => match std::env::var_os("SIGIL_HOME").filter(|v| !v.is_empty()) {
                Some(path) => PathBuf::from(path),
                None => dirs::data_dir()
                    .map(|d| d.join("sigil"))
                    .ok_or_else(|| ConfigError {
                        path: PathBuf::from("$SIGIL_HOME"),
                        message: "no data directory: set SIGIL_HOME".into(),
                    })?,
            },
        };
        let home = Home { root };
        let io = |path: &Path, e: std::io::Error| ConfigError {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        crate::files::create_private_dir_all(&home.root).map_err(|e| io(&home.root, e))?;
        match crate::files::narrow_dir(&home.root) {
            Ok(None) => {}
            Ok(Some(mode)) => tracing::warn!(
                dir = %home.root.display(),
                "the data directory was open to other users (mode {mode:o}); narrowed it to 700"
            ),
            Err(error) => tracing::warn!(
                dir = %home.root.display(),
                %error,
                "the data directory is open to other users and cannot be narrowed to 700"
            ),
        }
        let plugins = home.plugins_dir();
        crate::files::create_private_dir_all(&plugins).map_err(|e| io(&plugins, e))?;
        let config = home.config_path();
        match crate::files::create_private_file(&config) {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(DEFAULT_CONFIG.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io(&config, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&config, e)),
        }
        // Before SQLite creates it with the umask's mode; its -wal and -shm files take its mode.
        let database = home.database_path();
        crate::files::ensure_private_file(&database).map_err(|e| io(&database, e))?;
        Ok(home)
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `sigil.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("sigil.toml")
    }

    /// The SQLite database holding the audit log and Sigil's other state.
    pub fn database_path(&self) -> PathBuf {
        self.root.join("sigil.db")
    }

    /// Installed plugins, one directory each.
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// State Sigil keeps for itself between runs (never the operator's `sigil.toml`). Created
    /// when first written.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The plugins the operator disabled, so they stay stopped across restarts
    /// (`state/disabled.json`).
    pub fn disabled_path(&self) -> PathBuf {
        self.state_dir().join("disabled.json")
    }

    /// The key that encrypts plugins' secret configuration fields in the database
    /// (`state/secret.key`, 32 random bytes, mode 0600, created when the first one is stored).
    pub fn secret_key_path(&self) -> PathBuf {
        self.state_dir().join("secret.key")
    }

    /// The audit log's keys, outside the database: the chain key (`state/audit.key`) and the
    /// checkpoint signing key (`state/audit-checkpoint.key`), both mode 0600, created with the
    /// log. See `docs/audit.md`.
    pub fn audit_keys(&self) -> sigil_audit::KeyFiles {
        sigil_audit::KeyFiles::in_dir(&self.state_dir())
    }
}

/// `sigil.toml`, validated, with the plugins' secret configuration fields once the runtime
/// has added them from the database.
///
/// Its `Debug` shows names only: values of `[secrets]` and of secret fields never print.
#[derive(Clone)]
pub struct Config {
    raw: RawConfig,
    /// The text it was parsed from, to tell whether a reload changes anything.
    source: String,
    global_deny: CapabilitySet,
    workspaces: BTreeMap<String, Scope>,
    users: BTreeMap<String, Scope>,
    /// The workspaces each user belongs to, in the order `sigil.toml` lists them.
    members: BTreeMap<String, Vec<String>>,
    consent: BTreeMap<String, CapabilitySet>,
    trust: crate::trust::TrustPolicy,
    approval_rules: Vec<ApprovalRule>,
    plugin_secrets: Arc<PluginSecrets>,
    secret_destinations: BTreeMap<String, Arc<[SecretDestination]>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("workspaces", &self.workspaces.keys().collect::<Vec<_>>())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("plugins", &self.raw.plugins.keys().collect::<Vec<_>>())
            .field("secrets", &self.raw.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    workspaces: BTreeMap<String, RawWorkspace>,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
    #[serde(default)]
    plugins: BTreeMap<String, RawPluginConfig>,
    /// More directories to discover plugins in, besides the data directory's `plugins/`.
    #[serde(default)]
    plugin_dirs: Vec<PathBuf>,
    /// Secrets plugins may use by reference (`secret.use:<name>`).
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    audit: RawAudit,
    /// Trusted keys and the tiers each trust level may run in.
    #[serde(default)]
    trust: crate::trust::RawTrust,
    #[serde(default)]
    approvals: RawApprovals,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    /// Which calls need a person's approval; see [`ApprovalRule`].
    #[serde(default)]
    require: Vec<String>,
    /// How long a call waits for a decision before it is denied.
    timeout_ms: Option<u64>,
    /// Whether the user who made a call may approve it (no, unless set).
    #[serde(default)]
    allow_self_approval: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// `disk` (the default) or `process`; see [`sigil_audit::Durability`].
    durability: Option<AuditDurability>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum AuditDurability {
    Disk,
    Process,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    user: Option<String>,
    workspace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    /// The workspaces the user may act in; without it, `[defaults] workspace` alone.
    workspaces: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPluginConfig {
    #[serde(default)]
    consent: Vec<String>,
    /// The plugin's own configuration, handed to it as JSON.
    #[serde(default)]
    config: Option<toml::Table>,
}

/// A `[secrets]` entry: where its value comes from (exactly one of `env`, `file`, `value`) and
/// the destinations it may be sent to ([`crate::secret_binding`]). Values never appear in a
/// plugin's sandbox: they are injected by the host at the boundary (an HTTP header on an
/// allowed request to a bound destination).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    /// An environment variable of the Sigil process.
    env: Option<String>,
    /// A file holding the value (trailing newline removed).
    file: Option<PathBuf>,
    /// The value itself. Prefer `env` or `file`: this one sits in sigil.toml in clear text.
    value: Option<String>,
    /// Where the secret may be sent. Required: a secret bound nowhere could go anywhere a
    /// plugin's network grants reach.
    #[serde(default)]
    destinations: Vec<RawDestination>,
}

impl std::fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSecret")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| SECRET_MARKER))
            .field("destinations", &self.destinations)
            .finish()
    }
}

/// One `destinations` entry of a secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    host: String,
    port: Option<u16>,
    header: Option<String>,
    path: Option<String>,
}

/// A configuration file that could not be read or is invalid.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, and where in the file.
    pub message: String,
}

impl Config {
    /// Reads and validates `sigil.toml`.
    ///
    /// # Errors
    /// When the file cannot be read, is not valid TOML, has unknown fields, or holds a
    /// capability that does not parse (named with its table and position).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors.
    ///
    /// # Errors
    /// As for [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let error = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        // The error's position and message only: its rendering quotes the offending line,
        // which may hold a secret.
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            error(format!(
                "{}{}",
                at.unwrap_or_default(),
                without_values(e.message().trim_end())
            ))
        })?;
        let compile = |table: String, patterns: &[String]| -> Result<CapabilitySet, ConfigError> {
            let parsed = patterns
                .iter()
                .enumerate()
                .map(|(i, p)| Pattern::parse(p).map_err(|e| error(format!("{table}[{i}]: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CapabilitySet::new(parsed))
        };
        let global_deny = compile("policy.deny".into(), &raw.policy.deny)?;
        let mut workspaces = BTreeMap::new();
        for (name, w) in &raw.workspaces {
            let scope = Scope {
                name: name.clone(),
                allow: compile(format!("workspaces.{name}.allow"), &w.allow)?,
                deny: compile(format!("workspaces.{name}.deny"), &w.deny)?,
            };
            workspaces.insert(name.clone(), scope);
        }
        let mut users = BTreeMap::new();
        for (name, u) in &raw.users {
            let scope = Scope {
                name: name.clone(),
                allow: compile(format!("users.{name}.permissions"), &u.permissions)?,
                deny: compile(format!("users.{name}.deny"), &u.deny)?,
            };
            users.insert(name.clone(), scope);
        }
        let mut consent = BTreeMap::new();
        for (id, p) in &raw.plugins {
            consent.insert(
                id.clone(),
                compile(format!("plugins.{id}.consent"), &p.consent)?,
            );
        }
        let approval_rules = raw
            .approvals
            .require
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ApprovalRule::parse(r).map_err(|e| error(format!("approvals.require[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.approvals.timeout_ms == Some(0) {
            return Err(error(
                "approvals.timeout_ms: must be at least 1 (milliseconds a call waits for a decision)"
                    .into(),
            ));
        }
        for (what, name, known) in [
            (
                "user",
                &raw.defaults.user,
                users.contains_key(raw.defaults.user.as_deref().unwrap_or("")),
            ),
            (
                "workspace",
                &raw.defaults.workspace,
                workspaces.contains_key(raw.defaults.workspace.as_deref().unwrap_or("")),
            ),
        ] {
            if let Some(name) = name
                && !known
            {
                return Err(error(format!(
                    "defaults.{what}: {what} `{name}` is not defined; add a [{what}s.{name}] table"
                )));
            }
        }
        let members = memberships(&raw, &workspaces).map_err(error)?;
        let trust = crate::trust::TrustPolicy::from_raw(&raw.trust).map_err(error)?;
        let secret_destinations = raw
            .secrets
            .iter()
            .map(|(name, secret)| Ok((name.clone(), secret_destinations(name, secret)?)))
            .collect::<Result<_, String>>()
            .map_err(error)?;
        Ok(Config {
            raw,
            source: text.to_string(),
            global_deny,
            workspaces,
            users,
            members,
            consent,
            plugin_secrets: Arc::default(),
            approval_rules,
            trust,
            secret_destinations,
        })
    }

    /// The user the local command line acts as, when none is named.
    pub fn default_user(&self) -> Option<&str> {
        self.raw.defaults.user.as_deref()
    }

    /// The workspace calls run in, when none is named.
    pub fn default_workspace(&self) -> Option<&str> {
        self.raw.defaults.workspace.as_deref()
    }

    /// `[policy] deny`.
    pub fn global_deny(&self) -> &CapabilitySet {
        &self.global_deny
    }

    /// Configured workspaces by name.
    pub fn workspaces(&self) -> &BTreeMap<String, Scope> {
        &self.workspaces
    }

    /// Configured users by name.
    pub fn users(&self) -> &BTreeMap<String, Scope> {
        &self.users
    }

    /// The workspaces `user` belongs to, in the order `sigil.toml` lists them: its
    /// `[users.<name>] workspaces`, else `[defaults] workspace` alone. Empty for an unknown user.
    pub fn user_workspaces(&self, user: &str) -> &[String] {
        self.members.get(user).map_or(&[], Vec::as_slice)
    }

    /// Whether `user` belongs to `workspace`: the only workspaces a user's requests, calls and
    /// decisions may run in.
    pub fn is_member(&self, user: &str, workspace: &str) -> bool {
        self.user_workspaces(user).iter().any(|w| w == workspace)
    }

    /// The workspace `user` acts in when none is named: `[defaults] workspace` if the user
    /// belongs to it, else the first of the user's workspaces; `None` when the user belongs to
    /// none.
    pub fn home_workspace(&self, user: &str) -> Option<&str> {
        match self.default_workspace() {
            Some(default) if self.is_member(user, default) => Some(default),
            _ => self.user_workspaces(user).first().map(String::as_str),
        }
    }

    /// The operator's consent for a plugin installed from a directory. Empty when none was given.
    pub fn consent(&self, plugin: &str) -> CapabilitySet {
        self.consent.get(plugin).cloned().unwrap_or_default()
    }

    /// Whether the operator consented to `capability` for `plugin`, without copying its
    /// consent (for checks made on every call).
    pub fn has_consent(&self, plugin: &str, capability: &sigil_policy::Capability) -> bool {
        self.consent
            .get(plugin)
            .is_some_and(|set| set.find(capability).is_some())
    }

    /// A plugin's own configuration as the plugin receives it: `[plugins.<id>.config]` as JSON
    /// (an empty object when none is given) with its stored secret fields merged in.
    ///
    /// # Security
    /// Holds secret values: for the plugin and for schema validation only, never for a listing
    /// or a log. [`Config::plugin_config_redacted`] is the one to show.
    pub fn plugin_config(&self, plugin: &str) -> serde_json::Value {
        let mut config = self.plugin_config_file(plugin);
        for (field, value) in self.plugin_secrets.get(plugin).into_iter().flatten() {
            set_field(
                &mut config,
                field,
                serde_json::Value::String(value.expose().to_string()),
            );
        }
        config
    }

    /// A plugin's configuration for showing: as [`Config::plugin_config`], with every stored
    /// secret field's value replaced by [`SECRET_MARKER`].
    pub fn plugin_config_redacted(&self, plugin: &str) -> serde_json::Value {
        let mut config = self.plugin_config_file(plugin);
        for field in self
            .plugin_secrets
            .get(plugin)
            .into_iter()
            .flatten()
            .map(|(f, _)| f)
        {
            set_field(
                &mut config,
                field,
                serde_json::Value::String(SECRET_MARKER.to_string()),
            );
        }
        config
    }

    /// `[plugins.<id>.config]` alone, as written in sigil.toml.
    pub(crate) fn plugin_config_file(&self, plugin: &str) -> serde_json::Value {
        self.raw
            .plugins
            .get(plugin)
            .and_then(|p| p.config.as_ref())
            .and_then(|table| serde_json::to_value(table).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
    }

    /// The secret fields stored for `plugin`.
    pub(crate) fn stored_secret_fields(&self, plugin: &str) -> BTreeSet<String> {
        self.plugin_secrets
            .get(plugin)
            .map(|fields| fields.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every plugin with a configuration or a stored secret field.
    pub(crate) fn configured_plugins(&self) -> BTreeSet<String> {
        self.raw
            .plugins
            .keys()
            .chain(self.plugin_secrets.keys())
            .cloned()
            .collect()
    }

    /// Whether `other` was parsed from the same text.
    pub(crate) fn same_source(&self, other: &Config) -> bool {
        self.source == other.source
    }

    /// This configuration with the plugins' secret fields, as stored.
    pub(crate) fn with_plugin_secrets(mut self, secrets: PluginSecrets) -> Config {
        self.plugin_secrets = Arc::new(secrets);
        self
    }

    /// Reads the value of secret `name`, with the destinations it is bound to.
    ///
    /// # Errors
    /// When no such secret is configured or its source cannot be read. The error never
    /// contains the value.
    pub fn secret(&self, name: &str) -> Result<BoundSecret, String> {
        let (Some(source), Some(destinations)) = (
            self.raw.secrets.get(name),
            self.secret_destinations.get(name),
        ) else {
            return Err(format!(
                "no secret `{name}` is configured in sigil.toml [secrets]"
            ));
        };
        let value = match (&source.env, &source.file, &source.value) {
            (Some(var), None, None) => std::env::var(var)
                .map_err(|_| format!("secret `{name}`: environment variable `{var}` is not set"))?,
            (None, Some(path), None) => std::fs::read_to_string(path)
                .map(|v| v.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| format!("secret `{name}`: {}: {e}", path.display()))?,
            (None, None, Some(value)) => value.clone(),
            // Refused when the configuration was parsed.
            _ => {
                return Err(format!(
                    "secret `{name}`: give exactly one of env, file, value"
                ));
            }
        };
        Ok(BoundSecret::new(
            name,
            SecretValue(value),
            destinations.clone(),
        ))
    }

    /// `[trust]`: the trusted keys and the tiers each trust level may run in.
    pub fn trust(&self) -> &crate::trust::TrustPolicy {
        &self.trust
    }

    /// Extra plugin directories to discover.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.raw.plugin_dirs
    }

    /// How durable an audit record is when a call goes on (`[audit] durability`):
    /// on the disk unless the operator chose `process`.
    pub fn audit_durability(&self) -> sigil_audit::Durability {
        match self.raw.audit.durability {
            None | Some(AuditDurability::Disk) => sigil_audit::Durability::Disk,
            Some(AuditDurability::Process) => sigil_audit::Durability::Process,
        }
    }
}

impl Config {
    /// `[approvals] require`: which calls wait for a person's approval. Empty by default.
    pub fn approval_rules(&self) -> &[ApprovalRule] {
        &self.approval_rules
    }

    /// `[approvals] timeout_ms`: how long a call waits for a decision before it is denied
    /// (five minutes unless set).
    pub fn approval_timeout(&self) -> std::time::Duration {
        self.raw
            .approvals
            .timeout_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(DEFAULT_APPROVAL_TIMEOUT)
    }

    /// `[approvals] allow_self_approval`: whether the user who made a call may approve it.
    pub fn allow_self_approval(&self) -> bool {
        self.raw.approvals.allow_self_approval
    }
}

/// Each user's workspaces: those its `workspaces` field lists (each one defined), else
/// `[defaults] workspace` alone, else none.
fn memberships(
    raw: &RawConfig,
    workspaces: &BTreeMap<String, Scope>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut members = BTreeMap::new();
    for (user, raw_user) in &raw.users {
        let listed = match &raw_user.workspaces {
            Some(listed) => listed.clone(),
            None => raw.defaults.workspace.iter().cloned().collect(),
        };
        let mut belongs: Vec<String> = Vec::with_capacity(listed.len());
        for (i, name) in listed.into_iter().enumerate() {
            if !workspaces.contains_key(&name) {
                return Err(format!(
                    "users.{user}.workspaces[{i}]: workspace `{name}` is not defined; add a [workspaces.{name}] table or remove it from the list"
                ));
            }
            if !belongs.contains(&name) {
                belongs.push(name);
            }
        }
        members.insert(user.clone(), belongs);
    }
    Ok(members)
}

/// A parse error's message with the values it quotes removed: serde names the offending value
/// (``unknown variant `ghp_…` ``, ``invalid type: string "…"``), and the value may be a secret
/// written in the wrong place. Field names (unknown, missing or duplicate fields) are keys, not
/// values, and stay, as does what was expected.
fn without_values(message: &str) -> String {
    let keeps_names = ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| message.starts_with(p));
    if keeps_names {
        return message.to_string();
    }
    let (found, expected) = match message.find(", expected") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in found.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push_str("(value not shown)");
            }
            Some(_) => {}
            None if matches!(c, '`' | '"' | '\'') => quote = Some(c),
            None => out.push(c),
        }
    }
    if quote.is_some() {
        out.push_str("(value not shown)");
    }
    out.push_str(expected);
    out
}

/// A secret's value, for host code that injects it at a boundary. It prints as `<secret>`,
/// so it cannot leak through logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value so it prints as `<secret>`.
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }

    /// The value itself. Only the host's injection points call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Sets `field` (a dotted path for nested properties) in `config`, creating the objects on the
/// way; a non-object in the way is replaced.
pub(crate) fn set_field(config: &mut serde_json::Value, field: &str, value: serde_json::Value) {
    let mut at = config;
    let mut parts = field.split('.').peekable();
    while let Some(part) = parts.next() {
        if !at.is_object() {
            *at = serde_json::Value::Object(Default::default());
        }
        let Some(object) = at.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            object.insert(part.to_string(), value);
            return;
        }
        at = object
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
}

/// The value at `field` (a dotted path) in `config`.
pub(crate) fn get_field<'a>(
    config: &'a serde_json::Value,
    field: &str,
) -> Option<&'a serde_json::Value> {
    field
        .split('.')
        .try_fold(config, |at, part| at.as_object()?.get(part))
}

/// Removes `field` (a dotted path) from `config`, returning its value.
pub(crate) fn take_field(config: &mut serde_json::Value, field: &str) -> Option<serde_json::Value> {
    let (parent, last) = match field.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, field),
    };
    let holder = match parent {
        Some(parent) => parent
            .split('.')
            .try_fold(&mut *config, |at, part| at.as_object_mut()?.get_mut(part))?,
        None => config,
    };
    holder.as_object_mut()?.remove(last)
}

/// Validates a `[secrets]` entry: one source, and at least one destination.
fn secret_destinations(name: &str, secret: &RawSecret) -> Result<Arc<[SecretDestination]>, String> {
    let sources = [
        secret.env.is_some(),
        secret.file.is_some(),
        secret.value.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(format!(
            "secrets.{name}: give exactly one of `env`, `file` or `value`"
        ));
    }
    if secret.destinations.is_empty() {
        return Err(format!(
            "secrets.{name}: no `destinations`: a secret is injected only into requests to the \
             destinations bound to it, e.g. destinations = [{{ host = \"api.example.com\", \
             header = \"authorization\" }}]"
        ));
    }
    secret
        .destinations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            SecretDestination::parse(
                &d.host,
                d.port,
                d.header.as_deref(),
                d.path.as_deref(),
                &format!("secrets.{name}.destinations[{i}]"),
            )
        })
        .collect()
}

#[cfg(test)]
mod value_tests {
    use super::without_values;

    #[test]
    fn a_secret_must_name_one_source_and_the_destinations_it_may_be_sent_to() {
        let cases = [
            (
                "[secrets.t]\nvalue = \"v\"\n",
                "secrets.t: no `destinations`",
            ),
            (
                "[secrets.t]\nvalue = \"v\"\nenv = \"E\"\ndestinations = [{ host = \"a.example\" }]\n",
                "secrets.t: give exactly one of",
            ),
            (
                "[secrets.t]\nvalue = \"v\"\ndestinations = [{ host = \"a.example\", path = \"x\" }]\n",
                "secrets.t.destinations[0].path",
            ),
        ];
        for (text, expected) in cases {
            let error = super::Config::parse(text, std::path::Path::new("sigil.toml"))
                .err()
                .map(|e| e.message)
                .unwrap_or_default();
            assert!(error.starts_with(expected), "{text}: {error}");
        }
        let config = super::Config::parse(
            "[secrets.t]\nvalue = \"v\"\ndestinations = [{ host = \"a.example\" }]\n",
            std::path::Path::new("sigil.toml"),
        );
        assert!(config.is_ok_and(|c| c.secret("t").is_ok_and(|s| s.destinations().len() == 1)));
    }

    #[test]
    fn parse_errors_never_quote_a_value() {
        let cases = [
            (
                "unknown variant `ghp_abc`, expected one of `env`, `file`, `value`",
                "unknown variant (value not shown), expected one of `env`, `file`, `value`",
            ),
            (
                "invalid type: string \"hunter2\", expected a sequence",
                "invalid type: string (value not shown), expected a sequence",
            ),
            (
                "invalid type: integer `1234`, expected a string",
                "invalid type: integer (value not shown), expected a string",
            ),
            (
                "unknown field `colour`, expected one of `color`",
                "unknown field `colour`, expected one of `color`",
            ),
            (
                "invalid string\nexpected `\"`",
                "invalid string\nexpected (value not shown)",
            ),
        ];
        for (message, shown) in cases {
            assert_eq!(without_values(message), shown, "{message}");
        }
        let parsed = super::Config::parse(
            "[secrets]\ngithub = \"ghp_abc123\"\n",
            std::path::Path::new("sigil.toml"),
        );
        assert!(parsed.is_err(), "a secret in the wrong place parsed");
        let message = parsed.err().map(|e| e.message).unwrap_or_default();
        assert!(!message.contains("ghp_abc123"), "{message}");
        assert!(message.starts_with("line 2"), "{message}");
    }
}
