//! The host side of one call: the store's state, and every import a plugin may use.
//!
//! Each import that reaches outside the plugin goes through [`Call`], which asks the enforcer
//! and records the decision. Outgoing HTTP is checked in [`HttpHooks::send_request`], where
//! secrets are injected: the plugin only ever holds a placeholder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use sigil_runtime::{Call, SecretValue, ToolError};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::sigil::plugin::{config, kv, log, secrets, types};

/// Secret placeholders handed out during one call, mapped to their values.
pub(crate) type Placeholders = Arc<Mutex<HashMap<String, SecretValue>>>;

/// The prefix of every secret placeholder.
pub(crate) const PLACEHOLDER_PREFIX: &str = "sigil-secret-";

/// The state of one store: one call, or the one-off `describe` at load.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: HttpHooks,
    /// `None` while describing at load time: no host calls are possible then.
    pub(crate) call: Option<Call>,
    pub(crate) placeholders: Placeholders,
    pub(crate) plugin: String,
    pub(crate) memory_limit: usize,
    /// Set when the guest hit its memory limit, to name the limit in the error.
    pub(crate) memory_exceeded: bool,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB exceeded (execution.limits.memory_mib)",
                self.memory_limit >> 20
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        const MAX_TABLE_ELEMENTS: usize = 100_000;
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::format_err!(
                "table limit of {MAX_TABLE_ELEMENTS} elements exceeded"
            ));
        }
        Ok(true)
    }
}

impl HostState {
    fn call(&self) -> wasmtime::Result<&Call> {
        self.call.as_ref().ok_or_else(|| {
            wasmtime::format_err!(
                "host calls are not available while the plugin is being described"
            )
        })
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let call = self
            .call
            .as_ref()
            .map(|c| c.call_id().to_string())
            .unwrap_or_default();
        let plugin = self.plugin.as_str();
        // Guest text is untrusted: bounded, and logged as a field, never as a format string.
        let message: String = message.chars().take(4096).collect();
        match level {
            log::Level::Trace => tracing::trace!(plugin, call, message),
            log::Level::Debug => tracing::debug!(plugin, call, message),
            log::Level::Info => tracing::info!(plugin, call, message),
            log::Level::Warn => tracing::warn!(plugin, call, message),
            log::Level::Error => tracing::error!(plugin, call, message),
        }
        Ok(())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        Ok(self.call()?.kv_get(&key).await.map_err(|e| e.to_string()))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        Ok(self
            .call()?
            .kv_set(&key, &value)
            .await
            .map_err(|e| e.to_string()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self
            .call()?
            .kv_delete(&key)
            .await
            .map_err(|e| e.to_string()))
    }
}

impl config::Host for HostState {
    async fn get(&mut self) -> wasmtime::Result<String> {
        Ok(self.call()?.config().to_string())
    }
}

impl secrets::Host for HostState {
    async fn reference(&mut self, name: String) -> wasmtime::Result<Result<String, String>> {
        let value = match self.call()?.secret(&name).await {
            Ok(value) => value,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let placeholder = format!("{PLACEHOLDER_PREFIX}{}", uuid::Uuid::new_v4().simple());
        self.placeholders
            .lock()
            .map_err(|_| wasmtime::format_err!("secret placeholders lock poisoned"))?
            .insert(placeholder.clone(), value);
        Ok(Ok(placeholder))
    }
}

/// The outgoing-HTTP hook of one call.
pub(crate) struct HttpHooks {
    pub(crate) call: Option<Call>,
    pub(crate) placeholders: Placeholders,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    /// # Security
    /// Every request is checked against `net.connect:<host>:<port>` (audited) before anything
    /// leaves the host. Only then are placeholders in header values replaced by secret
    /// values; a placeholder this call did not issue makes the request fail.
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let call = self.call.clone();
        let placeholders = self.placeholders.clone();
        Box::new(async move {
            use wasmtime_wasi_http::Error;
            let call = call.ok_or(Error::HttpRequestDenied)?;
            let mut request = request;
            let uri = request.uri();
            let Some(host) = uri.host().map(str::to_string) else {
                // No destination, so no capability to decide; still a recorded deny.
                call.refuse_malformed(&format!("net.connect:{uri}"), "the url has no host")
                    .await;
                return Err(Error::HttpRequestUriInvalid);
            };
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("http") => 80,
                _ => 443,
            });
            call.authorize(&format!("net.connect:{host}:{port}"))
                .await
                .map_err(|_| Error::HttpRequestDenied)?;
            inject_secrets(request.headers_mut(), &placeholders)?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

fn inject_secrets(
    headers: &mut http::HeaderMap,
    placeholders: &Placeholders,
) -> wasmtime_wasi_http::Result<()> {
    use wasmtime_wasi_http::Error;
    let issued = placeholders
        .lock()
        .map_err(|_| Error::InternalError(None))?;
    for value in headers.values_mut() {
        let Ok(text) = value.to_str() else { continue };
        if !text.contains(PLACEHOLDER_PREFIX) {
            continue;
        }
        let mut replaced = text.to_string();
        while let Some(at) = replaced.find(PLACEHOLDER_PREFIX) {
            let end = replaced[at..]
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .map_or(replaced.len(), |n| at + n);
            let secret = issued
                .get(&replaced[at..end])
                .ok_or(Error::HttpRequestDenied)?;
            replaced.replace_range(at..end, secret.expose());
        }
        let mut header =
            http::HeaderValue::from_str(&replaced).map_err(|_| Error::HttpRequestDenied)?;
        header.set_sensitive(true);
        *value = header;
    }
    Ok(())
}

/// Turns a failed call into the error the runtime reports, naming the limit that stopped it.
pub(crate) fn describe_failure(
    error: wasmtime::Error,
    memory_exceeded: bool,
    fuel: Option<u64>,
) -> ToolError {
    if memory_exceeded {
        return ToolError::Failed(format!("{error:#}"));
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => ToolError::Failed(format!(
            "fuel limit of {} exhausted (execution.limits.fuel)",
            fuel.unwrap_or_default()
        )),
        Some(wasmtime::Trap::Interrupt) => ToolError::Failed("interrupted at its deadline".into()),
        Some(trap) => ToolError::Failed(format!("the plugin trapped: {trap}")),
        None => ToolError::Failed(format!("the plugin failed: {error:#}")),
    }
}
