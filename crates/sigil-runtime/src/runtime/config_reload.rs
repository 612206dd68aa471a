//! The configuration in force, changed while the runtime runs: `sigil.toml` read again
//! ([`Runtime::reload_config`], run by `sigil serve` when the file changes), one plugin's
//! configuration replaced ([`Runtime::update_plugin_config`]) or one secret field stored
//! ([`Runtime::set_plugin_secret`]).
//!
//! A change is validated whole before anything takes effect: the file must parse, and every
//! plugin whose configuration changed must accept its new configuration (secret fields
//! included) under its config schema. A rejected change leaves the configuration in force
//! untouched, is published as [`Event::ConfigRejected`] and recorded. An accepted one is recorded
//! first (a change the audit log does not hold never happens), then swapped in at once: the
//! next call of every plugin sees it, workspaces, users and global denies included. A plugin's
//! consent is compiled into its registration when it loads, so a consent change takes effect
//! at the plugin's next reload.
//!
//! Errors, events and audit records name files, plugins, places and schema rules, never values.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Instant;

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use serde_json::Value;
use sigil_audit::{Actor, NewRecord, Verdict};
use sigil_store::ConfigFileError;

use super::{HOT_RELOAD_QUIET, Runtime};
use crate::config::{Config, ConfigError, SECRET_MARKER, SecretValue, set_field, take_field};
use crate::events::Event;
use crate::manager::{check_config, check_config_value};
use crate::secrets::{PluginSecrets, SecretStore};

/// The capability named in the audit records of configuration changes.
pub const ADMIN_CONFIG: &str = "admin.config";

/// The configuration in force, swapped whole; changes are made one at a time.
#[derive(Debug)]
pub(crate) struct LiveConfig {
    current: RwLock<Arc<Config>>,
    /// Held for a whole change, from reading the file to the swap.
    writer: Mutex<()>,
    secrets: SecretStore,
}

impl LiveConfig {
    /// `config` with the secret fields stored in `secrets`.
    pub(crate) fn new(config: Config, secrets: SecretStore) -> LiveConfig {
        let config = config.with_plugin_secrets(stored(&secrets));
        LiveConfig {
            current: RwLock::new(Arc::new(config)),
            writer: Mutex::new(()),
            secrets,
        }
    }

    pub(crate) fn get(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, config: Arc<Config>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every stored secret field; none, with a warning, when they cannot be read (the plugins that
/// need one then fail their schema check, naming the field).
fn stored(secrets: &SecretStore) -> PluginSecrets {
    secrets.load_all().unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the plugins' secret configuration fields");
        PluginSecrets::new()
    })
}

/// What a configuration change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    /// The plugins whose own configuration changed.
    pub plugins: Vec<String>,
    /// Whether `sigil.toml` changed at all (workspaces, users, denies may have).
    pub file_changed: bool,
}

/// Why a plugin's configuration was not changed. Nothing changed in every case.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigUpdateError {
    /// No such plugin is loaded or listed.
    #[error("no plugin `{0}`")]
    UnknownPlugin(String),
    /// The new configuration does not fit the plugin's schema, or is not an object.
    #[error("plugin `{plugin}`: {problems}")]
    Invalid {
        /// The plugin.
        plugin: String,
        /// Each place and rule, never a value.
        problems: String,
    },
    /// The field is not one the plugin's config schema marks `secret: true`.
    #[error("plugin `{plugin}` has no secret field `{field}`; its secret fields: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    NotSecret {
        /// The plugin.
        plugin: String,
        /// The field asked for.
        field: String,
        /// The fields its schema marks secret.
        known: Vec<String>,
    },
    /// `sigil.toml` as it is now was rejected (it does not parse, or another plugin's
    /// configuration in it does not fit).
    #[error(transparent)]
    Rejected(#[from] ConfigError),
    /// The file, the secret store or the audit log could not be written.
    #[error("{0}")]
    Storage(String),
}

impl From<ConfigFileError> for ConfigUpdateError {
    fn from(error: ConfigFileError) -> ConfigUpdateError {
        ConfigUpdateError::Storage(error.to_string())
    }
}

impl Runtime {
    /// Reads `sigil.toml` again and, if it is valid, puts it in force. `by` is recorded as the
    /// one who asked.
    ///
    /// Nothing happens when neither the file nor any stored secret field changed.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or a plugin whose configuration changed does not
    /// accept it (the error names the file, the plugin, the place and the schema rule), or when
    /// the change cannot be recorded. The configuration in force stays; the rejection is
    /// published as [`Event::ConfigRejected`] and recorded.
    pub fn reload_config(&self, by: &Actor) -> Result<ConfigChange, ConfigError> {
        let _writer = self.config.lock();
        self.reload_config_locked(by)
    }

    fn reload_config_locked(&self, by: &Actor) -> Result<ConfigChange, ConfigError> {
        let path = self.home.config_path();
        let candidate = match self.config_from_disk() {
            Ok(candidate) => candidate,
            Err(error) => return Err(self.reject(error, by)),
        };
        let old = self.config();
        let mentioned = old
            .configured_plugins()
            .union(&candidate.configured_plugins())
            .cloned()
            .collect::<Vec<_>>();
        // What the plugin receives changed...
        let changed: Vec<String> = mentioned
            .iter()
            .filter(|id| old.plugin_config(id) != candidate.plugin_config(id))
            .cloned()
            .collect();
        // ...or only what the file says (a secret field written in clear beside a stored one).
        let to_check: Vec<&String> = mentioned
            .iter()
            .filter(|id| {
                changed.contains(id)
                    || old.plugin_config_file(id) != candidate.plugin_config_file(id)
            })
            .collect();
        let file_changed = !old.same_source(&candidate);
        if changed.is_empty() && !file_changed {
            return Ok(ConfigChange {
                plugins: changed,
                file_changed,
            });
        }
        let problems: Vec<String> = to_check
            .into_iter()
            .filter_map(|id| {
                let entry = self.manager.get(id)?;
                check_config(entry.manifest(), &candidate)
                    .err()
                    .map(|problem| format!("plugin `{id}`: {problem}"))
            })
            .collect();
        if !problems.is_empty() {
            let error = ConfigError {
                path,
                message: problems.join("; "),
            };
            return Err(self.reject(error, by));
        }
        let rule = if changed.is_empty() {
            "configuration reloaded from sigil.toml; no plugin's configuration changed".to_string()
        } else {
            format!(
                "configuration reloaded from sigil.toml; changed the configuration of: {}",
                changed.join(", ")
            )
        };
        let record = NewRecord::decision(Verdict::Allow, rule)
            .with_actor(by.clone())
            .with_capability(ADMIN_CONFIG);
        self.audit.append(record).map_err(|e| ConfigError {
            path: self.home.database_path(),
            message: format!(
                "the configuration change could not be recorded in the audit log, so it was not applied: {e}"
            ),
        })?;
        let candidate = Arc::new(candidate);
        self.enforcer.reconfigure(&candidate);
        self.reconfigure_approvals(&candidate);
        self.config.set(candidate);
        tracing::info!(plugins = ?changed, file_changed, "configuration reloaded");
        self.events().publish(Event::ConfigChanged {
            plugins: changed.clone(),
        });
        self.retry_failed(&changed);
        Ok(ConfigChange {
            plugins: changed,
            file_changed,
        })
    }

    /// Loads again each plugin of `changed` that is in the error state (most likely because it
    /// did not accept its previous configuration), unless the operator disabled it. A failure
    /// is logged and published as a failed reload; the configuration change stands.
    fn retry_failed(&self, changed: &[String]) {
        let disabled = self.disabled();
        for id in changed {
            let failed = self
                .manager
                .get(id)
                .is_some_and(|entry| entry.lifecycle().state() == crate::lifecycle::State::Error);
            if !failed || disabled.contains(id) {
                continue;
            }
            match self.reload(id) {
                Ok(summary) => {
                    tracing::info!(plugin = %id, state = %summary.state, "loaded again with its new configuration");
                }
                Err(error) => {
                    tracing::warn!(plugin = %id, %error, "still does not load with its new configuration");
                    self.events().publish(Event::ReloadFailed {
                        plugin: id.clone(),
                        error: error.to_string(),
                    });
                }
            }
        }
    }

    /// Publishes and records an update refused before anything was written. (A rejected
    /// `sigil.toml` has been published and recorded where it was found.)
    fn refused(&self, error: &ConfigUpdateError, by: &Actor) {
        if !matches!(
            error,
            ConfigUpdateError::Invalid { .. } | ConfigUpdateError::NotSecret { .. }
        ) {
            return;
        }
        self.events().publish(Event::ConfigRejected {
            error: error.to_string(),
        });
        let record = NewRecord::decision(
            Verdict::Deny,
            format!("configuration change rejected: {error}"),
        )
        .with_actor(by.clone())
        .with_capability(ADMIN_CONFIG);
        if let Err(audit) = self.audit.append(record) {
            tracing::error!(error = %audit, "cannot record a rejected configuration change");
        }
    }

    /// Logs, publishes and records a rejected change, and returns its error.
    fn reject(&self, error: ConfigError, by: &Actor) -> ConfigError {
        tracing::warn!(%error, "configuration change rejected; the configuration in force stays");
        self.events().publish(Event::ConfigRejected {
            error: error.to_string(),
        });
        let record = NewRecord::decision(
            Verdict::Deny,
            format!("configuration change rejected: {error}"),
        )
        .with_actor(by.clone())
        .with_capability(ADMIN_CONFIG);
        if let Err(audit) = self.audit.append(record) {
            tracing::error!(error = %audit, "cannot record a rejected configuration change");
        }
        error
    }

    /// `sigil.toml` as it is on disk now, with the secret fields as stored now.
    pub(crate) fn config_from_disk(&self) -> Result<Config, ConfigError> {
        Ok(Config::load(&self.home.config_path())?
            .with_plugin_secrets(stored(&self.config.secrets)))
    }

    /// Plugin `id`'s configuration for showing: secret fields stored for it read
    /// [`SECRET_MARKER`](crate::SECRET_MARKER) instead of their values.
    ///
    /// # Errors
    /// [`ConfigUpdateError::UnknownPlugin`] for a plugin neither loaded nor configured.
    pub fn plugin_config_redacted(&self, id: &str) -> Result<Value, ConfigUpdateError> {
        let config = self.config();
        if self.manager.get(id).is_none() && !config.configured_plugins().contains(id) {
            return Err(ConfigUpdateError::UnknownPlugin(id.to_string()));
        }
        Ok(config.plugin_config_redacted(id))
    }

    /// Replaces plugin `id`'s configuration with `value` (a JSON object), then puts it in
    /// force as [`Runtime::reload_config`] does. Fields the plugin's schema marks secret are
    /// stored encrypted, never in `sigil.toml`: a string value is stored, the
    /// [`SECRET_MARKER`](crate::SECRET_MARKER) keeps the stored value, and a secret field left
    /// out is removed. The rest is written into `[plugins.<id>.config]` of `sigil.toml`,
    /// keeping the file's other tables and comments, atomically.
    ///
    /// # Errors
    /// [`ConfigUpdateError::Invalid`] when the new configuration does not fit the schema
    /// (validated with its secret fields before anything is written),
    /// [`ConfigUpdateError::Rejected`] when `sigil.toml` as it is now is invalid, and
    /// [`ConfigUpdateError::Storage`] when a file, the secret store or the audit log cannot be
    /// written. Nothing changes in the first two cases.
    pub fn update_plugin_config(
        &self,
        id: &str,
        value: Value,
        by: &Actor,
    ) -> Result<ConfigChange, ConfigUpdateError> {
        let _writer = self.config.lock();
        self.update_locked(id, value, by)
            .inspect_err(|error| self.refused(error, by))
    }

    fn update_locked(
        &self,
        id: &str,
        value: Value,
        by: &Actor,
    ) -> Result<ConfigChange, ConfigUpdateError> {
        let entry = self
            .manager
            .get(id)
            .ok_or_else(|| ConfigUpdateError::UnknownPlugin(id.to_string()))?;
        let invalid = |problems: String| ConfigUpdateError::Invalid {
            plugin: id.to_string(),
            problems,
        };
        if !value.is_object() {
            return Err(invalid("the configuration must be a JSON object".into()));
        }
        let current = self.config_from_disk().map_err(|e| self.reject(e, by))?;
        let stored = current.stored_secret_fields(id);
        let live = current.plugin_config(id);
        let mut written = value;
        let mut merged_secrets: Vec<(String, SecretValue)> = Vec::new();
        let mut to_store: Vec<(String, SecretValue)> = Vec::new();
        let mut to_remove: Vec<String> = Vec::new();
        for field in entry.manifest().secret_fields() {
            match take_field(&mut written, field) {
                None => {
                    if stored.contains(field) {
                        to_remove.push(field.clone());
                    }
                }
                Some(Value::String(marker)) if marker == SECRET_MARKER => {
                    let Some(Value::String(kept)) = crate::config::get_field(&live, field) else {
                        return Err(invalid(format!(
                            "secret field `{field}` reads `{SECRET_MARKER}` but no value is stored for it"
                        )));
                    };
                    merged_secrets.push((field.clone(), SecretValue::new(kept.clone())));
                }
                Some(Value::String(new)) => {
                    let new = SecretValue::new(new);
                    merged_secrets.push((field.clone(), new.clone()));
                    to_store.push((field.clone(), new));
                }
                Some(_) => {
                    return Err(invalid(format!("secret field `{field}` must be a string")));
                }
            }
        }
        let mut merged = written.clone();
        for (field, secret) in &merged_secrets {
            set_field(
                &mut merged,
                field,
                Value::String(secret.expose().to_string()),
            );
        }
        check_config_value(entry.manifest(), &merged).map_err(invalid)?;

        let file = sigil_store::ConfigFile::new(self.home.config_path());
        file.edit(
            |settings| {
                settings
                    .set_plugin_config(id, &written)
                    .map_err(|e| match e {
                        ConfigFileError::Io { .. } => ConfigUpdateError::Storage(e.to_string()),
                        other => invalid(other.to_string()),
                    })
            },
            |text| {
                Config::parse(text, file.path()).map_err(|e| invalid(e.message))?;
                for (field, secret) in &to_store {
                    self.config
                        .secrets
                        .set(id, field, secret)
                        .map_err(ConfigUpdateError::Storage)?;
                }
                for field in &to_remove {
                    self.config
                        .secrets
                        .remove(id, field)
                        .map_err(ConfigUpdateError::Storage)?;
                }
                Ok(())
            },
        )?;
        Ok(self.reload_config_locked(by)?)
    }

    /// Stores `value` as plugin `id`'s secret field `field` (encrypted, in the database) and
    /// puts it in force as [`Runtime::reload_config`] does. `sigil.toml` is not touched.
    ///
    /// # Errors
    /// [`ConfigUpdateError::NotSecret`] unless the plugin's schema marks `field` secret,
    /// [`ConfigUpdateError::Invalid`] when the configuration with the new value does not fit
    /// (nothing is stored then), and the errors of [`Runtime::update_plugin_config`].
    pub fn set_plugin_secret(
        &self,
        id: &str,
        field: &str,
        value: SecretValue,
        by: &Actor,
    ) -> Result<ConfigChange, ConfigUpdateError> {
        let _writer = self.config.lock();
        self.set_secret_locked(id, field, value, by)
            .inspect_err(|error| self.refused(error, by))
    }

    fn set_secret_locked(
        &self,
        id: &str,
        field: &str,
        value: SecretValue,
        by: &Actor,
    ) -> Result<ConfigChange, ConfigUpdateError> {
        let entry = self
            .manager
            .get(id)
            .ok_or_else(|| ConfigUpdateError::UnknownPlugin(id.to_string()))?;
        let known = entry.manifest().secret_fields();
        if !known.iter().any(|f| f == field) {
            return Err(ConfigUpdateError::NotSecret {
                plugin: id.to_string(),
                field: field.to_string(),
                known: known.to_vec(),
            });
        }
        let current = self.config_from_disk().map_err(|e| self.reject(e, by))?;
        let mut merged = current.plugin_config(id);
        set_field(
            &mut merged,
            field,
            Value::String(value.expose().to_string()),
        );
        check_config_value(entry.manifest(), &merged).map_err(|problems| {
            ConfigUpdateError::Invalid {
                plugin: id.to_string(),
                problems,
            }
        })?;
        self.config
            .secrets
            .set(id, field, &value)
            .map_err(ConfigUpdateError::Storage)?;
        Ok(self.reload_config_locked(by)?)
    }

    /// Starts watching `sigil.toml`: once it has been quiet for [`HOT_RELOAD_QUIET`] after a
    /// change, it is read again as [`Runtime::reload_config`] does (a rejected change is
    /// logged, published and recorded; the configuration in force stays). The watch holds only a
    /// weak reference: it ends with the runtime.
    ///
    /// # Errors
    /// When the data directory cannot be watched.
    pub fn watch_config(runtime: &Arc<Runtime>) -> Result<ConfigWatch, String> {
        let file = runtime.home.config_path();
        // The directory, not the file: editors replace a file by renaming a new one over it.
        let dir = runtime.home.root().to_path_buf();
        let dir = dir.canonicalize().unwrap_or(dir);
        let name = file.file_name().map(|n| n.to_os_string());
        let (sender, changes) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !event.kind.is_access()
                    && event
                        .paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
                {
                    let _ = sender.send(());
                }
            })
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        let weak = Arc::downgrade(runtime);
        std::thread::Builder::new()
            .name("sigil-config-watch".into())
            .spawn(move || debounce(&weak, &changes))
            .map_err(|e| format!("cannot start the configuration watch thread: {e}"))?;
        tracing::info!(file = %file.display(), "watching the configuration");
        Ok(ConfigWatch { _watcher: watcher })
    }
}

/// Watches `sigil.toml` while it lives; dropping it stops the watching.
#[derive(Debug)]
pub struct ConfigWatch {
    _watcher: notify::RecommendedWatcher,
}

/// The actor recorded for changes the file watch applies.
fn watch_actor() -> Actor {
    Actor {
        user: None,
        workspace: None,
        session: None,
        channel: Some("config-watch".to_string()),
    }
}

fn debounce(runtime: &Weak<Runtime>, changes: &mpsc::Receiver<()>) {
    let mut pending: Option<Instant> = None;
    loop {
        match changes.recv_timeout(HOT_RELOAD_QUIET / 3) {
            Ok(()) => pending = Some(Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if pending.is_some_and(|changed| changed.elapsed() >= HOT_RELOAD_QUIET) {
            pending = None;
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            // A rejection is logged, published and recorded by the reload itself.
            if let Ok(change) = runtime.reload_config(&watch_actor())
                && (change.file_changed || !change.plugins.is_empty())
            {
                tracing::info!(plugins = ?change.plugins, "sigil.toml changed; new configuration in force");
            }
        }
    }
}
