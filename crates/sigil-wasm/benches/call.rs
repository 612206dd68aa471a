//! The cost of calling a WebAssembly tool, with a baseline in the same run.
//!
//! - `wasm_call/runtime_invoke`: `Runtime::invoke` of `hello/greet` on a warm plugin: the
//!   enforcer's decision (a durable audit record), input schema validation, a fresh store and
//!   instance, the call, output checks and the durable outcome record.
//! - `wasm_call/bare_wasmtime`: the same component called with wasmtime alone, on the same
//!   engine: a fresh store and instance from an `InstancePre` prepared once, and the call. WASI
//!   p2 is linked and the `sigil:plugin` imports are stubs.
//! - `wasm_call/audit_append`: one durable `AuditLog::append` to the runtime's own log, to show
//!   how much of a call is the audit commit (a call makes two).
//! - `wasm_call/runtime_invoke_tmpfs`, `wasm_call/audit_append_tmpfs`: the same, with a second
//!   data directory on a tmpfs (`/dev/shm`, when present), where fsync returns at once: the
//!   cost of the call and of the append besides waiting for the disk. Durability is unchanged
//!   in the code; only the file system differs.
//! - `wasm_call/runtime_invoke_process`, `wasm_call/audit_append_process`: the same on disk
//!   with `[audit] durability = "process"`: records are committed to SQLite's write-ahead log
//!   without waiting for fsync (they survive a crash of the process, not of the machine).
//! - `wasm_call/concurrent_16_disk`, `wasm_call/concurrent_16_process`: 16 callers of
//!   `Runtime::invoke` at once on a two-thread runtime, each starting its next call when its
//!   last returns; the time is per call, so calls per second are its inverse. Under
//!   `durability = "disk"` concurrent calls share their fsyncs (group commit).
//! - After the measurements, the mean time of each stage of the call path for 2,000 calls with
//!   `durability = "process"` is printed (`stage_timing`).
//! - `wasm_load/compile`: `WasmTier::load_timed` with an empty cache directory (compiles).
//! - `wasm_load/cached`: `WasmTier::load_timed` with the precompiled component in the cache.
//!
//! Both loads include `describe`: one instantiation and call, on a thread of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use sigil_audit::{NewRecord, Verdict};
use sigil_policy::CapabilitySet;
use sigil_runtime::{Home, LoadRequest, Runtime};
use sigil_wasm::WasmTier;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod bare {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tool-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use bare::exports::sigil::plugin::tool::CallInfo;
use bare::sigil::plugin::{config, kv, log, secrets, types};
use bare::{ToolPlugin, ToolPluginPre};

const MANIFEST: &str = r#"
id = "hello"
name = "Hello"
version = "0.1.0"
description = "Greets someone by name."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "plugin.wasm"
"#;

const CONFIG: &str = r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]
"#;

const INPUT: &str = r#"{"name":"ada"}"#;

/// A data directory under `parent` with the hello component installed as plugin `hello`,
/// opened by a runtime whose wasm tier is `tier`.
struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    runtime: Arc<Runtime>,
}

fn world(parent: &Path, tier: &Arc<WasmTier>, config: &str) -> World {
    let dir = tempfile::tempdir_in(parent).unwrap();
    let home = dir.path().canonicalize().unwrap().join("home");
    let plugin = home.join("plugins/hello");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(sigil_guests::HELLO, plugin.join("plugin.wasm")).unwrap();
    std::fs::write(plugin.join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(home.join("sigil.toml"), config).unwrap();
    let runtime = Arc::new(
        Runtime::open_with(
            Home::resolve(Some(&home)).unwrap(),
            Vec::new(),
            vec![(sigil_manifest::Tier::Wasm, tier.clone())],
        )
        .unwrap(),
    );
    World {
        _dir: dir,
        home,
        runtime,
    }
}

/// The store state of the baseline: WASI with nothing granted, and stub host imports.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for Bare {}

impl log::Host for Bare {
    async fn log(&mut self, _level: log::Level, _message: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl kv::Host for Bare {
    async fn get(&mut self, _key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        Ok(Ok(None))
    }

    async fn set(&mut self, _key: String, _value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        Ok(Err("no kv in the baseline".into()))
    }

    async fn delete(&mut self, _key: String) -> wasmtime::Result<Result<(), String>> {
        Ok(Err("no kv in the baseline".into()))
    }
}

impl config::Host for Bare {
    async fn get(&mut self) -> wasmtime::Result<String> {
        Ok("{}".into())
    }
}

impl secrets::Host for Bare {
    async fn reference(&mut self, _name: String) -> wasmtime::Result<Result<String, String>> {
        Ok(Err("no secrets in the baseline".into()))
    }
}

fn bare_pre(engine: &Engine) -> ToolPluginPre<Bare> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    ToolPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
    let component = wasmtime::component::Component::from_file(engine, sigil_guests::HELLO).unwrap();
    ToolPluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}

/// A fresh store and instance, and one call of `greet`.
async fn bare_call(engine: &Engine, pre: &ToolPluginPre<Bare>, info: &CallInfo) -> String {
    let state = Bare {
        wasi: WasiCtxBuilder::new().build(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(engine, state);
    // The engine meters fuel and interrupts on epochs; the baseline wants neither to fire.
    store.set_fuel(u64::MAX).unwrap();
    store.set_epoch_deadline(1 << 32);
    let instance = pre.instantiate_async(&mut store).await.unwrap();
    instance
        .sigil_plugin_tool()
        .call_invoke(&mut store, info, &INPUT.to_string())
        .await
        .unwrap()
        .unwrap()
}

fn calls(
    c: &mut Criterion,
    tier: &WasmTier,
    disk: &World,
    process: &World,
    memory: Option<&World>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let actor = disk.runtime.local_actor(None, None);
    let input = json!({ "name": "ada" });
    let expected = json!({ "greeting": "hello, ada" });
    for w in [disk, process].into_iter().chain(memory) {
        let invoked = rt
            .block_on(w.runtime.invoke(&actor, "hello/greet", input.clone()))
            .unwrap();
        assert_eq!(invoked.output, expected);
    }

    let engine = tier.engine();
    let pre = bare_pre(engine);
    let info = CallInfo {
        call_id: "bench".into(),
        tool: "greet".into(),
        user: Some("alice".into()),
        workspace: Some("home".into()),
    };
    let output = rt.block_on(bare_call(engine, &pre, &info));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&output).unwrap(),
        expected
    );

    let invoke = |w: &World| {
        rt.block_on(
            w.runtime
                .invoke(&actor, "hello/greet", black_box(input.clone())),
        )
        .unwrap()
    };
    let append = |w: &World| {
        let record = NewRecord::decision(Verdict::Allow, "users.alice.permissions: *")
            .with_actor(actor.clone())
            .with_plugin("hello", Some("0.1.0"))
            .with_capability("tool.hello.greet")
            .with_call_id("bench");
        w.runtime.audit().append(black_box(record)).unwrap()
    };

    let mut group = c.benchmark_group("wasm_call");
    group.bench_function("runtime_invoke", |b| b.iter(|| invoke(disk)));
    group.bench_function("bare_wasmtime", |b| {
        b.iter(|| rt.block_on(bare_call(engine, &pre, black_box(&info))))
    });
    group.bench_function("audit_append", |b| b.iter(|| append(disk)));
    group.bench_function("runtime_invoke_process", |b| b.iter(|| invoke(process)));
    group.bench_function("audit_append_process", |b| b.iter(|| append(process)));
    // The same two lines with the data directory in memory, where fsync returns at once:
    // what the call and the append cost besides waiting for the disk.
    if let Some(memory) = memory {
        group.bench_function("runtime_invoke_tmpfs", |b| b.iter(|| invoke(memory)));
        group.bench_function("audit_append_tmpfs", |b| b.iter(|| append(memory)));
    }
    let concurrent = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (name, w) in [
        ("concurrent_16_disk", disk),
        ("concurrent_16_process", process),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| concurrent.block_on(concurrently(w, iters, CALLERS)))
        });
    }
    group.finish();

    sigil_runtime::stage_timing::enable();
    let _ = sigil_runtime::stage_timing::take();
    for _ in 0..2_000 {
        invoke(process);
    }
    eprintln!("stage means over 2,000 warm wasm calls, durability = \"process\":");
    for (stage, mean) in sigil_runtime::stage_timing::take() {
        eprintln!(
            "  {:<15} {:>9.2} µs",
            stage.name(),
            mean.as_secs_f64() * 1e6
        );
    }
}

/// How many callers the concurrent lines run.
const CALLERS: u64 = 16;

/// Runs `iters` calls split over `callers` tasks, each calling again as soon as its last call
/// returns; returns the time they took together.
async fn concurrently(w: &World, iters: u64, callers: u64) -> Duration {
    let runtime = w.runtime.clone();
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let runtime = runtime.clone();
            let share = iters / callers + u64::from(i < iters % callers);
            tokio::spawn(async move {
                let actor = runtime.local_actor(None, None);
                for _ in 0..share {
                    runtime
                        .invoke(&actor, "hello/greet", json!({ "name": "ada" }))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Runs `iters` loads, timing only `load_timed` itself: `prepare` (clearing or checking the
/// cache) and dropping the loaded plugin happen outside the measurement.
fn timed_loads(
    tier: &WasmTier,
    request: &LoadRequest<'_>,
    iters: u64,
    prepare: impl Fn(),
    expect_cached: bool,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        prepare();
        let started = Instant::now();
        let loaded = tier.load_timed(black_box(request)).unwrap();
        total += started.elapsed();
        assert_eq!(loaded.cached, expect_cached, "cache state");
        drop(loaded);
    }
    total
}

fn loads(c: &mut Criterion, tier: &WasmTier, cache: &Path, w: &World) {
    let dir = w.home.join("plugins/hello");
    let manifest = sigil_manifest::load_dir(&dir).unwrap();
    let none = CapabilitySet::new(Vec::new());
    let request = LoadRequest {
        manifest: &manifest,
        dir: &dir,
        grants: &none,
        consent: &none,
        enforcer: w.runtime.enforcer(),
        signed: None,
    };
    let clear = || {
        if cache.exists() {
            std::fs::remove_dir_all(cache).unwrap();
        }
    };

    let mut group = c.benchmark_group("wasm_load");
    // A compile takes long enough that ten samples are all the measurement time allows.
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter_custom(|iters| timed_loads(tier, &request, iters, clear, false))
    });
    group.finish();

    // Fill the cache once; every measured load then deserializes from it.
    clear();
    assert!(!tier.load_timed(&request).unwrap().cached);
    let mut group = c.benchmark_group("wasm_load");
    group.bench_function("cached", |b| {
        b.iter_custom(|iters| timed_loads(tier, &request, iters, || (), true))
    });
    group.finish();
}

/// A tmpfs where the runtime can keep a second data directory, when the machine has one.
const MEMORY_FS: &str = "/dev/shm";

fn benches(c: &mut Criterion) {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("wasm");
    let tier = Arc::new(WasmTier::new(cache.clone()).unwrap());
    let disk = world(&std::env::temp_dir(), &tier, CONFIG);
    let process_config = format!("{CONFIG}\n[audit]\ndurability = \"process\"\n");
    let process = world(&std::env::temp_dir(), &tier, &process_config);
    let memory = Path::new(MEMORY_FS)
        .is_dir()
        .then(|| world(Path::new(MEMORY_FS), &tier, CONFIG));
    calls(c, &tier, &disk, &process, memory.as_ref());
    loads(c, &tier, &cache, &disk);
}

criterion_group!(call, benches);
criterion_main!(call);
