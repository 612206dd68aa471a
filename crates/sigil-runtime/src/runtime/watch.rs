//! Hot reload: installed plugins whose manifest says `lifecycle.hot_reload = true` are loaded
//! again when their files change, exactly as [`Runtime::reload`] does (the new generation
//! takes new calls once it has loaded, the old one drains; a new generation that fails to load
//! leaves the old one serving, and the failure is logged and published as
//! [`Event::ReloadFailed`](crate::Event::ReloadFailed)).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::Runtime;
use crate::manager::Source;

/// How long a plugin's files must stay unchanged before it is reloaded: a copy or a build
/// writes several files, and the reload should see them all.
pub const HOT_RELOAD_QUIET: Duration = Duration::from_millis(300);

/// Watches the plugins directory while it lives; dropping it stops the watching.
#[derive(Debug)]
pub struct HotReload {
    _watcher: notify::RecommendedWatcher,
}

impl Runtime {
    /// Starts watching the plugins directory. Changes under a plugin's directory reload it
    /// when its manifest (as currently loaded) has `lifecycle.hot_reload = true`; plugins
    /// installed later are covered too. The watch holds only a weak reference: it ends with
    /// the runtime.
    ///
    /// # Errors
    /// When the directory cannot be watched (inotify limits, a missing directory).
    pub fn watch_hot_reload(runtime: &Arc<Runtime>) -> Result<HotReload, String> {
        let dir = runtime.home.plugins_dir();
        crate::files::create_private_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dir = dir.canonicalize().unwrap_or(dir);
        let (sender, changes) = mpsc::channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !event.kind.is_access()
                {
                    for path in event.paths {
                        let _ = sender.send(path);
                    }
                }
            })
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        let weak = Arc::downgrade(runtime);
        std::thread::Builder::new()
            .name("sigil-hot-reload".into())
            .spawn(move || debounce(&weak, &changes))
            .map_err(|e| format!("cannot start the hot-reload thread: {e}"))?;
        tracing::info!(dir = %dir.display(), "watching plugins for hot reload");
        Ok(HotReload { _watcher: watcher })
    }
}

/// Collects changed paths by plugin and reloads each plugin once its files have been quiet
/// for [`HOT_RELOAD_QUIET`]. Ends when the watcher or the runtime is gone.
fn debounce(runtime: &Weak<Runtime>, changes: &mpsc::Receiver<PathBuf>) {
    let mut pending: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        match changes.recv_timeout(HOT_RELOAD_QUIET / 3) {
            Ok(path) => {
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                if let Some(id) = hot_plugin_at(&runtime, &path) {
                    pending.insert(id, Instant::now());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, changed)| changed.elapsed() >= HOT_RELOAD_QUIET)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            pending.remove(&id);
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            match runtime.reload(&id) {
                Ok(summary) => {
                    tracing::info!(plugin = %id, version = %summary.version, "hot reload: new generation serving");
                }
                Err(error) => {
                    tracing::warn!(plugin = %id, %error, "hot reload failed; the running generation keeps serving");
                    runtime
                        .events()
                        .publish(crate::events::Event::ReloadFailed {
                            plugin: id,
                            error: error.to_string(),
                        });
                }
            }
        }
    }
}

/// The id of the hot-reloadable plugin whose directory holds `path`.
fn hot_plugin_at(runtime: &Runtime, path: &Path) -> Option<String> {
    runtime.manager.entries().into_iter().find_map(|entry| {
        let Source::Directory(dir) = entry.source() else {
            return None;
        };
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        (entry.manifest().lifecycle().hot_reload && path.starts_with(&dir))
            .then(|| entry.manifest().id().to_string())
    })
}
