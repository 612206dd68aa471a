//! Changing a running runtime: enable, disable, reload, add and remove plugins; watch what
//! happens; close the audit log at shutdown.
//!
//! Each change is a checked lifecycle transition (of two racing changes exactly one wins) and is
//! published as an [`Event`]. Calls already inside a plugin keep the generation they started
//! on and finish (or hit their deadline); new calls see the new state at once.
//!
//! These methods decide nothing about who may make a change: a front end asks the enforcer
//! first (the HTTP gateway checks `admin.plugins`).
//!
//! The operator's disables outlive the process: each is recorded in
//! [`Home::disabled_path`](crate::Home::disabled_path) before the plugin stops, and
//! [`Runtime::open`] stops the plugins recorded there. [`Runtime::enable`], a
//! [`Runtime::reload`] that serves the plugin again, and [`Runtime::remove`] clear the record.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::Runtime;
use crate::config::ConfigError;
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
    /// The plugin could not record an operator's approval of its tools.
    #[error("cannot approve the tools of plugin `{plugin}`: {reason}")]
    Approval {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// `sigil.toml` could not be read again (for the consent of a plugin being loaded).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The operator's choice could not be recorded in the data directory; the plugin was left
    /// as it was.
    #[error("{}: {message}", path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
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
    /// Calls already inside it finish. Lasts until [`Runtime::enable`]: the choice is recorded
    /// in the data directory first, so the plugin also stays stopped when the runtime is opened
    /// again.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::WrongState`] unless it is running, or
    /// [`ControlError::StateFile`] when the choice cannot be recorded (the plugin keeps
    /// running then).
    pub fn disable(&self, id: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.entry(id)?;
        let marks = Marks::lock(self.home.disabled_path());
        let state = entry.lifecycle().state();
        if state != State::Running {
            return Err(cannot_disable(id, state));
        }
        let marked = marks.insert(id)?;
        if let Err(error) = self.stop(id, &entry) {
            if marked {
                marks.undo_insert(id);
            }
            return Err(error);
        }
        Ok(entry.summary())
    }

    /// Serves calls to a stopped plugin again: stopped → loading → running. A compiled-in
    /// plugin resumes in place; a directory plugin is loaded afresh from its directory. Clears
    /// the record of an earlier [`Runtime::disable`].
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::WrongState`] unless it is stopped,
    /// [`ControlError::LoadFailed`], or [`ControlError::StateFile`] when the record cannot be
    /// cleared (the plugin stays stopped then).
    pub fn enable(&self, id: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.entry(id)?;
        let marks = Marks::lock(self.home.disabled_path());
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
        let unmarked = marks.remove(id)?;
        self.restart(id, &entry).inspect_err(|_| {
            if unmarked {
                marks.undo_remove(id);
            }
        })
    }

    /// Loads a plugin again. A directory plugin's manifest and artifact are read afresh and
    /// the new generation replaces the old in one step once it has loaded; if it fails to load
    /// the old one stays as it was. A compiled-in plugin is stopped and started. A disabled
    /// plugin serves calls again, as after [`Runtime::enable`].
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::WrongState`] while it is between
    /// states, [`ControlError::LoadFailed`], or [`ControlError::StateFile`] when the record of
    /// a disable cannot be cleared.
    pub fn reload(&self, id: &str) -> Result<PluginSummary, ControlError> {
        let entry = self.entry(id)?;
        let marks = Marks::lock(self.home.disabled_path());
        let unmarked = marks.remove(id)?;
        let reloaded =
            if entry.source() == &Source::Builtin && entry.lifecycle().state() == State::Running {
                self.stop(id, &entry)
                    .and_then(|()| self.restart(id, &entry))
            } else {
                self.restart(id, &entry)
            };
        reloaded.inspect_err(|_| {
            if unmarked {
                marks.undo_remove(id);
            }
        })
    }

    /// Loads the plugin in `dir` (just installed there) and starts serving it, replacing a
    /// plugin with the same id. Consent is read from `sigil.toml` as it is now. A plugin the
    /// operator disabled stays disabled: the new generation is loaded, then stopped, as
    /// [`Runtime::open`] would.
    ///
    /// # Errors
    /// [`ControlError::Config`] when `sigil.toml` cannot be read, [`ControlError::Builtin`]
    /// when the id is that of a compiled-in plugin, [`ControlError::LoadFailed`] when the
    /// plugin does not validate or load (nothing changes then).
    pub fn add_directory(&self, dir: &Path) -> Result<PluginSummary, ControlError> {
        let config = self.config_from_disk()?;
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
        let marks = Marks::lock(self.home.disabled_path());
        let previous = self.manager.swap_in(fresh.clone());
        let from = previous
            .as_ref()
            .map_or(State::Discovered, |p| p.lifecycle().state());
        retire(previous);
        self.publish_state(&fresh, from);
        if marks.read().contains(&id)
            && let Err(error) = self.stop(&id, &fresh)
        {
            tracing::warn!(plugin = %id, %error, "a disabled plugin's new generation did not stop");
        }
        Ok(fresh.summary())
    }

    /// Takes a plugin out of the runtime: its authority is unregistered, so every later call
    /// to it is denied, and the record of an earlier [`Runtime::disable`] is cleared. Files are
    /// left alone; the returned source says where it came from.
    ///
    /// # Errors
    /// [`ControlError::UnknownPlugin`], [`ControlError::Builtin`] for a compiled-in plugin, or
    /// [`ControlError::StateFile`] when the record cannot be cleared (nothing is removed then).
    pub fn remove(&self, id: &str) -> Result<Source, ControlError> {
        let entry = self.entry(id)?;
        if entry.source() == &Source::Builtin {
            return Err(ControlError::Builtin(id.to_string()));
        }
        let marks = Marks::lock(self.home.disabled_path());
        marks.remove(id)?;
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

    /// The plugins the operator disabled, as recorded in
    /// [`Home::disabled_path`](crate::Home::disabled_path) now (another process on the same
    /// data directory, such as `sigil plugin disable`, may have changed it). An id may be
    /// listed that is not installed at the moment; its record waits for it.
    pub fn disabled(&self) -> BTreeSet<String> {
        read_marks(&self.home.disabled_path())
    }

    /// Stops the running plugins the operator disabled: for [`Runtime::open`], once every
    /// plugin is loaded. A state file that cannot be read is logged and treated as empty.
    pub(super) fn stop_disabled(&self) {
        for id in self.disabled() {
            let Some(entry) = self.manager.get(&id) else {
                continue;
            };
            if entry.lifecycle().state() != State::Running {
                continue;
            }
            match self.stop(&id, &entry) {
                Ok(()) => {
                    tracing::info!(plugin = %id, "plugin disabled by the operator; not serving calls")
                }
                Err(error) => tracing::warn!(plugin = %id, %error, "disabled plugin did not stop"),
            }
        }
    }

    fn entry(&self, id: &str) -> Result<Arc<PluginEntry>, ControlError> {
        self.manager
            .get(id)
            .ok_or_else(|| ControlError::UnknownPlugin(id.to_string()))
    }

    /// Running → draining → stopping → stopped, published as one change. A directory plugin's
    /// own work (a process, a bridged server) then ends once its calls in flight have finished,
    /// within its drain timeout; enabling it again loads a new generation.
    fn stop(&self, id: &str, entry: &Arc<PluginEntry>) -> Result<(), ControlError> {
        let lifecycle = entry.lifecycle();
        lifecycle
            .transition_from(State::Running, State::Draining)
            .map_err(|e| cannot_disable(id, e.from))?;
        for (from, to) in [
            (State::Draining, State::Stopping),
            (State::Stopping, State::Stopped),
        ] {
            // Only the winner of the first step gets here; nobody else moves a draining plugin.
            lifecycle
                .transition_from(from, to)
                .map_err(|e| cannot_disable(id, e.from))?;
        }
        self.publish_state(entry, State::Running);
        if entry.source() != &Source::Builtin {
            end_when_drained(entry.clone());
        }
        Ok(())
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
                let config = self.config_from_disk()?;
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
                retire(self.manager.swap_in(fresh.clone()));
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

fn cannot_disable(id: &str, state: State) -> ControlError {
    ControlError::WrongState {
        plugin: id.to_string(),
        state,
        hint: "only a running plugin can be disabled",
    }
}

/// Serialises changes to the disable records of every runtime in this process, so two changes
/// never read the same file and write over each other. Held across the lifecycle change it
/// records, so the record and the state agree when the lock is released.
static MARKS: Mutex<()> = Mutex::new(());

/// The state file's contents, `{"disabled": ["plugin", ...]}`. Unknown fields are ignored, so
/// a later version can add some.
#[derive(Debug, Default, Deserialize, Serialize)]
struct DisabledFile {
    disabled: BTreeSet<String>,
}

/// The disable records, locked for a read-modify-write. Each change is read afresh from the
/// file (another process may have written it) and written back atomically: a temporary file
/// in the same directory, synced, then renamed over the old one.
struct Marks {
    path: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Marks {
    fn lock(path: PathBuf) -> Marks {
        Marks {
            path,
            _lock: MARKS.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    fn read(&self) -> BTreeSet<String> {
        read_marks(&self.path)
    }

    /// Reads the records for a change. Unlike [`read_marks`], a file that exists but cannot be
    /// read is an error, so a change never writes over records it could not see; a corrupt
    /// file holds none that could be used, and is replaced.
    fn read_for_change(&self) -> Result<BTreeSet<String>, ControlError> {
        load_marks(&self.path).map_err(|e| ControlError::StateFile {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Records `id` as disabled; whether it was not already.
    fn insert(&self, id: &str) -> Result<bool, ControlError> {
        self.change(|marks| marks.insert(id.to_string()))
    }

    /// Clears `id`'s record; whether there was one.
    fn remove(&self, id: &str) -> Result<bool, ControlError> {
        self.change(|marks| marks.remove(id))
    }

    /// Takes back an [`Marks::insert`] whose change then failed. The change is already being
    /// reported as an error; a failure here only leaves a record the operator can clear with
    /// `enable`, so it is logged.
    fn undo_insert(&self, id: &str) {
        if let Err(error) = self.remove(id) {
            tracing::warn!(plugin = %id, %error, "could not take back a disable record");
        }
    }

    /// Puts back a record cleared by [`Marks::remove`] whose change then failed.
    fn undo_remove(&self, id: &str) {
        if let Err(error) = self.insert(id) {
            tracing::warn!(plugin = %id, %error, "could not restore a disable record");
        }
    }

    fn change(
        &self,
        edit: impl FnOnce(&mut BTreeSet<String>) -> bool,
    ) -> Result<bool, ControlError> {
        let mut marks = self.read_for_change()?;
        if !edit(&mut marks) {
            return Ok(false);
        }
        write_marks(&self.path, marks).map_err(|e| ControlError::StateFile {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        Ok(true)
    }
}

/// Reads the disable records. A missing file records nothing; a file that cannot be read or
/// parsed is logged, naming it, and treated as recording nothing, so a damaged file never
/// stops the runtime from opening.
fn read_marks(path: &Path) -> BTreeSet<String> {
    load_marks(path).unwrap_or_else(|error| {
        tracing::warn!(file = %path.display(), %error, "cannot read the disabled-plugins state file; treating it as empty");
        BTreeSet::new()
    })
}

/// Reads the disable records: none for a missing file, none with a warning for a corrupt one,
/// an error when the file cannot be read.
fn load_marks(path: &Path) -> std::io::Result<BTreeSet<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(error) => return Err(error),
    };
    match serde_json::from_slice::<DisabledFile>(&bytes) {
        Ok(file) => Ok(file.disabled),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "the disabled-plugins state file is corrupt; treating it as empty");
            Ok(BTreeSet::new())
        }
    }
}

fn write_marks(path: &Path, disabled: BTreeSet<String>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the state file has no parent directory"))?;
    crate::files::create_private_dir_all(dir)?;
    let mut text = serde_json::to_vec_pretty(&DisabledFile { disabled })?;
    text.push(b'\n');
    crate::files::write_private_atomically(path, &text)
}

/// A generation replaced by a new one: it finishes the calls it has in flight, for at most its
/// manifest's drain timeout, then stops (calls still running then end with an error). New calls
/// already go to its successor. A generation that was not running has nothing to drain.
fn retire(previous: Option<Arc<PluginEntry>>) {
    let Some(old) = previous else { return };
    if old
        .lifecycle()
        .transition_from(State::Running, State::Draining)
        .is_err()
    {
        return;
    }
    let drain = std::time::Duration::from_millis(old.manifest().lifecycle().drain_timeout_ms);
    let spawned = std::thread::Builder::new()
        .name("sigil-drain".into())
        .spawn(move || {
            let left = old.in_flight.wait_idle(drain);
            let id = old.manifest().id().to_string();
            if left > 0 {
                tracing::warn!(plugin = %id, calls = left, drain_ms = drain.as_millis() as u64, "drain timeout passed with calls of the replaced generation in flight; stopping it");
            }
            let _ = old
                .lifecycle()
                .transition_from(State::Draining, State::Stopping);
            if let Some(plugin) = &old.plugin {
                plugin.stop();
            }
            let _ = old
                .lifecycle()
                .transition_from(State::Stopping, State::Stopped);
            tracing::info!(plugin = %id, "replaced generation drained and stopped");
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start draining a replaced generation; it stops when its last call ends");
    }
}

/// Ends a stopped generation's own work once its calls in flight are done (at most its drain
/// timeout), off the caller's thread.
fn end_when_drained(entry: Arc<PluginEntry>) {
    let Some(plugin) = entry.plugin.clone() else {
        return;
    };
    let drain = std::time::Duration::from_millis(entry.manifest().lifecycle().drain_timeout_ms);
    let spawned = std::thread::Builder::new()
        .name("sigil-drain".into())
        .spawn(move || {
            entry.in_flight.wait_idle(drain);
            plugin.stop();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start ending a stopped plugin's work; it ends when dropped");
    }
}
