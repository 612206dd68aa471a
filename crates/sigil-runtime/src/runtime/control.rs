//! Changing a running runtime: enable, disable, reload, add and remove plugins; watch what
//! happens; close the audit log at shutdown.
//!
//! Each change is a checked lifecycle transition (of two racing changes exactly one wins) and is
//! published as an [`Event`]. Calls already inside a plugin keep the generation they started
//! on and finish (or hit their deadline); new calls see the new state at once.
//!
//! These methods decide nothing about who may make a change: a front end asks the enforcer
//! first (the HTTP gateway checks `admin.plugins`).

use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::Runtime;
use crate::config::{Config, ConfigError};
use crate::events::{Event, Events};
use crate::lifecycle::State;
use crate::manager::{PluginEntry, PluginSummary, Source};

/// Why a change to a plugin was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// No plugin has this id.
    #[error("no plugin `{0}`")]
    UnknownPlugin(String),
    /// The plugin is not in a state the change applies to.
    #[error("plugin `{plugin}` is {state}: {hint}")]
    WrongState {
        /// The plugin.
        plugin: String,
        /// Its state.
        state: State,
        /// What to do instead.
        hint: &'static str,
    },
    /// Compiled-in plugins stay; they can only be disabled.
    #[error("plugin `{0}` is compiled into sigil and cannot be removed; disable it instead")]
    Builtin(String),
    /// The plugin directory did not validate or load; the previous generation, if any, stays.
    #[error("plugin in {dir} did not load: {}", problems.join("; "))]
    LoadFailed {
        /// The plugin directory.
        dir: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// `sigil.toml` could not be read again (for the consent of a plugin being loaded).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Runtime {
    /// The event hub: plugin state changes and every recorded decision.
    pub fn events(&self) -> &Events {
        self.enforcer.events()
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.enforcer.events().subscribe()
    }

    /// Stops serving calls to a running plugin: running → draining → stopping → stopped.
    /// Calls already inside it finish. Lasts until [`Runtime::enable`] or a restart of the
    /// runtime.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], or [`ControlError::WrongState`] unless it is running.
    pub fn disable(&self, id: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.entry(id)?;
        let lifecycle = entry.lifecycle();
        let wrong = |state| ControlError::WrongState {
            plugin: id.to_string(),
            state,
            hint: "only a running plugin can be disabled",
        };
        lifecycle
            .transition_from(State::Running, State::Draining)
            .map_err(|e| wrong(e.from))?;
        for (from, to) in [
            (State::Draining, State::Stopping),
            (State::Stopping, State::Stopped),
        ] {
            // Only the winner of the first step gets here; nobody else moves a draining plugin.
            lifecycle
                .transition_from(from, to)
                .map_err(|e| wrong(e.from))?;
        }
        self.publish_state(&entry, State::Running);
        Ok(entry.summary())
    }

    /// Serves calls to a stopped plugin again: stopped → loading → running. A compiled-in
    /// plugin resumes in place; a directory plugin is loaded afresh from its directory.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::WrongState`] unless it is stopped, or
    /// [`ControlError::LoadFailed`].
    pub fn enable(&self, id: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.entry(id)?;
        let state = entry.lifecycle().state();
        if state != State::Stopped {
            return Err(ControlError::WrongState {
                plugin: id.to_string(),
                state,
                hint: match state {
                    State::Error => "reload it to try again",
                    _ => "only a stopped plugin can be enabled",
                },
            });
        }
        self.restart(id, &entry)
    }

    /// Loads a plugin again. A directory plugin's manifest and artifact are read afresh and
    /// the new generation replaces the old in one step once it has loaded; if it fails to load
    /// the old one stays as it was. A compiled-in plugin is stopped and started.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::WrongState`] while it is between
    /// states, or [`ControlError::LoadFailed`].
    pub fn reload(&self, id: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.entry(id)?;
        if entry.source() == &Source::Builtin && entry.lifecycle().state() == State::Running {
            self.disable(id)?;
        }
        self.restart(id, &entry)
    }

    /// Loads the plugin in `dir` (just installed there) and starts serving it, replacing a
    /// plugin with the same id. Consent is read from `sigil.toml` as it is now.
    ///
    /// # Errors
    /// [`ControlError::Config`] when `sigil.toml` cannot be read, [`ControlError::Builtin`]
    /// when the id is that of a compiled-in plugin, [`ControlError::LoadFailed`] when the
    /// plugin does not validate or load (nothing changes then).
    pub fn add_directory(&self, dir: &Path) -> Result<PluginSummary, ControlError> {
        let config = Config::load(&self.home.config_path())?;
        let fresh = match self.manager.load_detached(dir, &config) {
            Ok(fresh) => fresh,
            Err(failed) => {
                // Listed with its error, as a restart would show it, unless that would hide a
                // compiled-in plugin.
                if let Some(entry) = failed.entry {
                    let builtin = self
                        .manager
                        .get(entry.manifest().id().as_str())
                        .is_some_and(|e| e.source() == &Source::Builtin);
                    if !builtin {
                        let previous = self.manager.swap_in(entry.clone());
                        let from = previous.map_or(State::Discovered, |p| p.lifecycle().state());
                        self.publish_state(&entry, from);
                    }
                }
                return Err(ControlError::LoadFailed {
                    dir: dir.display().to_string(),
                    problems: failed.problems,
                });
            }
        };
        let id = fresh.manifest().id().to_string();
        if let Some(existing) = self.manager.get(&id)
            && existing.source() == &Source::Builtin
        {
            // The staging load registered the newcomer's authority under the builtin's id:
            // put the builtin's back.
            self.manager.register_builtin(&existing);
            return Err(ControlError::Builtin(id));
        }
        let previous = self.manager.swap_in(fresh.clone());
        let from = previous.map_or(State::Discovered, |p| p.lifecycle().state());
        self.publish_state(&fresh, from);
        Ok(fresh.summary())
    }

    /// Takes a plugin out of the runtime: its authority is unregistered, so every later call
    /// to it is denied. Files are left alone; the returned source says where it came from.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], or [`ControlError::Builtin`] for a compiled-in plugin.
    pub fn remove(&self, id: &str) -> Result<Source, ControlError> {
        let entry = self.entry(id)?;
        if entry.source() == &Source::Builtin {
            return Err(ControlError::Builtin(id.to_string()));
        }
        let taken = self
            .manager
            .take_out(id)
            .ok_or_else(|| ControlError::UnknownPlugin(id.to_string()))?;
        self.events().publish(Event::PluginRemoved {
            plugin: id.to_string(),
        });
        Ok(taken.source().clone())
    }

    /// Closes the runtime: drops the plugins and the enforcer, then lets the audit writer
    /// commit everything already submitted and closes the database. Call it once no call is in
    /// flight any more.
    ///
    /// # Errors
    /// When the writer fails to close the database. When something else still holds the audit
    /// log (a call kept alive by a tier), it is closed when that lets go, and this returns `Ok`.
    pub fn close(self) -> Result<(), sigil_audit::AuditError> {
        let Runtime {
            audit,
            enforcer,
            manager,
            kv,
            ..
        } = self;
        drop(manager);
        drop(enforcer);
        drop(kv);
        match Arc::try_unwrap(audit) {
            Ok(log) => log.close(),
            Err(shared) => {
                tracing::warn!(
                    holders = Arc::strong_count(&shared),
                    "audit log still in use at close; it closes when released"
                );
                Ok(())
            }
        }
    }

    fn entry(&self, id: &str) -> Result<Arc<PluginEntry>, ControlError> {
        self.manager
            .get(id)
            .ok_or_else(|| ControlError::UnknownPlugin(id.to_string()))
    }

    /// Brings a stopped or failed plugin back: a builtin in place, a directory plugin as a
    /// new generation from its directory.
    fn restart(&self, id: &str, entry: &Arc<PluginEntry>) -> Result<PluginSummary, ControlError> {
        let from = entry.lifecycle().state();
        match entry.source() {
            Source::Builtin => {
                self.manager
                    .restart_builtin(entry)
                    .map_err(|_| ControlError::WrongState {
                        plugin: id.to_string(),
                        state: entry.lifecycle().state(),
                        hint: "it is changing state; try again",
                    })?;
                self.publish_state(entry, from);
                Ok(entry.summary())
            }
            Source::Directory(dir) => {
                let config = Config::load(&self.home.config_path())?;
                let fresh = self.manager.load_detached(dir, &config).map_err(|failed| {
                    ControlError::LoadFailed {
                        dir: dir.display().to_string(),
                        problems: failed.problems,
                    }
                })?;
                let new_id = fresh.manifest().id().to_string();
                if new_id != id {
                    if self.manager.get(&new_id).is_none() {
                        self.enforcer.unregister(&new_id);
                    }
                    return Err(ControlError::LoadFailed {
                        dir: dir.display().to_string(),
                        problems: vec![format!(
                            "its manifest now says id `{new_id}`, not `{id}`; remove and install it instead"
                        )],
                    });
                }
                self.manager.swap_in(fresh.clone());
                self.publish_state(&fresh, from);
                Ok(fresh.summary())
            }
        }
    }

    fn publish_state(&self, entry: &PluginEntry, from: State) {
        self.events().publish(Event::PluginState {
            plugin: entry.manifest().id().to_string(),
            from,
            to: entry.lifecycle().state(),
            error: entry.lifecycle().error(),
        });
    }
}
