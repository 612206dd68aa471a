//! The host side of a plugin's calls: the calls in flight, the `Host` service the plugin
//! calls back into, and the egress policy of its proxy.
//!
//! Every request names a call id; only calls in flight for this plugin are known, and each
//! host action goes through that call's [`Call`], which asks the enforcer and records the
//! decision, exactly as the WebAssembly tier's imports do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use sigil_runtime::{
    Actor, BoundSecret, Call, Enforcer, OutboundRequest, Refusal, Subject, ToolError,
};
use tonic::{Request, Response, Status};

use crate::proto;
use crate::proto::host_server::Host;

/// The prefix of every secret placeholder.
pub(crate) const PLACEHOLDER_PREFIX: &str = "sigil-secret-";
/// The largest HTTP response body handed back to a plugin.
const MAX_HTTP_BODY: usize = 16 << 20;
/// How long an outgoing HTTP request may take, connection included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One call in flight: its door to the host and the placeholders it was issued.
#[derive(Debug, Clone)]
struct InFlight {
    call: Call,
    placeholders: Arc<Mutex<HashMap<String, BoundSecret>>>,
    /// Pipeline steps of this call now running (validate-pre, invoke, ...).
    steps: usize,
}

/// The calls in flight for one plugin, by call id.
#[derive(Debug)]
pub(crate) struct Calls {
    plugin: String,
    /// Decides what the plugin attempts outside any call (and so for no actor).
    enforcer: Arc<Enforcer>,
    inner: Mutex<HashMap<String, InFlight>>,
}

/// Keeps a call registered while one of its steps runs.
#[derive(Debug)]
pub(crate) struct Registered {
    calls: Arc<Calls>,
    id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.calls.inner.lock()
            && let Some(entry) = inner.get_mut(&self.id)
        {
            entry.steps = entry.steps.saturating_sub(1);
            if entry.steps == 0 {
                inner.remove(&self.id);
            }
        }
    }
}

impl Calls {
    pub(crate) fn new(plugin: &str, enforcer: Arc<Enforcer>) -> Arc<Calls> {
        Arc::new(Calls {
            plugin: plugin.to_string(),
            enforcer,
            inner: Mutex::new(HashMap::new()),
        })
    }

    /// Records a refusal of `capability` outside any call (at a start of the plugin's process),
    /// for no actor.
    pub(crate) async fn refuse(&self, capability: &str, reason: &str) {
        let refusal = Refusal {
            plugin: &self.plugin,
            version: None,
            capability: Some(capability),
            actor: &Actor::default(),
            call_id: None,
            reason,
        };
        self.enforcer.refuse(&refusal).await;
    }

    /// Registers `call` for the duration of one step.
    pub(crate) fn register(self: &Arc<Self>, call: &Call) -> Registered {
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .entry(call.call_id().to_string())
                .or_insert_with(|| InFlight {
                    call: call.clone(),
                    placeholders: Arc::default(),
                    steps: 0,
                })
                .steps += 1;
        }
        Registered {
            calls: self.clone(),
            id: call.call_id().to_string(),
        }
    }

    fn get(&self, id: &str) -> Option<InFlight> {
        self.inner.lock().ok()?.get(id).cloned()
    }

    /// The call a request names, if it is in flight.
    fn lookup(&self, id: &str) -> Result<InFlight, Status> {
        self.get(id).ok_or_else(|| {
            tracing::warn!(plugin = %self.plugin, call = %truncate(id), "host call names no call in flight");
            Status::permission_denied(format!(
                "denied: no call `{}` is in flight for plugin `{}`",
                truncate(id),
                self.plugin
            ))
        })
    }

    /// The call an egress attempt belongs to: the one named by the proxy credentials, else the
    /// only call in flight.
    fn for_egress(&self, named: Option<&str>) -> Result<InFlight, String> {
        if let Some(id) = named {
            return self
                .get(id)
                .ok_or_else(|| format!("no call `{}` is in flight", truncate(id)));
        }
        let inner = self
            .inner
            .lock()
            .map_err(|_| "the call registry is poisoned".to_string())?;
        let mut calls = inner.values();
        match (calls.next(), calls.next()) {
            (Some(only), None) => Ok(only.clone()),
            (None, _) => Err("no call is in flight to attribute the connection to".into()),
            (Some(_), Some(_)) => {
                Err("several calls are in flight: name the call in Proxy-Authorization".into())
            }
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The `Host` service of one plugin.
#[derive(Debug)]
pub(crate) struct HostService {
    pub(crate) calls: Arc<Calls>,
}

fn error_text(error: ToolError) -> String {
    error.to_string()
}

#[tonic::async_trait]
impl Host for HostService {
    async fn log(
        &self,
        request: Request<proto::LogRequest>,
    ) -> Result<Response<proto::LogResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        let plugin = flight.call.plugin();
        let call = flight.call.call_id();
        // Plugin text is untrusted: bounded, and logged as a field, never as a format string.
        let message = sigil_runtime::guest_text::clean(&request.message);
        match proto::LogLevel::try_from(request.level).unwrap_or(proto::LogLevel::Info) {
            proto::LogLevel::Trace => tracing::trace!(plugin, call, message),
            proto::LogLevel::Debug => tracing::debug!(plugin, call, message),
            proto::LogLevel::Unspecified | proto::LogLevel::Info => {
                tracing::info!(plugin, call, message);
            }
            proto::LogLevel::Warn => tracing::warn!(plugin, call, message),
            proto::LogLevel::Error => tracing::error!(plugin, call, message),
        }
        Ok(Response::new(proto::LogResponse {}))
    }

    async fn kv_get(
        &self,
        request: Request<proto::KvGetRequest>,
    ) -> Result<Response<proto::KvGetResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        let reply = match flight.call.kv_get(&request.key).await {
            Ok(value) => proto::KvGetResponse { value, error: None },
            Err(e) => proto::KvGetResponse {
                value: None,
                error: Some(error_text(e)),
            },
        };
        Ok(Response::new(reply))
    }

    async fn kv_set(
        &self,
        request: Request<proto::KvSetRequest>,
    ) -> Result<Response<proto::HostResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        let error = flight
            .call
            .kv_set(&request.key, &request.value)
            .await
            .err()
            .map(error_text);
        Ok(Response::new(proto::HostResponse { error }))
    }

    async fn kv_delete(
        &self,
        request: Request<proto::KvDeleteRequest>,
    ) -> Result<Response<proto::HostResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        let error = flight
            .call
            .kv_delete(&request.key)
            .await
            .err()
            .map(error_text);
        Ok(Response::new(proto::HostResponse { error }))
    }

    async fn config_get(
        &self,
        request: Request<proto::ConfigGetRequest>,
    ) -> Result<Response<proto::ConfigGetResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        Ok(Response::new(proto::ConfigGetResponse {
            config: flight.call.config().to_string(),
        }))
    }

    async fn secret_reference(
        &self,
        request: Request<proto::SecretReferenceRequest>,
    ) -> Result<Response<proto::SecretReferenceResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        let value = match flight.call.secret(&request.name).await {
            Ok(value) => value,
            Err(e) => {
                return Ok(Response::new(proto::SecretReferenceResponse {
                    placeholder: None,
                    error: Some(error_text(e)),
                }));
            }
        };
        let placeholder = format!("{PLACEHOLDER_PREFIX}{}", uuid::Uuid::new_v4().simple());
        flight
            .placeholders
            .lock()
            .map_err(|_| Status::internal("secret placeholders lock poisoned"))?
            .insert(placeholder.clone(), value);
        Ok(Response::new(proto::SecretReferenceResponse {
            placeholder: Some(placeholder),
            error: None,
        }))
    }

    async fn http_send(
        &self,
        request: Request<proto::HttpSendRequest>,
    ) -> Result<Response<proto::HttpSendResponse>, Status> {
        let request = request.into_inner();
        let flight = self.calls.lookup(&request.call_id)?;
        let reply = match send(&flight, request).await {
            Ok(reply) => reply,
            Err(error) => proto::HttpSendResponse {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                error: Some(error),
            },
        };
        Ok(Response::new(reply))
    }
}

/// Replaces the placeholders `flight` was issued in `headers`' values, each only in a request
/// to a destination (and header) its secret is bound to. A refusal is recorded as a deny of
/// the secret for this call.
async fn inject(
    flight: &InFlight,
    to: &OutboundRequest<'_>,
    headers: &mut http::HeaderMap,
) -> Result<(), String> {
    let mut refused: Option<(BoundSecret, String)> = None;
    let replaced = {
        let issued = flight
            .placeholders
            .lock()
            .map_err(|_| "secret placeholders lock poisoned".to_string())?;
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
    match (replaced, refused) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some((secret, reason))) => Err(format!(
            "denied: {}",
            error_text(flight.call.refuse_secret(&secret, reason).await)
        )),
        (Err(error), None) => Err(format!("denied: {error}")),
    }
}

/// The decisions of one call's outbound connection, made by its [`Call`] (enforcer and audit).
pub(crate) struct CallGate<'a>(pub(crate) &'a Call);

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

/// Sends one HTTP request for a plugin.
///
/// # Security
/// The destination is decided by [`sigil_egress::decide`]: `net.connect:<host>:<port>`
/// on the canonical host before resolution, then each resolved address (its class, Sigil's own
/// listeners), each audited; the connection goes to exactly the address decided. Only then are
/// placeholders replaced by secret values. A placeholder the call was not issued makes the
/// request fail.
async fn send(
    flight: &InFlight,
    request: proto::HttpSendRequest,
) -> Result<proto::HttpSendResponse, String> {
    // A URL that names no destination cannot become a capability; the refusal is still a
    // recorded deny.
    let url = request.url.as_str();
    let malformed = |reason: String| async move {
        let asked = format!("net.connect:{url}");
        flight.call.refuse_malformed(&asked, &reason).await;
        reason
    };
    let uri: http::Uri = match request.url.parse() {
        Ok(uri) => uri,
        Err(e) => {
            let reason = format!("url `{}` is invalid: {e}", truncate(&request.url));
            return Err(malformed(reason).await);
        }
    };
    let destination = match sigil_egress::HttpDestination::of(&uri) {
        Ok(destination) => destination,
        Err(e) => {
            let reason = format!("url `{}`: {}", truncate(&request.url), e.reason());
            return Err(malformed(reason).await);
        }
    };
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("method `{}` is invalid", truncate(&request.method)))?;
    let mut headers = http::HeaderMap::new();
    for header in &request.headers {
        let name = http::HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("header name `{}` is invalid", truncate(&header.name)))?;
        let value = http::HeaderValue::from_bytes(&header.value)
            .map_err(|_| format!("header `{name}` has an invalid value"))?;
        headers.append(name, value);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();

    let target = format!("{}:{}", destination.host, destination.port);
    let exchange = async {
        let gate = CallGate(&flight.call);
        let decided =
            sigil_egress::decide(&destination.host, destination.port, &gate, HTTP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
        let host = destination.host.to_string();
        let to = OutboundRequest {
            host: &host,
            port: destination.port,
            path: &path,
        };
        inject(flight, &to, &mut headers).await?;
        let stream = sigil_egress::connect_http(decided, &destination, HTTP_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let mut outgoing = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(bytes::Bytes::from(request.body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        *outgoing.headers_mut() = headers;
        if let Ok(value) = http::HeaderValue::from_str(&destination.host_header()) {
            outgoing.headers_mut().insert(http::header::HOST, value);
        }
        exchange(hyper_util::rt::TokioIo::new(stream), outgoing).await
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!(
                "request to {target} took longer than {} s",
                HTTP_TIMEOUT.as_secs()
            )
        })?
}

async fn exchange<S>(
    io: hyper_util::rt::TokioIo<S>,
    request: http::Request<Full<bytes::Bytes>>,
) -> Result<proto::HttpSendResponse, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request failed: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_HTTP_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response failed (limit {MAX_HTTP_BODY} bytes): {e}"))?
        .to_bytes();
    Ok(proto::HttpSendResponse {
        status: u32::from(parts.status.as_u16()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| proto::Header {
                name: name.to_string(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
        body: body.to_vec(),
        error: None,
    })
}

/// Starts the egress proxy of one plugin process on `socket_dir/egress.sock`, deciding each
/// connection for the call in flight in `calls`.
pub(crate) fn start_egress(
    calls: &Arc<Calls>,
    socket_dir: &std::path::Path,
) -> Result<sigil_egress::ProxyHandle, String> {
    let policy = Arc::new(Egress {
        calls: calls.clone(),
    });
    sigil_egress::Proxy::serve_unix(&socket_dir.join("egress.sock"), policy)
        .map_err(|e| format!("cannot start the egress proxy: {e}"))
}

/// The egress policy of one plugin's proxy.
///
/// # Security
/// Each attempt is decided as `net.connect:<host>:<port>` through the enforcer with the plugin
/// as subject and the actor of the call it belongs to (named by the proxy credentials, else the
/// only call in flight); with no such call it is denied. Plain requests get the placeholders
/// that call was issued replaced.
#[derive(Debug)]
pub(crate) struct Egress {
    pub(crate) calls: Arc<Calls>,
}

#[async_trait::async_trait]
impl sigil_egress::EgressPolicy for Egress {
    async fn connect(&self, target: &sigil_egress::Target) -> Result<(), String> {
        // `Target` prints as `host:port`, IPv6 hosts already in brackets.
        let capability = format!("net.connect:{target}");
        match self.calls.for_egress(target.call.as_deref()) {
            Ok(flight) => flight
                .call
                .authorize(&capability)
                .await
                .map(|_| ())
                .map_err(error_text),
            Err(reason) => {
                // Outside any call there is no actor to act for: the attempt is still an
                // enforcer decision with its audit record (a deny, naming no workspace), and it
                // is refused whatever that record says.
                tracing::warn!(plugin = %self.calls.plugin, %target, %reason, "egress outside a call");
                let actor = Actor {
                    channel: Some("egress".into()),
                    ..Actor::default()
                };
                let _ = self
                    .calls
                    .enforcer
                    .check_text(
                        Subject::Plugin(&self.calls.plugin),
                        &capability,
                        &actor,
                        None,
                    )
                    .await;
                Err(format!("denied: {reason}"))
            }
        }
    }

    async fn connect_address(
        &self,
        target: &sigil_egress::Target,
        address: &str,
        reach: sigil_egress::Reach<'_>,
    ) -> Result<(), String> {
        // Only reached once `connect` allowed the host, which needs a call in flight.
        let flight = self.calls.for_egress(target.call.as_deref())?;
        sigil_egress::Gate::address(
            &CallGate(&flight.call),
            address,
            &format!("net.connect:{target}"),
            reach,
        )
        .await
    }

    async fn inject(
        &self,
        target: &sigil_egress::Target,
        path: &str,
        headers: &mut http::HeaderMap,
    ) -> Result<(), String> {
        let flight = self.calls.for_egress(target.call.as_deref())?;
        let to = OutboundRequest {
            host: &target.host,
            port: target.port,
            path,
        };
        inject(&flight, &to, headers).await
    }
}
