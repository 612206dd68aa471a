//! The one wasmtime engine, its epoch ticker, and the precompiled component cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest linear memory any plugin may have, whatever its manifest says.
pub(crate) const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Builds the engine every plugin shares.
///
/// - async, so a deadline can cancel a call even inside a host call;
/// - epoch interruption, so a spinning guest yields every tick and can be stopped;
/// - fuel, available to manifests that set `execution.limits.fuel`;
/// - a pooling allocator sized for a gateway's worth of concurrent calls, so a fresh instance
///   per call costs microseconds.
pub(crate) fn engine() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(1024)
        .total_memories(512)
        .total_tables(1024)
        .total_stacks(256)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memory_size(MAX_MEMORY_BYTES)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(true)
        .memory_reservation(MAX_MEMORY_BYTES as u64)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sigil-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "epoch ticker did not start: deadlines inside guests will not fire"));
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Precompiled components on disk, keyed by the engine's configuration and the component's
/// bytes: a cache entry is only ever used by an engine that could have produced it.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf) -> ComponentCache {
        ComponentCache { dir }
    }

    /// The compiled component for `bytes`: from the cache when present, else compiled and
    /// stored. Returns whether it came from the cache.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.entry(engine, bytes);
        if path.exists() {
            // SAFETY: `deserialize_file` trusts that the file holds code compiled by a
            // compatible engine. Entries are written only by `precompile_component` below, under
            // a name that hashes the engine's compatibility hash and the component's bytes, into
            // the operator's own data directory; anyone able to replace them could already
            // replace the plugin or the sigil binary itself.
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(engine, &path) };
            match cached {
                Ok(component) => return Ok((component, true)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "discarding unusable cache entry")
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(error) = write_atomically(&path, &compiled) {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled component");
        }
        // SAFETY: these bytes were produced by `precompile_component` on this engine just now.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, false))
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut digest = Sha256::new();
        digest.update(engine_hash.finish().to_le_bytes());
        digest.update(bytes);
        let name: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(format!("{name}.cwasm"))
    }
}

/// Writes a cache entry, private to the user like the rest of the data directory: compiled
/// code that `deserialize_file` trusts must not be writable, or readable, by anyone else.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        sigil_runtime::files::create_private_dir_all(parent)?;
    }
    sigil_runtime::files::write_private_atomically(path, bytes)
}
