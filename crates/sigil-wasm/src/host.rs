//! The host side of one call: the store's state, and every import a plugin may use.
//!
//! Each import that reaches outside the plugin goes through [`Call`], which asks the enforcer
//! and records the decision. Outgoing HTTP is checked in [`HttpHooks::send_request`], where
//! secrets are injected: the plugin only ever holds a placeholder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use sigil_runtime::{BoundSecret, Call, OutboundRequest, ToolError};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::sigil::plugin::{config, kv, log, secrets, types};

/// Secret placeholders handed out during one call, mapped to their values.
pub(crate) type Placeholders = Arc<Mutex<HashMap<String, BoundSecret>>>;

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
    /// The destination is decided by [`sigil_egress::decide`] (the one implementation
    /// every tier uses): `net.connect:<host>:<port>` on the canonical host before any name is
    /// resolved, then each resolved address (its class, Sigil's own listeners), each audited;
    /// the connection goes to exactly the address decided. Only then are placeholders in
    /// header values replaced by secret values, each only where its secret is bound (a
    /// refusal is audited); a placeholder this call did not issue makes the request fail.
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
            let destination = match sigil_egress::HttpDestination::of(request.uri()) {
                Ok(destination) => destination,
                Err(error) => {
                    // No destination, so no capability to decide; still a recorded deny.
                    let asked = format!("net.connect:{}", request.uri());
                    call.refuse_malformed(&asked, error.reason()).await;
                    return Err(Error::HttpRequestUriInvalid);
                }
            };
            let connect_timeout = options
                .and_then(|o| o.connect_timeout)
                .unwrap_or(CONNECT_TIMEOUT);
            let first_byte_timeout = options
                .and_then(|o| o.first_byte_timeout)
                .unwrap_or(FIRST_BYTE_TIMEOUT);
            let refused = |error: sigil_egress::ConnectError| {
                tracing::debug!(plugin = %call.plugin(), %error, "outgoing HTTP refused or failed");
                match error {
                    sigil_egress::ConnectError::Denied { .. } => Error::HttpRequestDenied,
                    sigil_egress::ConnectError::Timeout { .. } => Error::ConnectionTimeout,
                    sigil_egress::ConnectError::Resolve { .. } => Error::DestinationNotFound,
                    sigil_egress::ConnectError::Tls { .. } => Error::TlsProtocolError,
                    _ => Error::ConnectionRefused,
                }
            };
            let decided = sigil_egress::decide(
                &destination.host,
                destination.port,
                &CallGate(&call),
                connect_timeout,
            )
            .await
            .map_err(refused)?;
            let host = destination.host.to_string();
            let target = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let to = OutboundRequest {
                host: &host,
                port: destination.port,
                path: &target,
            };
            let mut headers = std::mem::take(request.headers_mut());
            let injected = inject_secrets(&call, &to, &mut headers, &placeholders).await;
            *request.headers_mut() = headers;
            injected?;
            let stream = sigil_egress::connect_http(decided, &destination, connect_timeout)
                .await
                .map_err(refused)?;
            // The origin-form target: scheme and authority went into the decision and the Host
            // header, never onto the wire.
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .parse::<http::Uri>()
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            *request.uri_mut() = path;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            let mut connection = Box::pin(connection);
            let sending = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
            tokio::pin!(sending);
            // The connection is driven while the response is awaited, and afterwards by the
            // returned future, which wasmtime runs for as long as the body is read.
            let mut finished = None;
            let response = loop {
                tokio::select! {
                    biased;
                    sent = &mut sending => break sent.map_err(|_| Error::ConnectionReadTimeout)??,
                    ended = &mut connection, if finished.is_none() => finished = Some(ended),
                }
            };
            let io = async move {
                match finished {
                    Some(ended) => ended.map_err(Error::from),
                    None => connection.await.map_err(Error::from),
                }
            };
            Ok((
                response.map(|body| body.map_err(Error::from).boxed_unsync()),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

/// How long connecting (resolution and decisions included) may take when the guest sets no
/// limit of its own; the call's deadline ends it sooner.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long the response head may take when the guest sets no limit of its own.
const FIRST_BYTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The decisions of one call's outgoing request, made by its [`Call`] (enforcer and audit).
struct CallGate<'a>(&'a Call);

/// The rule of a denial (the destination is named by whoever reports it).
fn rule_text(error: ToolError) -> String {
    match error {
        ToolError::Denied { rule, .. } => rule,
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl sigil_egress::Gate for CallGate<'_> {
    async fn host(&self, capability: &str) -> Result<(), String> {
        self.0
            .authorize(capability)
            .await
            .map(|_| ())
            .map_err(rule_text)
    }

    async fn address(
        &self,
        address: &str,
        host: &str,
        reach: sigil_egress::Reach<'_>,
    ) -> Result<(), String> {
        self.0
            .authorize_destination(address, host, reach)
            .await
            .map_err(rule_text)
    }
}

/// Replaces the placeholders this call was issued in `headers`' values, each only in a request
/// to a destination (and header) its secret is bound to; a refusal is recorded as a deny of
/// the secret for this call.
async fn inject_secrets(
    call: &Call,
    to: &OutboundRequest<'_>,
    headers: &mut http::HeaderMap,
    placeholders: &Placeholders,
) -> wasmtime_wasi_http::Result<()> {
    use wasmtime_wasi_http::Error;
    let mut refused: Option<(BoundSecret, String)> = None;
    let replaced = {
        let issued = placeholders
            .lock()
            .map_err(|_| Error::InternalError(None))?;
        sigil_egress::replace_placeholders(headers, PLACEHOLDER_PREFIX, |name, placeholder| {
            let secret = issued.get(placeholder).ok_or_else(|| {
                format!("header `{name}` holds a secret placeholder that was not issued")
            })?;
            match secret.value_for(to, name.as_str()) {
                Ok(value) => Ok(value.to_string()),
                Err(reason) => {
                    refused = Some((secret.clone(), reason.clone()));
                    Err(reason)
                }
            }
        })
    };
    if replaced.is_err() {
        if let Some((secret, reason)) = refused {
            let error = call.refuse_secret(&secret, reason).await;
            tracing::warn!(plugin = call.plugin(), call_id = call.call_id(), %error, "secret not injected");
        }
        return Err(Error::HttpRequestDenied);
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
