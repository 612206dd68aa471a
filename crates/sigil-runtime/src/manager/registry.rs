//! The plugins the manager holds, by id, with an index of who subscribes to which hook event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sigil_manifest::{HookEvent, Kind};

use super::PluginEntry;

/// Every plugin generation in service, by id, and per hook event the plugins whose manifest
/// subscribes to it. The index changes only with the plugins, so raising an event nobody
/// subscribes to costs one lookup.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_id: BTreeMap<String, Arc<PluginEntry>>,
    subscribed: HashMap<HookEvent, Vec<Arc<PluginEntry>>>,
}

impl Registry {
    /// Puts `entry` in place of the plugin with its id; returns the one it replaced.
    pub(crate) fn insert(&mut self, entry: Arc<PluginEntry>) -> Option<Arc<PluginEntry>> {
        let replaced = self.by_id.insert(entry.manifest().id().to_string(), entry);
        self.reindex();
        replaced
    }

    /// Takes the plugin `id` out.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<PluginEntry>> {
        let removed = self.by_id.remove(id);
        if removed.is_some() {
            self.reindex();
        }
        removed
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Arc<PluginEntry>> {
        self.by_id.get(id)
    }

    pub(crate) fn by_id(&self) -> &BTreeMap<String, Arc<PluginEntry>> {
        &self.by_id
    }

    /// The plugins of the `hook` kind whose manifest subscribes to `event`, by id, whatever
    /// their state and consent (the dispatch decides on those).
    pub(crate) fn subscribed(&self, event: HookEvent) -> &[Arc<PluginEntry>] {
        self.subscribed.get(&event).map_or(&[], Vec::as_slice)
    }

    fn reindex(&mut self) {
        self.subscribed.clear();
        for entry in self.by_id.values() {
            if !entry.manifest().kinds().contains(&Kind::Hook) {
                continue;
            }
            for hook in entry.manifest().hooks() {
                let list = self.subscribed.entry(hook.event).or_default();
                if !list.iter().any(|e| Arc::ptr_eq(e, entry)) {
                    list.push(entry.clone());
                }
            }
        }
    }
}
