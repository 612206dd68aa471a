//! Sigil's WebAssembly tier: plugins as WebAssembly components on wasmtime.
//!
//! One [`WasmTier`] per process holds the engine (pooling allocator, epoch interruption,
//! fuel), the epoch ticker and the precompiled-component cache. Loading a plugin compiles its
//! component (or loads it from the cache), links only the interfaces its grants call for, and
//! prepares an `InstancePre`; every call then gets a fresh store and instance.
//!
//! # Security
//! - Network access is linked only when granted: a component importing `wasi:http` loads only
//!   if its manifest requests, and the operator consented to, a `net.*` capability; otherwise
//!   it is refused at load with the missing grant named. `sigil:plugin/kv` and
//!   `sigil:plugin/secrets` are always linked because every one of their calls is an
//!   enforcer decision (`kv.read:<key>`, `kv.write:<key>`, `secret.use:<name>`): without the
//!   grant the plugin gets an audited denial.
//! - WASI p2 has no ambient authority: no inherited environment, arguments or stdio; no
//!   sockets (TCP, UDP and name lookup off, every address denied); filesystem preopens only for
//!   whole directories granted by `fs.read:/dir/**` or `fs.write:/dir/**`, resolved once at
//!   load and held open (`sigil_runtime::granted_dirs`): a call's preopen is the held handle,
//!   never the grant's path again. Each is checked per call: the grant must still lead to the
//!   held directory (a symlink swapped in is refused and audited, never followed), the
//!   directory's real path must be allowed for the caller (an audited decision), and it is
//!   withheld if any deny carves into it. Read-only grants preopen read-only.
//! - A verified plugin's component bytes are checked against its signed digest list as they
//!   are read, so what is compiled is what was signed.
//! - Outgoing HTTP is checked in the host's send hook against `net.connect:<host>:<port>`
//!   (audited); secrets are injected there, replacing placeholders the plugin got from
//!   `secrets.reference`. The plugin never holds a secret's value.
//! - Limits: the runtime's deadline cancels a call even mid-loop (the guest yields every
//!   epoch tick), memory is capped per plugin (`memory_mib`, default 128), fuel is metered
//!   when the manifest sets `fuel`, and a trap ends only that call: the next call gets a fresh
//!   instance.

mod engine;
mod host;
mod plugin;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tool-plugin-http",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_runtime::{LoadRequest, TierLoader, ToolPlugin};
use wasmtime::Engine;

pub use plugin::DEFAULT_MEMORY_MIB;

/// The WebAssembly tier.
#[derive(Debug)]
pub struct WasmTier {
    engine: Engine,
    cache: engine::ComponentCache,
    _ticker: engine::EpochTicker,
}

/// A plugin loaded by [`WasmTier::load_timed`], with how the load went.
#[derive(Debug)]
pub struct Loaded {
    /// The plugin, ready for calls.
    pub plugin: Arc<dyn ToolPlugin>,
    /// Whether the compiled component came from the cache.
    pub cached: bool,
    /// How long loading took, compilation included.
    pub elapsed: Duration,
}

impl WasmTier {
    /// The tier, caching compiled components in `cache_dir` (created when first needed).
    ///
    /// # Errors
    /// When the engine cannot be created (for example, the pooling allocator cannot reserve
    /// its address space).
    pub fn new(cache_dir: PathBuf) -> Result<WasmTier, String> {
        let engine =
            engine::engine().map_err(|e| format!("cannot create the wasm engine: {e:#}"))?;
        let ticker = engine::EpochTicker::start(&engine);
        Ok(WasmTier {
            engine,
            cache: engine::ComponentCache::new(cache_dir),
            _ticker: ticker,
        })
    }

    /// The shared engine (for benchmarks comparing against bare wasmtime).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// [`TierLoader::load`], reporting whether the cache was used and how long it took.
    ///
    /// # Errors
    /// As for [`TierLoader::load`].
    pub fn load_timed(&self, request: &LoadRequest<'_>) -> Result<Loaded, String> {
        let started = Instant::now();
        let manifest = request.manifest;
        let Some(entry) = &manifest.execution().entry else {
            return Err("execution.entry is missing".into());
        };
        let path = request.dir.join(entry);
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read component {}: {e}; build it with `sigil plugin build {}`",
                path.display(),
                request.dir.display()
            )
        })?;
        // What is compiled is these bytes, read once: for a verified plugin, they must be the
        // signed ones, whatever the directory held when the runtime checked it.
        if let Some(signed) = request.signed {
            signed.check_file(entry, &bytes)?;
        }
        let (component, cached) = self.cache.load(&self.engine, &bytes).map_err(|e| {
            format!(
                "{} is not a valid WebAssembly component: {e:#}",
                path.display()
            )
        })?;
        let imports = plugin::imports_for(request.grants, request.consent);
        plugin::check_imports(&self.engine, &component, &imports)?;
        let linker =
            plugin::linker(&self.engine, &imports).map_err(|e| format!("cannot link: {e:#}"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot link {}: {e:#}", path.display()))?;
        let pre = bindings::ToolPluginHttpPre::new(instance_pre).map_err(|e| {
            format!(
                "{} does not export sigil:plugin/tool@0.1.0: {e:#}",
                path.display()
            )
        })?;
        let view = sigil_runtime::granted_dirs(request.grants);
        for reason in view.refused {
            tracing::warn!(plugin = %manifest.id(), "{reason}; it is not preopened");
        }
        let limits = &manifest.execution().limits;
        let mut loaded = plugin::WasmPlugin {
            id: manifest.id().to_string(),
            engine: self.engine.clone(),
            pre,
            tools: Vec::new(),
            preopens: view.dirs,
            env: manifest
                .execution()
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            memory_bytes: plugin::memory_bytes(limits.memory_mib),
            fuel: limits.fuel,
        };
        loaded.tools = block_on(loaded.describe())?;
        Ok(Loaded {
            plugin: Arc::new(loaded),
            cached,
            elapsed: started.elapsed(),
        })
    }
}

impl TierLoader for WasmTier {
    fn load(&self, request: &LoadRequest<'_>) -> Result<Arc<dyn ToolPlugin>, String> {
        let loaded = self.load_timed(request)?;
        tracing::info!(
            plugin = %request.manifest.id(),
            cached = loaded.cached,
            ms = loaded.elapsed.as_millis() as u64,
            "wasm plugin loaded"
        );
        Ok(loaded.plugin)
    }
}

/// Runs the load-time `describe` call. Loading is synchronous (it happens while the runtime
/// opens) and may itself run inside an async runtime, so the call gets a thread of its own.
fn block_on<T: Send>(future: impl Future<Output = Result<T, String>> + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| format!("cannot start a runtime to describe the plugin: {e}"))?;
                runtime.block_on(future)
            })
            .join()
            .unwrap_or_else(|_| Err("describing the plugin panicked".to_string()))
    })
}
