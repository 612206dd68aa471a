//! One client connection: each request is parsed, decided, and either tunnelled (`CONNECT`),
//! forwarded (plain HTTP) or refused.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use crate::net::{self, ConnectError, Decided, Gate};
use crate::serve::Io;
use crate::target::{BadRequest, Target, http_target, tunnel_target};
use crate::{EgressPolicy, MAX_HEAD_BYTES, Options, Reach};

type Body = Either<Incoming, Full<Bytes>>;

/// Headers that describe one hop, never forwarded in either direction (RFC 9110 §7.6.1), plus
/// the proxy's own.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the requests of one client connection share.
struct Connection {
    policy: Arc<dyn EgressPolicy>,
    connect_timeout: std::time::Duration,
    /// A tunnel agreed to, run once hyper hands the connection over.
    tunnel: Mutex<Option<(OnUpgrade, TcpStream, Target)>>,
    /// Tasks driving upstream connections; they end with the client connection.
    upstreams: Mutex<Vec<AbortHandle>>,
}

/// Serves one client connection to its end.
pub(crate) async fn serve_connection(
    stream: Box<dyn Io>,
    policy: Arc<dyn EgressPolicy>,
    options: &Options,
) {
    let connection = Arc::new(Connection {
        policy,
        connect_timeout: options.connect_timeout,
        tunnel: Mutex::new(None),
        upstreams: Mutex::new(Vec::new()),
    });
    let shared = connection.clone();
    let service = service_fn(move |request| {
        let connection = shared.clone();
        async move { Ok::<_, Infallible>(handle(&connection, request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "egress client connection ended with an error");
    }
    let tunnel = connection
        .tunnel
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some((upgrade, upstream, target)) = tunnel {
        run_tunnel(upgrade, upstream, &target).await;
    }
    for task in connection
        .upstreams
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
    {
        task.abort();
    }
}

async fn handle(connection: &Connection, request: Request<Incoming>) -> Response<Body> {
    if request.method() == Method::CONNECT {
        // A client refused its tunnel has nothing more to say on this connection.
        tunnel(connection, request)
            .await
            .unwrap_or_else(|mut refusal| {
                refusal
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                refusal
            })
    } else {
        forward(connection, request)
            .await
            .unwrap_or_else(|refusal| refusal)
    }
}

/// Decides a `CONNECT`, connects, and leaves the tunnel to run once the `200` is sent.
async fn tunnel(
    connection: &Connection,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Response<Body>> {
    let target = tunnel_target(request.uri(), request.headers()).map_err(bad_request)?;
    let decided = decide(connection, &target).await?;
    let upstream = connect(connection, decided, &target).await?;
    let upgrade = hyper::upgrade::on(&mut request);
    *connection
        .tunnel
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some((upgrade, upstream, target));
    Ok(Response::new(Either::Right(Full::default())))
}

async fn run_tunnel(upgrade: OnUpgrade, mut upstream: TcpStream, target: &Target) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%target, %error, "egress tunnel was not taken up");
            return;
        }
    };
    let mut client = TokioIo::new(upgraded);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => tracing::debug!(%target, sent, received, "egress tunnel closed"),
        Err(error) => tracing::debug!(%target, %error, "egress tunnel ended with an error"),
    }
}

/// Decides a plain request, injects secrets, and forwards it to exactly the decided target.
async fn forward(
    connection: &Connection,
    request: Request<Incoming>,
) -> Result<Response<Body>, Response<Body>> {
    let (parts, body) = request.into_parts();
    let target = http_target(&parts.method, &parts.uri, &parts.headers).map_err(bad_request)?;
    // Decided (host, then each address it resolves to) before any secret is injected.
    let decided = decide(connection, &target).await?;

    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let host = HeaderValue::from_str(&target.host_header())
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the target is not a valid host"))?;
    headers.insert(HOST, host);
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    connection
        .policy
        .inject(&target, path, &mut headers)
        .await
        .map_err(|reason| refuse(StatusCode::FORBIDDEN, &format!("refused: {reason}")))?;
    let upstream = connect(connection, decided, &target).await?;

    let uri: Uri = path
        .parse()
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the request path is not valid"))?;
    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = uri;
    *outgoing.version_mut() = parts.version;
    *outgoing.headers_mut() = headers;

    let unreachable = |error: hyper::Error| {
        tracing::debug!(%target, %error, "egress upstream failed");
        refuse(
            StatusCode::BAD_GATEWAY,
            &format!("upstream {target} failed: {error}"),
        )
    };
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(upstream))
        .await
        .map_err(unreachable)?;
    let task = tokio::spawn(async move {
        if let Err(error) = driver.await {
            tracing::debug!(%error, "egress upstream connection ended with an error");
        }
    });
    {
        let mut upstreams = connection
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        upstreams.retain(|task| !task.is_finished());
        upstreams.push(task.abort_handle());
    }
    let response = sender.send_request(outgoing).await.map_err(unreachable)?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// One attempt's decisions, asked of the policy for `target`.
struct TargetGate<'a> {
    policy: &'a dyn EgressPolicy,
    target: &'a Target,
}

#[async_trait::async_trait]
impl Gate for TargetGate<'_> {
    async fn host(&self, _capability: &str) -> Result<(), String> {
        self.policy.connect(self.target).await
    }

    async fn address(&self, address: &str, _host: &str, reach: Reach<'_>) -> Result<(), String> {
        self.policy
            .connect_address(self.target, address, reach)
            .await
    }
}

/// Decides `target`: its host, then each address it resolves to ([`net::decide`]). A denial is
/// the client's `403`.
async fn decide(connection: &Connection, target: &Target) -> Result<Decided, Response<Body>> {
    let host = target
        .destination()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let gate = TargetGate {
        policy: connection.policy.as_ref(),
        target,
    };
    net::decide(&host, target.port, &gate, connection.connect_timeout)
        .await
        .map_err(|error| refusal(target, &error))
}

/// Connects to exactly an address decided for `target`, never resolving it again.
async fn connect(
    connection: &Connection,
    decided: Decided,
    target: &Target,
) -> Result<TcpStream, Response<Body>> {
    match decided.connect(connection.connect_timeout).await {
        Ok(connected) => {
            tracing::debug!(%target, address = %connected.address, kind = ?target.kind, "egress allowed");
            Ok(connected.stream)
        }
        Err(error) => Err(refusal(target, &error)),
    }
}

/// The client's answer to an attempt that went nowhere.
fn refusal(target: &Target, error: &ConnectError) -> Response<Body> {
    let status = match error {
        ConnectError::Denied { .. } => StatusCode::FORBIDDEN,
        ConnectError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    tracing::debug!(%target, kind = ?target.kind, %error, "egress refused");
    refuse(status, &error.to_string())
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn bad_request(BadRequest(reason): BadRequest) -> Response<Body> {
    refuse(StatusCode::BAD_REQUEST, &reason)
}

fn refuse(status: StatusCode, reason: &str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "sigil egress proxy: {reason}\n"
    )))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
