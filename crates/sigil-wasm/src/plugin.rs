//! One WebAssembly plugin: its prepared instance, its tools, and how a call runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sigil_policy::CapabilitySet;
use sigil_runtime::{Call, GrantedDir, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::bindings::exports::sigil::plugin::tool as guest;
use crate::bindings::sigil::plugin::{config, kv, log, secrets, types};
use crate::bindings::{ToolPluginHttp, ToolPluginHttpPre};
use crate::engine::MAX_MEMORY_BYTES;
use crate::host::{HostState, HttpHooks, describe_failure};

/// Memory a plugin gets when its manifest sets no `memory_mib`.
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// How much of a plugin's stdout and stderr is kept, per call, for the log.
const OUTPUT_CAPTURE_BYTES: usize = 64 * 1024;

/// What one plugin may import beyond the always-present interfaces, decided from its grants
/// and consent at load.
///
/// `log`, `config`, `kv` and `secrets` are always linked: the last two reach nothing without
/// an enforcer decision per call (`kv.read:<key>`, `secret.use:<name>`), so a plugin without
/// the grant gets an audited denial. `wasi:http` is linked only for a plugin granted
/// `net.*`: without it, the component does not load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Imports {
    pub(crate) http: bool,
}

/// A loaded WebAssembly plugin.
pub(crate) struct WasmPlugin {
    pub(crate) id: String,
    pub(crate) engine: Engine,
    pub(crate) pre: ToolPluginHttpPre<HostState>,
    pub(crate) tools: Vec<ToolDescriptor>,
    /// The directories granted whole, held since load (`sigil_runtime::granted_dirs`).
    pub(crate) preopens: Vec<GrantedDir>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) memory_bytes: usize,
    pub(crate) fuel: Option<u64>,
}

impl std::fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("id", &self.id)
            .field("tools", &self.tools.len())
            .field(
                "preopens",
                &self
                    .preopens
                    .iter()
                    .map(GrantedDir::path)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Decides which interfaces to link: nothing that was not granted.
pub(crate) fn imports_for(grants: &CapabilitySet, consent: &CapabilitySet) -> Imports {
    let net = |set: &CapabilitySet| {
        set.patterns().iter().any(|p| {
            let namespace = p.as_str().split(['.', ':']).next().unwrap_or_default();
            namespace == "net" || namespace == "*"
        })
    };
    Imports {
        http: net(grants) && net(consent),
    }
}

pub(crate) fn linker(engine: &Engine, imports: &Imports) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // WASI p2 with no ambient authority: the context decides what each call may see.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    config::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    kv::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    if imports.http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    }
    Ok(linker)
}

/// Checks the component's imports against what was linked, so a refusal names the missing
/// grant rather than an internal symbol.
pub(crate) fn check_imports(
    engine: &Engine,
    component: &Component,
    imports: &Imports,
) -> Result<(), String> {
    for (name, _) in component.component_type().imports(engine) {
        let missing = if name.starts_with("wasi:http/outgoing-handler@") && !imports.http {
            Some("a `net.connect:*` capability")
        } else {
            None
        };
        if let Some(missing) = missing {
            return Err(format!(
                "the component imports `{name}`, which needs {missing} both requested in the manifest and consented to by the operator"
            ));
        }
    }
    Ok(())
}

impl WasmPlugin {
    /// A store for one call (or, with no call, for `describe`), with its limits set.
    fn store(
        &self,
        call: Option<&Call>,
        preopens: &[&GrantedDir],
        stdout: &MemoryOutputPipe,
        stderr: &MemoryOutputPipe,
    ) -> Result<Store<HostState>, ToolError> {
        let mut wasi = WasiCtxBuilder::new();
        // No ambient authority: no inherited environment, arguments, stdio or sockets.
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        for (key, value) in &self.env {
            wasi.env(key, value);
        }
        for preopen in preopens {
            let perms = if preopen.write() {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            // The handle held since load, never the grant's path: wasmtime-wasi takes only a
            // path, so it gets the handle's own (`/proc/self/fd/N`), checked to be the held
            // directory. The guest sees it at its real path.
            let cannot = |e: String| {
                ToolError::Failed(format!(
                    "cannot preopen the granted directory {}: {e}",
                    preopen.path().display()
                ))
            };
            let handle = preopen.held().handle_path().map_err(cannot)?;
            let guest = preopen.path().to_str().ok_or_else(|| {
                cannot("its path is not UTF-8, which WASI cannot name".to_string())
            })?;
            wasi.preopened_dir(&handle, guest, perms)
                .map_err(|e| cannot(e.to_string()))?;
        }
        let placeholders = Arc::new(Mutex::new(HashMap::new()));
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: HttpHooks {
                call: call.cloned(),
                placeholders: placeholders.clone(),
            },
            call: call.cloned(),
            placeholders,
            plugin: self.id.clone(),
            memory_limit: self.memory_bytes,
            memory_exceeded: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        // Yield to the async runtime every tick, so the runtime's deadline can cancel a
        // guest that never makes a host call.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
            .set_fuel(self.fuel.unwrap_or(u64::MAX))
            .map_err(|e| ToolError::Failed(format!("cannot set fuel: {e}")))?;
        Ok(store)
    }

    /// The plugin's tools, asked of a fresh instance at load.
    pub(crate) async fn describe(&self) -> Result<Vec<ToolDescriptor>, String> {
        let (stdout, stderr) = (
            MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES),
            MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES),
        );
        let mut store = self
            .store(None, &[], &stdout, &stderr)
            .map_err(|e| e.to_string())?;
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| format!("cannot instantiate: {e:#}"))?;
        let described = instance
            .sigil_plugin_tool()
            .call_describe(&mut store)
            .await
            .map_err(|e| {
                format!(
                    "describe failed: {}",
                    describe_failure(e, store.data().memory_exceeded, self.fuel)
                )
            })?;
        described.into_iter().map(descriptor).collect()
    }

    /// Runs one export in a fresh instance, checking the call's preopens first.
    async fn run(&self, call: &Call, op: Op<'_>) -> Result<Option<String>, ToolError> {
        let preopens = self.allowed_preopens(call).await;
        let (stdout, stderr) = (
            MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES),
            MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES),
        );
        let mut store = self.store(Some(call), &preopens, &stdout, &stderr)?;
        let result = self.run_in(&mut store, call, op).await;
        self.log_output(call, &stdout, &stderr);
        match result {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(describe_failure(
                error,
                store.data().memory_exceeded,
                self.fuel,
            )),
        }
    }

    async fn run_in(
        &self,
        store: &mut Store<HostState>,
        call: &Call,
        op: Op<'_>,
    ) -> wasmtime::Result<Result<Option<String>, ToolError>> {
        let instance: ToolPluginHttp = self.pre.instantiate_async(&mut *store).await?;
        let tool = instance.sigil_plugin_tool();
        let info = guest::CallInfo {
            call_id: call.call_id().to_string(),
            tool: call.tool().to_string(),
            user: call.actor().user.clone(),
            workspace: call.actor().workspace.clone(),
        };
        Ok(match op {
            Op::Invoke(input) => tool.call_invoke(&mut *store, &info, input).await?.map(Some),
            Op::ValidatePre(input) => tool
                .call_validate_pre(&mut *store, &info, input)
                .await?
                .map(|()| None),
            Op::ValidatePost(input, output) => tool
                .call_validate_post(&mut *store, &info, input, output)
                .await?
                .map(|()| None),
            Op::Rollback(input, output) => tool
                .call_rollback(&mut *store, &info, input, output)
                .await?
                .map(|()| None),
        }
        .map_err(tool_error))
    }

    /// The preopens this call may have: each directory's grant must still lead to the
    /// directory held since load (a change is refused and recorded), it must be allowed for
    /// this actor at every layer (an audited decision), and no deny may carve into it. A
    /// directory refused is left out; the call goes on without it.
    async fn allowed_preopens(&self, call: &Call) -> Vec<&GrantedDir> {
        let mut allowed = Vec::new();
        for preopen in &self.preopens {
            match preopen.authorize(call).await {
                Ok(()) => allowed.push(preopen),
                Err(error) => {
                    tracing::info!(plugin = %self.id, dir = %preopen.path().display(), %error, "directory not preopened");
                }
            }
        }
        allowed
    }

    fn log_output(&self, call: &Call, stdout: &MemoryOutputPipe, stderr: &MemoryOutputPipe) {
        for (stream, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                tracing::info!(plugin = %self.id, call = call.call_id(), stream, line);
            }
        }
    }
}

enum Op<'a> {
    Invoke(&'a String),
    ValidatePre(&'a String),
    ValidatePost(&'a String, &'a String),
    Rollback(&'a String, Option<&'a String>),
}

fn tool_error(error: types::ToolError) -> ToolError {
    match error {
        types::ToolError::Denied(message) => ToolError::Failed(format!("denied: {message}")),
        types::ToolError::InvalidInput(message) => ToolError::InvalidInput(message),
        types::ToolError::Failed(message) => ToolError::Failed(message),
    }
}

fn descriptor(raw: types::ToolDescriptor) -> Result<ToolDescriptor, String> {
    let schema = |text: &str, what: &str| -> Result<Value, String> {
        serde_json::from_str(text)
            .map_err(|e| format!("tool `{}`: {what} is not JSON: {e}", raw.name))
    };
    Ok(ToolDescriptor {
        name: raw.name.clone(),
        description: raw.description.clone(),
        input_schema: schema(&raw.input_schema, "input schema")?,
        output_schema: raw
            .output_schema
            .as_deref()
            .map(|s| schema(s, "output schema"))
            .transpose()?,
        steps: Steps {
            validate_pre: raw.steps.validate_pre,
            validate_post: raw.steps.validate_post,
            rollback: raw.steps.rollback,
        },
    })
}

fn parse_output(text: &str) -> Result<Value, ToolError> {
    serde_json::from_str(text)
        .map_err(|e| ToolError::Failed(format!("the plugin returned invalid JSON: {e}")))
}

#[async_trait]
impl ToolPlugin for WasmPlugin {
    fn tools(&self) -> Vec<ToolDescriptor> {
        self.tools.clone()
    }

    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError> {
        let input = input.to_string();
        let output = self
            .run(call, Op::Invoke(&input))
            .await?
            .unwrap_or_default();
        parse_output(&output)
    }

    async fn validate_pre(&self, call: &Call, input: &Value) -> Result<(), ToolError> {
        self.run(call, Op::ValidatePre(&input.to_string()))
            .await
            .map(|_| ())
    }

    async fn validate_post(
        &self,
        call: &Call,
        input: &Value,
        output: &Value,
    ) -> Result<(), ToolError> {
        self.run(
            call,
            Op::ValidatePost(&input.to_string(), &output.to_string()),
        )
        .await
        .map(|_| ())
    }

    async fn rollback(
        &self,
        call: &Call,
        input: &Value,
        output: Option<&Value>,
    ) -> Result<(), ToolError> {
        let output = output.map(Value::to_string);
        self.run(call, Op::Rollback(&input.to_string(), output.as_ref()))
            .await
            .map(|_| ())
    }
}

/// The memory limit for a manifest's `memory_mib`, capped by the engine's pool.
pub(crate) fn memory_bytes(memory_mib: Option<u64>) -> usize {
    let mib = memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
    usize::try_from(mib.saturating_mul(1 << 20))
        .unwrap_or(MAX_MEMORY_BYTES)
        .min(MAX_MEMORY_BYTES)
}
