//! Run-time changes to the set of plugins: swapping in a new generation of a plugin, taking one
//! out, and restarting a compiled-in one. The runtime's control methods build on these.

use std::path::Path;
use std::sync::Arc;

use sigil_policy::PluginAuthority;

use super::{Manager, PluginEntry, Source, grants};
use crate::config::Config;
use crate::enforcer::Registration;
use crate::lifecycle::State;

/// A plugin directory that did not load.
#[derive(Debug)]
pub(crate) struct Detached {
    /// The failed plugin, in the error state, when its manifest validated.
    pub(crate) entry: Option<Arc<PluginEntry>>,
    /// What went wrong.
    pub(crate) problems: Vec<String>,
}

impl Manager {
    /// Validates and loads the plugin in `dir` without touching the plugins already held: the
    /// new generation of a reload or an install. On success its authority is registered with
    /// the enforcer (replacing any earlier registration of the same id) and the entry is
    /// returned for [`Manager::swap_in`]. On failure nothing is registered; the problems are
    /// returned, with the failed entry when the manifest validated.
    pub(crate) fn load_detached(
        &self,
        dir: &Path,
        config: &Config,
    ) -> Result<Arc<PluginEntry>, Detached> {
        let staging = Manager::new(self.enforcer.clone(), self.tiers.clone());
        staging.discover_one(dir, config);
        if let Some(failure) = staging.failures().into_iter().next() {
            return Err(Detached {
                entry: None,
                problems: failure.diagnostics,
            });
        }
        let Some(entry) = staging.entries().into_iter().next() else {
            return Err(Detached {
                entry: None,
                problems: vec![format!("{}: no plugin found", dir.display())],
            });
        };
        if let Some(error) = entry.lifecycle().error() {
            return Err(Detached {
                entry: Some(entry),
                problems: vec![error],
            });
        }
        Ok(entry)
    }

    /// Puts `entry` in place of the plugin with its id, if any, in one step: calls already
    /// running keep the generation they started on, new calls get this one.
    pub(crate) fn swap_in(&self, entry: Arc<PluginEntry>) -> Option<Arc<PluginEntry>> {
        self.plugins
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(entry)
    }

    /// Takes the plugin out and unregisters its authority: every later call to it is denied.
    pub(crate) fn take_out(&self, id: &str) -> Option<Arc<PluginEntry>> {
        let taken = self
            .plugins
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(id);
        if taken.is_some() {
            self.enforcer.unregister(id);
        }
        taken
    }

    /// Moves a compiled-in plugin that is stopped or failed back to running, registering its
    /// authority again (a failure unregisters it). Returns the state it left.
    pub(crate) fn restart_builtin(&self, entry: &PluginEntry) -> Result<State, String> {
        if entry.source() != &Source::Builtin || entry.plugin.is_none() {
            return Err("only a compiled-in plugin can be restarted in place".into());
        }
        let from = entry
            .lifecycle()
            .transition(State::Loading)
            .map_err(|e| e.to_string())?;
        self.register_builtin(entry);
        entry
            .lifecycle()
            .transition_from(State::Loading, State::Running)
            .map_err(|e| e.to_string())?;
        Ok(from)
    }

    /// Registers a compiled-in plugin's authority (again): its consent is its grants.
    pub(crate) fn register_builtin(&self, entry: &PluginEntry) {
        self.enforcer.register(Registration {
            version: entry.manifest().version().to_string(),
            authority: PluginAuthority {
                id: entry.manifest().id().to_string(),
                grants: grants(entry.manifest()),
                consent: grants(entry.manifest()),
                denies: entry
                    .manifest()
                    .denied()
                    .iter()
                    .map(|c| c.pattern.clone())
                    .collect(),
            },
        });
    }
}
