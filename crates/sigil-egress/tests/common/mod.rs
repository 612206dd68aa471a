//! Real pieces for the proxy tests: an allowlist policy that records its decisions, HTTP and
//! echo servers on 127.0.0.1, and a raw client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sigil_egress::{EgressPolicy, Options, Proxy, ProxyHandle, Reach, Target};
use sigil_policy::{
    Capability, CapabilitySet, Decision, Layers, PluginAuthority, Scope, decide, decide_destination,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The prefix of the placeholders the test policy hands out.
pub const PREFIX: &str = "sigil-secret-";

/// Fails a test that would otherwise hang; never a timing assertion.
pub const GUARD: Duration = Duration::from_secs(60);

/// Allows exactly the listed `host:port` pairs; records every decision in order (hosts in
/// `decisions`, the addresses they resolve to in `addresses`). A listed pair names its host,
/// so it reaches a restricted address too; Sigil's own listeners never.
#[derive(Debug, Default)]
pub struct AllowList {
    allowed: Vec<(String, u16)>,
    secrets: HashMap<String, String>,
    pub decisions: Mutex<Vec<(Target, bool)>>,
    pub addresses: Mutex<Vec<(String, bool)>>,
}

impl AllowList {
    pub fn new(allowed: &[(&str, u16)]) -> Self {
        Self {
            allowed: allowed
                .iter()
                .map(|(h, p)| ((*h).to_string(), *p))
                .collect(),
            ..Self::default()
        }
    }

    pub fn with_secret(mut self, placeholder: &str, value: &str) -> Self {
        self.secrets.insert(placeholder.into(), value.into());
        self
    }

    pub fn decisions(&self) -> Vec<(Target, bool)> {
        self.decisions.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl EgressPolicy for AllowList {
    async fn connect(&self, target: &Target) -> Result<(), String> {
        let allowed = self
            .allowed
            .iter()
            .any(|(host, port)| *host == target.host && *port == target.port);
        self.decisions
            .lock()
            .unwrap()
            .push((target.clone(), allowed));
        if allowed {
            Ok(())
        } else {
            Err(format!("net.connect:{target} is not granted"))
        }
    }

    async fn connect_address(
        &self,
        target: &Target,
        address: &str,
        reach: Reach<'_>,
    ) -> Result<(), String> {
        let named = self
            .allowed
            .iter()
            .any(|(host, port)| *host == target.host && *port == target.port);
        let allowed = match reach {
            Reach::Open => true,
            Reach::Named { .. } => named,
            Reach::Closed { .. } => false,
        };
        self.addresses
            .lock()
            .unwrap()
            .push((address.to_string(), allowed));
        if allowed {
            Ok(())
        } else {
            Err(format!("{address} is not reachable: {reach:?}"))
        }
    }

    async fn inject(
        &self,
        _target: &Target,
        _path: &str,
        headers: &mut http::HeaderMap,
    ) -> Result<(), String> {
        sigil_egress::replace_placeholders(headers, PREFIX, |name, p| {
            self.secrets.get(p).cloned().ok_or_else(|| {
                format!("header `{name}` holds a secret placeholder that was not issued")
            })
        })
    }
}

/// The policy core's decisions over real grants, as the process tier's enforcer makes them,
/// with every decision recorded (capability, allowed, rule) as an audit log would.
#[derive(Debug)]
pub struct Grants {
    plugin: PluginAuthority,
    workspace: Scope,
    user: Scope,
    global_deny: CapabilitySet,
    pub records: Mutex<Vec<(String, bool, String)>>,
}

impl Grants {
    /// A plugin requesting (and consented) `grants`, under an operator denying `denies`.
    pub fn new(grants: &[&str], denies: &[&str]) -> Self {
        let set = |patterns: &[&str]| CapabilitySet::parse(patterns).unwrap();
        Self {
            plugin: PluginAuthority {
                id: "plugin".into(),
                grants: set(grants),
                consent: set(grants),
                denies: CapabilitySet::default(),
            },
            workspace: Scope {
                name: "home".into(),
                allow: set(&["*"]),
                deny: CapabilitySet::default(),
            },
            user: Scope {
                name: "alice".into(),
                allow: set(&["*"]),
                deny: CapabilitySet::default(),
            },
            global_deny: set(denies),
            records: Mutex::new(Vec::new()),
        }
    }

    fn layers(&self) -> Layers<'_> {
        Layers {
            plugin: Some(&self.plugin),
            workspace: &self.workspace,
            user: &self.user,
            global_deny: &self.global_deny,
        }
    }

    fn record(&self, capability: &str, decision: Decision) -> Result<(), String> {
        let allowed = decision.is_allowed();
        self.records
            .lock()
            .unwrap()
            .push((capability.to_string(), allowed, decision.to_string()));
        if allowed {
            Ok(())
        } else {
            Err(decision.to_string())
        }
    }

    /// The denied capabilities, in order.
    pub fn denials(&self) -> Vec<(String, String)> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, allowed, _)| !allowed)
            .map(|(capability, _, rule)| (capability.clone(), rule.clone()))
            .collect()
    }
}

#[async_trait::async_trait]
impl EgressPolicy for Grants {
    async fn connect(&self, target: &Target) -> Result<(), String> {
        let text = format!("net.connect:{target}");
        let capability = Capability::parse(&text).unwrap();
        self.record(&text, decide(&capability, self.layers()))
    }

    async fn connect_address(
        &self,
        target: &Target,
        address: &str,
        reach: Reach<'_>,
    ) -> Result<(), String> {
        let host = Capability::parse(&format!("net.connect:{target}")).unwrap();
        let decided = Capability::parse(address).unwrap();
        self.record(
            address,
            decide_destination(&decided, &host, reach, self.layers()),
        )
    }

    async fn inject(
        &self,
        _target: &Target,
        _path: &str,
        _headers: &mut http::HeaderMap,
    ) -> Result<(), String> {
        Ok(())
    }
}

pub async fn proxy(policy: &Arc<AllowList>) -> ProxyHandle {
    Proxy::serve_tcp("127.0.0.1:0".parse().unwrap(), policy.clone())
        .await
        .unwrap()
}

pub async fn proxy_with(policy: &Arc<AllowList>, options: &Options) -> ProxyHandle {
    Proxy::serve_tcp_with("127.0.0.1:0".parse().unwrap(), policy.clone(), options)
        .await
        .unwrap()
}

/// One request as an upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A real HTTP/1.1 server. It answers `hello from <name>`, or `401` to a request whose
/// `authorization` is present but not `require_auth`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Self {
        Self::start_requiring(name, None).await
    }

    pub async fn start_requiring(name: &'static str, require_auth: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (record, count) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let record = record.clone();
                        async move {
                            Ok::<_, Infallible>(answer(name, require_auth, &record, request).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            connections,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    name: &str,
    require_auth: Option<&str>,
    record: &Mutex<Vec<Seen>>,
    request: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let authorized = match (require_auth, parts.headers.get("authorization")) {
        (Some(want), Some(got)) => got.as_bytes() == want.as_bytes(),
        (Some(_), None) => false,
        (None, _) => true,
    };
    record.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers,
        body: body.clone(),
    });
    let mut response = http::Response::new(Full::new(Bytes::from(if authorized {
        format!("hello from {name}; body {} bytes", body.len())
    } else {
        "not authorized".to_string()
    })));
    if !authorized {
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    }
    response
}

/// A TCP echo server counting its connections.
pub struct Echo {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        Self { addr, connections }
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn all(&self) -> String {
        format!("{}\r\n\r\n{}", self.head, self.body)
    }
}

/// Writes `request` to the proxy and reads the response until the proxy closes (send
/// `Connection: close`).
pub async fn exchange(proxy: SocketAddr, request: &[u8]) -> Reply {
    let stream = TcpStream::connect(proxy).await.unwrap();
    exchange_on(stream, request).await
}

pub async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Reply {
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut raw))
        .await
        .expect("the proxy never closed the connection")
        .unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Reads a response head (up to the blank line) without waiting for the connection to end.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(GUARD, stream.read(&mut byte))
            .await
            .expect("no response head")
            .unwrap();
        assert_ne!(n, 0, "connection closed inside a response head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
