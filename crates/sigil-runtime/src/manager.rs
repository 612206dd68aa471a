//! The plugin manager: discovers plugins, validates them, registers their authority with the
//! enforcer, and keeps their lifecycle.
//!
//! A plugin that fails (a broken manifest, an unknown tier, an incompatible engine range, a
//! missing dependency) is recorded with its diagnostics and never stops the others loading.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sigil_manifest::{Kind, Tier, ValidatedManifest};
use sigil_policy::{CapabilitySet, PluginAuthority};

use crate::config::Config;
use crate::enforcer::{Enforcer, Refusal, Registration};
use crate::lifecycle::{Lifecycle, State};
use crate::tool::{HeldTool, ToolDescriptor, ToolPlugin};
use crate::trust::{SignedFiles, Trust};

mod control;
mod registry;
use registry::Registry;

/// A plugin compiled into the binary: its manifest text and its implementation.
#[derive(Debug, Clone)]
pub struct Builtin {
    /// The manifest, in TOML (usually `include_str!("plugin.toml")`).
    pub manifest: &'static str,
    /// The implementation.
    pub plugin: Arc<dyn ToolPlugin>,
}

/// Loads plugins of one tier. The runtime knows tiers only through this trait: it never links
/// a tier's implementation (wasmtime, a sandbox) itself.
pub trait TierLoader: Send + Sync + std::fmt::Debug {
    /// Prepares the plugin for calls: compiles or starts it, and checks that what it needs
    /// from the host fits what it was granted.
    ///
    /// # Errors
    /// Why the plugin cannot run, in a sentence for the operator.
    fn load(&self, request: &LoadRequest<'_>) -> Result<Arc<dyn ToolPlugin>, String>;
}

/// What a tier is told about a plugin it loads.
#[derive(Debug)]
pub struct LoadRequest<'a> {
    /// The validated manifest.
    pub manifest: &'a ValidatedManifest,
    /// The plugin's directory, where `execution.entry` is resolved.
    pub dir: &'a Path,
    /// The capabilities the manifest requests.
    pub grants: &'a CapabilitySet,
    /// The capabilities the operator consented to.
    pub consent: &'a CapabilitySet,
    /// The enforcer, for host actions the plugin takes outside any call (a tier that can see
    /// such actions still has to decide and record them).
    pub enforcer: &'a Arc<Enforcer>,
    /// For a verified plugin, the files its signature covers: the tier checks against them
    /// what it runs, at load and at every restart, since the directory may change after the
    /// runtime looked. `None` for a plugin that is not verified.
    pub signed: Option<&'a SignedFiles>,
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "path")]
pub enum Source {
    /// Compiled into this binary. Trusted by construction.
    Builtin,
    /// A plugin directory on disk.
    Directory(PathBuf),
}

/// A tool with its schemas compiled.
#[derive(Debug)]
pub(crate) struct ToolEntry {
    pub(crate) descriptor: ToolDescriptor,
    pub(crate) input: jsonschema::Validator,
    pub(crate) output: Option<jsonschema::Validator>,
}

/// One plugin the manager knows.
#[derive(Debug)]
pub struct PluginEntry {
    manifest: ValidatedManifest,
    source: Source,
    trust: Trust,
    lifecycle: Lifecycle,
    pub(crate) tools: Vec<ToolEntry>,
    pub(crate) plugin: Option<Arc<dyn ToolPlugin>>,
    /// Calls of this generation in flight, so that a replaced generation drains them.
    pub(crate) in_flight: Arc<InFlight>,
    /// What a verified plugin's tier checks it runs against; broken once a check failed.
    signed: Option<SignedFiles>,
    /// Whether its tier hands it a way to act without a host call (see [`acts_directly`]).
    acts_directly: bool,
}

/// Counts the calls of one plugin generation in flight.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: std::sync::Mutex<usize>,
    idle: std::sync::Condvar,
}

/// One call in flight; counted until dropped.
#[derive(Debug)]
pub(crate) struct CallGuard(Arc<InFlight>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut count = self
            .0
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl InFlight {
    /// Waits until no call is in flight, at most `limit`. Returns how many are still in flight.
    pub(crate) fn wait_idle(&self, limit: std::time::Duration) -> usize {
        let count = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (count, _) = self
            .idle
            .wait_timeout_while(count, limit, |count| *count > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count
    }
}

impl PluginEntry {
    /// The validated manifest.
    pub fn manifest(&self) -> &ValidatedManifest {
        &self.manifest
    }

    /// Where it came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Its trust level, from how it arrived (never from its manifest). A verified plugin whose
    /// tier found its signed files changed (at a restart, say) is verified no longer.
    pub fn trust(&self) -> &Trust {
        static BROKEN: Trust = Trust::Sandboxed;
        match self.broken_trust() {
            Some(_) => &BROKEN,
            None => &self.trust,
        }
    }

    /// Why a verified plugin is no longer verified, once its tier found its files changed.
    pub fn broken_trust(&self) -> Option<String> {
        self.signed.as_ref().and_then(SignedFiles::broken)
    }

    /// The blast radius of `tool` that approvals go by: the manifest's `[actions.<tool>]`,
    /// unless the plugin is `sandboxed`. A sandboxed plugin's manifest is a claim nobody
    /// vouches for, so none is taken: its tools count at their widest (see
    /// [`crate::ApprovalRule`]), and an unsigned plugin cannot call a destructive tool harmless
    /// to skip an approval.
    pub fn claimed_blast_radius(&self, tool: &str) -> Option<&sigil_manifest::BlastRadius> {
        match self.trust() {
            Trust::Sandboxed => None,
            _ => self.manifest.actions().get(tool),
        }
    }

    /// Its lifecycle.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Its tools' descriptors.
    pub fn tools(&self) -> impl Iterator<Item = &ToolDescriptor> {
        self.tools.iter().map(|t| &t.descriptor)
    }

    /// Counts a call of this generation as in flight until the guard drops.
    /// Whether the plugin can change something outside itself without asking the host: a
    /// directory plugin granted more than reading files (its tier mounts the directories it
    /// may write). The records of its calls are committed before it runs.
    pub(crate) fn acts_directly(&self) -> bool {
        self.acts_directly
    }

    pub(crate) fn begin_call(&self) -> CallGuard {
        *self
            .in_flight
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        CallGuard(self.in_flight.clone())
    }

    /// A summary for listings.
    pub fn summary(&self) -> PluginSummary {
        // A running plugin its tier reports unavailable (quarantined), or whose signed files
        // changed, is listed as failed.
        let unavailable = self
            .broken_trust()
            .or_else(|| self.plugin.as_ref().and_then(|p| p.unavailable()));
        let (state, error) = match unavailable {
            Some(reason) if self.lifecycle.state() == State::Running => {
                (State::Error, Some(reason))
            }
            _ => (self.lifecycle.state(), self.lifecycle.error()),
        };
        PluginSummary {
            id: self.manifest.id().to_string(),
            name: self.manifest.name().to_string(),
            version: self.manifest.version().to_string(),
            tier: self.manifest.execution().tier.to_string(),
            kinds: self
                .manifest
                .kinds()
                .iter()
                .map(ToString::to_string)
                .collect(),
            state,
            error,
            source: self.source.clone(),
            trust: self.trust().clone(),
            tools: self.tools().map(|t| t.name.clone()).collect(),
            held: self.held(),
        }
    }

    /// Its tools held for an operator's approval (see [`ToolPlugin::held`]).
    pub fn held(&self) -> Vec<HeldTool> {
        self.plugin.as_ref().map(|p| p.held()).unwrap_or_default()
    }
}

/// One line of `sigil plugin list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    /// The plugin id.
    pub id: String,
    /// Its human name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its tier.
    pub tier: String,
    /// The kinds it provides.
    pub kinds: Vec<String>,
    /// Its lifecycle state.
    pub state: State,
    /// Why it is in the error state.
    pub error: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// Its trust level: `trusted` (compiled in), `verified` (signed by a trusted key, with the
    /// key) or `sandboxed`.
    pub trust: Trust,
    /// Its tools' names.
    pub tools: Vec<String>,
    /// Its tools held for an operator's approval; calls to them are refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldTool>,
}

/// A plugin directory whose manifest could not be validated.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The plugin directory.
    pub dir: PathBuf,
    /// Every problem found, each with file, line and column.
    pub diagnostics: Vec<String>,
}

/// Holds every plugin and its state.
#[derive(Debug)]
pub struct Manager {
    enforcer: Arc<Enforcer>,
    tiers: Vec<(Tier, Arc<dyn TierLoader>)>,
    /// Whether plugins from directories are handed to their tier (started); `false` for a
    /// manager that only reads manifests ([`Manager::inactive`]).
    activate: bool,
    engine: semver::Version,
    plugins: RwLock<Registry>,
    failures: RwLock<Vec<Failure>>,
}

impl Manager {
    /// An empty manager registering authority with `enforcer`.
    pub fn new(enforcer: Arc<Enforcer>, tiers: Vec<(Tier, Arc<dyn TierLoader>)>) -> Manager {
        Manager {
            enforcer,
            tiers,
            activate: true,
            engine: semver::Version::parse(env!("CARGO_PKG_VERSION"))
                .unwrap_or(semver::Version::new(0, 0, 0)),
            plugins: RwLock::new(Registry::default()),
            failures: RwLock::new(Vec::new()),
        }
    }

    /// A manager that reads plugin directories and registers each plugin's authority with
    /// `enforcer`, but hands none to a tier: nothing is started, sandboxed or connected to.
    /// Its plugins from directories stay [`State::Discovered`] and provide no tools;
    /// compiled-in plugins, which start nothing, load as usual. For commands that only read
    /// (the audit log, a policy explanation).
    pub fn inactive(enforcer: Arc<Enforcer>) -> Manager {
        Manager {
            activate: false,
            ..Manager::new(enforcer, Vec::new())
        }
    }

    /// Adds a compiled-in plugin. Its consent is its grants: the operator chose it by building it in.
    pub fn add_builtin(&self, builtin: Builtin) {
        let manifest = match sigil_manifest::parse_str(
            builtin.manifest,
            sigil_manifest::Format::Toml,
            "builtin plugin.toml",
        ) {
            Ok(manifest) => manifest,
            Err(errors) => {
                self.record_failure(
                    PathBuf::from("<builtin>"),
                    errors.diagnostics.iter().map(ToString::to_string).collect(),
                );
                return;
            }
        };
        let consent = grants(&manifest);
        self.load(
            manifest,
            Source::Builtin,
            (Trust::Trusted, None),
            Some(builtin.plugin),
            consent,
        );
    }

    /// Discovers every plugin directory directly under `dir` (each holding `plugin.toml` or
    /// `plugin.yaml`). A missing `dir` holds no plugins.
    pub fn discover(&self, dir: &Path, config: &Config) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for plugin_dir in dirs {
            self.discover_one(&plugin_dir, config);
        }
    }

    /// Validates and loads the plugin in one directory. Its trust level comes from its
    /// signature (see [`crate::TrustPolicy`]); a broken signature, files changed after
    /// signing, or a tier its trust level may not use stop it loading.
    pub fn discover_one(&self, dir: &Path, config: &Config) {
        let assessed = crate::trust::assess(dir, config.trust());
        let manifest = match sigil_manifest::load_dir(dir) {
            Ok(manifest) => manifest,
            Err(errors) => {
                let mut diagnostics: Vec<String> =
                    errors.diagnostics.iter().map(ToString::to_string).collect();
                if let Err(problem) = &assessed {
                    diagnostics.insert(0, problem.clone());
                }
                self.record_failure(dir.to_path_buf(), diagnostics);
                return;
            }
        };
        let consent = config.consent(manifest.id().as_str());
        let (trust, signed, trusted) = match assessed {
            Ok(assessed) => {
                let checked = assessed.check(dir, &manifest, config.trust());
                let signed = assessed.signed_files(dir, &manifest, &self.enforcer);
                (assessed.trust, signed, checked)
            }
            Err(problem) if !self.activate => (Trust::Sandboxed, None, Err(problem)),
            Err(problem) => {
                // A signature that does not hold is an attack, not an absence: on the record,
                // once per attempt to load it (a manager that starts nothing attempts none).
                self.enforcer.refuse_blocking(&Refusal {
                    plugin: manifest.id().as_str(),
                    version: Some(&manifest.version().to_string()),
                    capability: None,
                    actor: &sigil_audit::Actor::default(),
                    call_id: None,
                    reason: &format!("not loaded: {problem}"),
                });
                (Trust::Sandboxed, None, Err(problem))
            }
        };
        if let Err(problem) = trusted.and_then(|()| check_config(&manifest, config)) {
            // Loaded no further: a plugin never starts with a broken signature, in a tier its
            // trust level may not use, or on a configuration it does not accept.
            let entry = PluginEntry {
                manifest,
                source: Source::Directory(dir.to_path_buf()),
                trust,
                lifecycle: Lifecycle::new(),
                tools: Vec::new(),
                plugin: None,
                in_flight: Arc::default(),
                signed: None,
                acts_directly: true,
            };
            let _ = entry.lifecycle.transition(State::Validating);
            let _ = entry.lifecycle.fail(problem.clone());
            tracing::warn!(plugin = %entry.manifest.id(), %problem, "plugin failed to load");
            if let Ok(mut plugins) = self.plugins.write() {
                plugins.insert(Arc::new(entry));
            }
            return;
        }
        self.load(
            manifest,
            Source::Directory(dir.to_path_buf()),
            (trust, signed),
            None,
            consent,
        );
    }

    /// Fails every compiled-in plugin whose configuration in `config` does not fit its config
    /// schema (directory plugins are checked as they are discovered).
    pub(crate) fn check_builtin_configs(&self, config: &Config) {
        for entry in self.entries() {
            if entry.source != Source::Builtin || entry.lifecycle.state() != State::Running {
                continue;
            }
            if let Err(problem) = check_config(&entry.manifest, config) {
                self.fail(&entry, problem);
            }
        }
    }

    /// Fails every plugin whose dependencies are missing or of the wrong version.
    /// Call after all plugins are discovered.
    pub fn check_dependencies(&self) {
        let plugins = self
            .plugins
            .read()
            .map(|p| p.by_id().clone())
            .unwrap_or_default();
        for entry in plugins.values() {
            for (dependency, range) in entry.manifest.dependencies() {
                let problem = match plugins.get(dependency.as_str()) {
                    None => Some(format!(
                        "depends on `{dependency}` {range}, which is not installed"
                    )),
                    Some(dep) if !range.matches(dep.manifest.version()) => Some(format!(
                        "depends on `{dependency}` {range}, but version {} is installed",
                        dep.manifest.version()
                    )),
                    Some(dep) if self.activate && dep.lifecycle.state() != State::Running => {
                        Some(format!("depends on `{dependency}`, which is not running"))
                    }
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    self.fail(entry, problem);
                }
            }
        }
    }

    /// Every plugin, by id.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.entries().iter().map(|e| e.summary()).collect()
    }

    /// Every plugin entry, by id.
    pub fn entries(&self) -> Vec<Arc<PluginEntry>> {
        self.plugins
            .read()
            .map(|p| p.by_id().values().cloned().collect())
            .unwrap_or_default()
    }

    /// Plugin directories that failed validation.
    pub fn failures(&self) -> Vec<Failure> {
        self.failures.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// The `hook` plugins whose manifest subscribes to `event`, by id, in any state; no
    /// allocation when there are none.
    pub(crate) fn subscribed(&self, event: sigil_manifest::HookEvent) -> Vec<Arc<PluginEntry>> {
        self.plugins
            .read()
            .map(|p| p.subscribed(event).to_vec())
            .unwrap_or_default()
    }

    /// One plugin by id.
    pub fn get(&self, id: &str) -> Option<Arc<PluginEntry>> {
        self.plugins.read().ok()?.get(id).cloned()
    }

    fn load(
        &self,
        manifest: ValidatedManifest,
        source: Source,
        (trust, signed): (Trust, Option<SignedFiles>),
        plugin: Option<Arc<dyn ToolPlugin>>,
        consent: CapabilitySet,
    ) {
        let id = manifest.id().to_string();
        let acts_directly = acts_directly(&manifest, &source);
        let entry = PluginEntry {
            acts_directly,
            manifest,
            source,
            trust,
            lifecycle: Lifecycle::new(),
            tools: Vec::new(),
            plugin: None,
            in_flight: Arc::default(),
            signed,
        };
        // Discovered → validating: the manifest has already passed validation to get here.
        let advance = |entry: &PluginEntry, to| {
            // Every caller moves forward along the machine from a state it just set.
            let _ = entry.lifecycle.transition(to);
        };
        advance(&entry, State::Validating);

        if let Some(existing) = self.get(&id) {
            let problem = format!(
                "plugin id `{id}` is already provided by {}",
                describe(existing.source())
            );
            let _ = entry.lifecycle.fail(problem.clone());
            match &entry.source {
                Source::Directory(dir) => self.record_failure(dir.clone(), vec![problem]),
                Source::Builtin => self.record_failure(PathBuf::from("<builtin>"), vec![problem]),
            }
            return;
        }
        let mut entry = entry;
        if !self.activate && matches!(entry.source, Source::Directory(_)) {
            // Known, with its authority, but not started: back to discovered.
            entry.lifecycle = Lifecycle::new();
            self.register(&entry, consent);
            if let Ok(mut plugins) = self.plugins.write() {
                plugins.insert(Arc::new(entry));
            }
            return;
        }
        let result = self.prepare(&mut entry, plugin, &consent);
        match result {
            Ok(()) => {
                self.register(&entry, consent);
                advance(&entry, State::Running);
                tracing::info!(plugin = %id, tier = %entry.manifest.execution().tier, "plugin running");
            }
            Err(problem) => {
                tracing::warn!(plugin = %id, %problem, "plugin failed to load");
                let _ = entry.lifecycle.fail(problem);
            }
        }
        if let Ok(mut plugins) = self.plugins.write() {
            plugins.insert(Arc::new(entry));
        }
    }

    /// Registers the plugin's authority with the enforcer.
    fn register(&self, entry: &PluginEntry, consent: CapabilitySet) {
        self.enforcer.register(Registration {
            version: entry.manifest.version().to_string(),
            authority: PluginAuthority {
                id: entry.manifest.id().to_string(),
                grants: grants(&entry.manifest),
                consent,
                denies: entry
                    .manifest
                    .denied()
                    .iter()
                    .map(|c| c.pattern.clone())
                    .collect(),
            },
        });
    }

    /// Validating → loading: checks the engine range, then asks the tier for the plugin and
    /// compiles its tools' schemas.
    fn prepare(
        &self,
        entry: &mut PluginEntry,
        plugin: Option<Arc<dyn ToolPlugin>>,
        consent: &CapabilitySet,
    ) -> Result<(), String> {
        let manifest = &entry.manifest;
        if !manifest.engine().matches(&self.engine) {
            return Err(format!(
                "requires sigil {}, but this is sigil {}",
                manifest.engine(),
                self.engine
            ));
        }
        let _ = entry.lifecycle.transition(State::Loading);
        let tier = manifest.execution().tier;
        let plugin = match (tier, &entry.source, plugin) {
            (Tier::Builtin, Source::Builtin, Some(plugin)) => plugin,
            (Tier::Builtin, _, _) => {
                return Err("tier `builtin` is only for plugins compiled into sigil".into());
            }
            (tier, Source::Directory(dir), _) => {
                let Some((_, loader)) = self.tiers.iter().find(|(t, _)| *t == tier) else {
                    return Err(format!(
                        "the `{tier}` tier is not available in this build of sigil"
                    ));
                };
                let grants = grants(manifest);
                loader.load(&LoadRequest {
                    manifest,
                    dir,
                    grants: &grants,
                    consent,
                    enforcer: &self.enforcer,
                    signed: entry.signed.as_ref(),
                })?
            }
            (tier, Source::Builtin, _) => {
                return Err(format!(
                    "a compiled-in plugin must use tier `builtin`, not `{tier}`"
                ));
            }
        };
        if !manifest.hooks().is_empty() && !manifest.kinds().contains(&Kind::Hook) {
            return Err(
                "subscribes to hook events (`[[hooks]]`) but its manifest's `kinds` does not list `hook`"
                    .into(),
            );
        }
        if !manifest.hooks().is_empty() && !plugin.handles_hooks() {
            return Err(format!(
                "subscribes to hook events (`[[hooks]]`), but the `{tier}` tier does not deliver them to this plugin"
            ));
        }
        let declares_tools = manifest.kinds().contains(&Kind::Tool);
        let descriptors = plugin.tools();
        if !declares_tools && !descriptors.is_empty() {
            return Err("provides tools but its manifest's `kinds` does not list `tool`".into());
        }
        let tools = compile_tools(descriptors)?;
        entry.tools = tools;
        entry.plugin = Some(plugin);
        Ok(())
    }

    fn fail(&self, entry: &PluginEntry, problem: String) {
        tracing::warn!(plugin = %entry.manifest.id(), %problem, "plugin failed");
        if entry.lifecycle.fail(problem).is_ok() {
            self.enforcer.unregister(entry.manifest.id().as_str());
        }
    }

    fn record_failure(&self, dir: PathBuf, diagnostics: Vec<String>) {
        tracing::warn!(dir = %dir.display(), problems = diagnostics.len(), "plugin not loaded");
        if let Ok(mut failures) = self.failures.write() {
            failures.push(Failure { dir, diagnostics });
        }
    }
}

/// Checks the tools a plugin describes and compiles their schemas: names of lowercase letters,
/// digits, `_` and `-`, each named once, input and output schemas that compile. The
/// descriptors come from the plugin, so nothing in them is trusted.
pub(crate) fn compile_tools(descriptors: Vec<ToolDescriptor>) -> Result<Vec<ToolEntry>, String> {
    let mut tools: Vec<ToolEntry> = Vec::with_capacity(descriptors.len());
    for descriptor in descriptors {
        let name = &descriptor.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(format!(
                "tool name `{name}` must be lowercase letters, digits, `_` or `-`"
            ));
        }
        if tools.iter().any(|t| t.descriptor.name == *name) {
            return Err(format!("tool `{name}` is described twice"));
        }
        let input = jsonschema::validator_for(&descriptor.input_schema)
            .map_err(|e| format!("tool `{name}`: input schema is not a valid JSON Schema: {e}"))?;
        let output = match &descriptor.output_schema {
            Some(schema) => Some(jsonschema::validator_for(schema).map_err(|e| {
                format!("tool `{name}`: output schema is not a valid JSON Schema: {e}")
            })?),
            None => None,
        };
        tools.push(ToolEntry {
            descriptor,
            input,
            output,
        });
    }
    Ok(tools)
}

fn grants(manifest: &ValidatedManifest) -> CapabilitySet {
    manifest
        .requested()
        .iter()
        .map(|c| c.pattern.clone())
        .collect()
}

/// Whether a plugin from `source` with `manifest` may act without a host call: a directory
/// plugin requesting any file system capability but reading (a pattern whose namespace is `fs`
/// or a glob that could be, and whose action is not exactly `fs.read`). Compiled-in plugins act
/// through [`crate::Call`] only.
fn acts_directly(manifest: &ValidatedManifest, source: &Source) -> bool {
    if *source == Source::Builtin {
        return false;
    }
    manifest.requested().iter().any(|requested| {
        let action = requested.pattern.as_str().split(':').next().unwrap_or("");
        let namespace = action.split('.').next().unwrap_or("");
        (namespace == "fs" || namespace.contains('*')) && action != "fs.read"
    })
}

fn describe(source: &Source) -> String {
    match source {
        Source::Builtin => "a compiled-in plugin".into(),
        Source::Directory(dir) => format!("{}", dir.display()),
    }
}

/// Checks a plugin's configuration from `sigil.toml` against its manifest's `config.schema`.
/// The error names where each problem is and which schema rule it breaks, never the value,
/// which may be a secret.
pub(crate) fn check_config(manifest: &ValidatedManifest, config: &Config) -> Result<(), String> {
    let id = manifest.id().as_str();
    let written = config.plugin_config_file(id);
    let clear: Vec<String> = manifest
        .secret_fields()
        .iter()
        .filter(|field| crate::config::get_field(&written, field).is_some())
        .map(|field| format!("`{field}`"))
        .collect();
    if !clear.is_empty() {
        return Err(format!(
            "its configuration `[plugins.{id}.config]` in sigil.toml holds the secret field {} in clear text: remove it there and store it encrypted with `sigil plugin secret {id} FIELD` (which reads the value from standard input)",
            clear.join(", ")
        ));
    }
    check_config_value(manifest, &config.plugin_config(id))
}

/// Checks `value` (the configuration as the plugin would receive it, secret fields included)
/// against the manifest's config schema. Errors name places and rules, never values.
pub(crate) fn check_config_value(
    manifest: &ValidatedManifest,
    value: &serde_json::Value,
) -> Result<(), String> {
    let Some(schema) = manifest.config_schema() else {
        return Ok(());
    };
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("its config schema does not compile: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(value)
        .map(|error| {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at `{at}`: breaks the schema's `{}`", error.schema_path())
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "its configuration `[plugins.{}.config]` in sigil.toml does not match its config schema: {}",
        manifest.id(),
        problems.join("; ")
    ))
}
