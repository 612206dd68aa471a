//! The egress proxy end to end: real sockets, real HTTP servers, real clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::{AllowList, Echo, Upstream, exchange, exchange_on, proxy, proxy_with, read_head};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sigil_egress::{Options, Proxy, TargetKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

fn get(url: &str, host: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_plain_http_reaches_the_upstream_and_the_response_comes_back() {
    let upstream = Upstream::start("alpha").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let proxy = proxy(&policy).await;

    // A real HTTP client speaking to the proxy with an absolute URI and a body.
    let stream = TcpStream::connect(proxy.local_addr().unwrap())
        .await
        .unwrap();
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(driver);
    let authority = upstream.addr.to_string();
    let request = http::Request::post(format!("http://{authority}/path?q=1"))
        .header("host", &authority)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"twelve bytes")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello from alpha; body 12 bytes");

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/path?q=1", "the upstream gets origin form");
    assert_eq!(seen[0].headers["host"], authority.as_str());
    assert_eq!(&seen[0].body[..], b"twelve bytes");

    let decisions = policy.decisions();
    assert_eq!(decisions.len(), 1);
    let (target, allowed) = &decisions[0];
    assert!(allowed);
    assert_eq!(
        (target.host.as_str(), target.port, target.kind, &target.call),
        ("127.0.0.1", upstream.port(), TargetKind::Http, &None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_host_gets_403_and_the_upstream_sees_nothing() {
    let upstream = Upstream::start("alpha").await;
    // Only the name is granted: the same server by its address is another host.
    let policy = Arc::new(AllowList::new(&[("localhost", upstream.port())]));
    let proxy = proxy(&policy).await;
    let authority = upstream.addr.to_string();

    let reply = exchange(
        proxy.local_addr().unwrap(),
        &get(&format!("http://{authority}/"), &authority),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.all());
    assert!(reply.body.contains("not granted"), "{}", reply.body);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
    assert!(upstream.seen().is_empty());
    assert_eq!(policy.decisions().len(), 1);
    assert!(!policy.decisions()[0].1);

    // The granted name, spelled loosely, is normalised before the decision and connected by
    // name on the host side.
    let loose = format!("LocalHost.:{}", upstream.port());
    let reply = exchange(
        proxy.local_addr().unwrap(),
        &get(&format!("http://{loose}/"), &loose),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.all());
    let decisions = policy.decisions();
    assert_eq!(decisions[1].0.host, "localhost");
    assert!(decisions[1].1);
    assert_eq!(
        upstream.seen()[0].headers["host"],
        format!("localhost:{}", upstream.port()).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_on_another_port_gets_403() {
    let granted = Upstream::start("granted").await;
    let other = Upstream::start("other").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", granted.port())]));
    let proxy = proxy(&policy).await;
    let authority = other.addr.to_string();

    let reply = exchange(
        proxy.local_addr().unwrap(),
        &get(&format!("http://{authority}/"), &authority),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.all());
    assert_eq!(other.connections.load(Ordering::SeqCst), 0);
    assert_eq!(granted.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_an_allowed_target_tunnels_end_to_end() {
    let echo = Echo::start().await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", echo.addr.port())]));
    let proxy = proxy(&policy).await;

    let mut stream = TcpStream::connect(proxy.local_addr().unwrap())
        .await
        .unwrap();
    let authority = echo.addr.to_string();
    stream
        .write_all(
            format!(
                "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nProxy-Authorization: Basic Y2FsbC05Og==\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // Bytes, including ones that look like HTTP, pass untouched both ways.
    for message in [
        &b"ping"[..],
        b"GET http://evil.example/ HTTP/1.1\r\n\r\n",
        &[0u8, 255, 13, 10],
    ] {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0; message.len()];
        tokio::time::timeout(common::GUARD, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, message);
    }
    let decisions = policy.decisions();
    assert_eq!(
        decisions.len(),
        1,
        "the tunnel's content is not decided again"
    );
    assert_eq!(decisions[0].0.kind, TargetKind::Tunnel);
    assert_eq!(decisions[0].0.call.as_deref(), Some("call-9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_denied_target_gets_403_and_goes_nowhere() {
    let echo = Echo::start().await;
    let policy = Arc::new(AllowList::new(&[("example.com", 443)]));
    let proxy = proxy(&policy).await;
    let authority = echo.addr.to_string();

    let reply = exchange(
        proxy.local_addr().unwrap(),
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.all());
    assert_eq!(echo.connections.load(Ordering::SeqCst), 0);
    assert_eq!(policy.decisions().len(), 1);
    assert!(!policy.decisions()[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_targets_are_normalised_and_need_a_port() {
    let echo = Echo::start().await;
    let port = echo.addr.port();
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", port)]));
    let proxy = proxy(&policy).await;
    let addr = proxy.local_addr().unwrap();

    // The IPv4-mapped IPv6 spelling of a granted address is the granted address.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("CONNECT [::ffff:127.0.0.1]:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(policy.decisions()[0].0.host, "127.0.0.1");
    drop(stream);

    // A numeric spelling a resolver would accept is the address it denotes.
    for target in [format!("127.1:{port}"), format!("2130706433:{port}")] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{target}: {head}");
    }
    assert!(
        policy
            .decisions()
            .iter()
            .all(|(target, _)| target.host == "127.0.0.1")
    );

    // No port, or a host that ends in a number but is no address, is refused before any
    // decision.
    for target in ["127.0.0.1".to_string(), format!("1.2.3.4.5:{port}")] {
        let reply = exchange(
            addr,
            format!("CONNECT {target} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 400, "{target}: {}", reply.all());
    }
    assert_eq!(policy.decisions().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_placeholder_is_replaced_at_the_boundary_and_never_shown_to_the_client() {
    const SECRET: &str = "ghp_real-secret-value-0123456789";
    let upstream =
        Upstream::start_requiring("api", Some("Bearer ghp_real-secret-value-0123456789")).await;
    let policy = Arc::new(
        AllowList::new(&[("127.0.0.1", upstream.port())])
            .with_secret("sigil-secret-6f1e2d3c", SECRET),
    );
    let proxy = proxy(&policy).await;
    let authority = upstream.addr.to_string();

    let reply = exchange(
        proxy.local_addr().unwrap(),
        format!(
            "GET http://{authority}/user HTTP/1.1\r\nHost: {authority}\r\n\
             Authorization: Bearer sigil-secret-6f1e2d3c\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.all());
    assert_eq!(reply.body, "hello from api; body 0 bytes");
    assert!(!reply.all().contains(SECRET), "{}", reply.all());
    let seen = upstream.seen();
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {SECRET}").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_placeholder_refuses_the_request() {
    let upstream = Upstream::start("api").await;
    let policy = Arc::new(
        AllowList::new(&[("127.0.0.1", upstream.port())])
            .with_secret("sigil-secret-issued", "the-real-one"),
    );
    let proxy = proxy(&policy).await;
    let authority = upstream.addr.to_string();

    // A hostile plugin guesses at a placeholder it was never given.
    let reply = exchange(
        proxy.local_addr().unwrap(),
        format!(
            "GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n\
             Authorization: Bearer sigil-secret-guessed\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.all());
    assert!(reply.body.contains("not issued"), "{}", reply.body);
    assert!(!reply.all().contains("the-real-one"));
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_header_naming_another_host_is_refused() {
    let decided = Upstream::start("decided").await;
    let elsewhere = Upstream::start("elsewhere").await;
    let policy = Arc::new(AllowList::new(&[
        ("127.0.0.1", decided.port()),
        ("127.0.0.1", elsewhere.port()),
    ]));
    let proxy = proxy(&policy).await;
    let addr = proxy.local_addr().unwrap();
    let uri = format!("http://{}/", decided.addr);

    for host in [
        elsewhere.addr.to_string(),
        "127.0.0.1".to_string(),
        "evil.example".to_string(),
    ] {
        let reply = exchange(addr, &get(&uri, &host)).await;
        assert_eq!(reply.status, 400, "Host: {host}: {}", reply.all());
        assert!(reply.body.contains("does not match"), "{}", reply.body);
    }
    // Two Host headers are refused too.
    let reply = exchange(
        addr,
        format!(
            "GET {uri} HTTP/1.1\r\nHost: {}\r\nHost: {}\r\nConnection: close\r\n\r\n",
            decided.addr, elsewhere.addr
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.all());
    assert_eq!(decided.connections.load(Ordering::SeqCst), 0);
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    assert!(policy.decisions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_authorization_becomes_the_call_and_hop_by_hop_headers_stay_behind() {
    let upstream = Upstream::start("alpha").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let proxy = proxy(&policy).await;
    let authority = upstream.addr.to_string();

    // base64("call-42:")
    let reply = exchange(
        proxy.local_addr().unwrap(),
        format!(
            "GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n\
             Proxy-Authorization: Basic Y2FsbC00Mjo=\r\nProxy-Connection: keep-alive\r\n\
             Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Private-Hop: 1\r\n\
             Connection: close, X-Private-Hop\r\nX-Kept: yes\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.all());
    let headers = &upstream.seen()[0].headers;
    for gone in [
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
        "te",
        "x-private-hop",
        "connection",
    ] {
        assert!(headers.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(headers["x-kept"], "yes");
    assert_eq!(policy.decisions()[0].0.call.as_deref(), Some("call-42"));

    // A malformed Proxy-Authorization is refused, not treated as no call.
    let reply = exchange(
        proxy.local_addr().unwrap(),
        format!(
            "GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n\
             Proxy-Authorization: Bearer x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.all());
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_head_is_refused_and_the_proxy_keeps_serving() {
    let upstream = Upstream::start("alpha").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let proxy = proxy(&policy).await;
    let addr = proxy.local_addr().unwrap();
    let authority = upstream.addr.to_string();

    let filler = "a".repeat(8 * 1024);
    let mut request = format!("GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n");
    for n in 0..9 {
        request.push_str(&format!("X-Filler-{n}: {filler}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    assert!(request.len() > sigil_egress::MAX_HEAD_BYTES);
    let reply = exchange(addr, request.as_bytes()).await;
    assert_eq!(reply.status, 431, "{}", reply.head);
    assert!(policy.decisions().is_empty());
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);

    let reply = exchange(addr, &get(&format!("http://{authority}/"), &authority)).await;
    assert_eq!(reply.status, 200, "{}", reply.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let upstream = Upstream::start("alpha").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let proxy = proxy(&policy).await;
    let addr = proxy.local_addr().unwrap();
    let authority = upstream.addr.to_string();

    let malformed: [&[u8]; 6] = [
        b"NOT A REQUEST\r\n\r\n",
        b"GET /path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        b"GET ftp://example.com/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET http://user@example.com/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ];
    for request in malformed {
        let reply = exchange(addr, request).await;
        assert_eq!(
            reply.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(request),
            reply.all()
        );
    }
    assert!(policy.decisions().is_empty());
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);

    let reply = exchange(addr, &get(&format!("http://{authority}/"), &authority)).await;
    assert_eq!(reply.status, 200, "{}", reply.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_on_a_kept_alive_connection_is_decided() {
    let granted = Upstream::start("granted").await;
    let denied = Upstream::start("denied").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", granted.port())]));
    let proxy = proxy(&policy).await;

    let stream = TcpStream::connect(proxy.local_addr().unwrap())
        .await
        .unwrap();
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(driver);
    for (upstream, status) in [(&granted, 200), (&denied, 403), (&granted, 200)] {
        let authority = upstream.addr.to_string();
        let request = http::Request::get(format!("http://{authority}/"))
            .header("host", &authority)
            .body(Full::new(Bytes::new()))
            .unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), status);
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(policy.decisions().len(), 3);
    assert_eq!(granted.seen().len(), 2);
    assert_eq!(denied.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_cut_off_by_the_header_timeout() {
    let policy = Arc::new(AllowList::new(&[]));
    let options = Options::new().header_timeout(Duration::from_millis(200));
    let proxy = proxy_with(&policy, &options).await;

    let mut stream = TcpStream::connect(proxy.local_addr().unwrap())
        .await
        .unwrap();
    stream
        .write_all(b"GET http://example.com/ HTTP/1.1\r\nHost: exa")
        .await
        .unwrap();
    // The head is never finished; the proxy must close the connection on its own.
    let mut rest = Vec::new();
    tokio::time::timeout(common::GUARD, stream.read_to_end(&mut rest))
        .await
        .expect("the proxy kept a half-sent head open")
        .ok();
    assert!(!String::from_utf8_lossy(&rest).contains(" 200 "));
    assert!(policy.decisions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_unix_listens_on_a_private_socket() {
    let upstream = Upstream::start("alpha").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("egress.sock");
    let proxy = Proxy::serve_unix(&path, policy.clone()).unwrap();
    assert_eq!(proxy.path(), Some(path.as_path()));
    assert_eq!(proxy.local_addr(), None);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    // Nothing is left beside the socket.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let authority = upstream.addr.to_string();
    let stream = UnixStream::connect(&path).await.unwrap();
    let reply = exchange_on(stream, &get(&format!("http://{authority}/"), &authority)).await;
    assert_eq!(reply.status, 200, "{}", reply.all());
    assert_eq!(reply.body, "hello from alpha; body 0 bytes");

    // A path that exists is never taken over.
    let taken = dir.path().join("taken");
    std::fs::write(&taken, "keep me").unwrap();
    let error = Proxy::serve_unix(&taken, policy.clone()).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");
    let error = Proxy::serve_unix(&path, policy.clone()).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");

    drop(proxy);
    assert!(!path.exists(), "dropping the handle removes the socket");
}

#[test]
fn serve_unix_needs_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Arc::new(AllowList::new(&[]));
    let error = Proxy::serve_unix(&dir.path().join("egress.sock"), policy).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_tunnels_and_stops_accepting() {
    let echo = Echo::start().await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", echo.addr.port())]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("egress.sock");
    let proxy = Proxy::serve_unix(&path, policy.clone()).unwrap();

    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(format!("CONNECT {} HTTP/1.1\r\n\r\n", echo.addr).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    proxy.shutdown().await;
    let mut rest = Vec::new();
    tokio::time::timeout(common::GUARD, stream.read_to_end(&mut rest))
        .await
        .expect("the tunnel outlived the proxy")
        .ok();
    assert!(rest.is_empty());
    assert!(!path.exists());
    assert!(UnixStream::connect(&path).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_urllib_reaches_an_allowed_host_through_the_proxy() {
    let upstream = Upstream::start("alpha").await;
    let denied = Upstream::start("denied").await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let proxy = proxy(&policy).await;
    // urllib sends proxy credentials only with a non-empty password; the proxy ignores it.
    let proxy_url = format!("http://call-py:x@{}", proxy.local_addr().unwrap());
    let script = r#"
import sys, urllib.request, urllib.error
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
for url in sys.argv[1:]:
    status, body = fetch(url)
    print(status, body.strip())
"#;
    let allowed_url = format!("http://{}/py", upstream.addr);
    let denied_url = format!("http://{}/py", denied.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(allowed_url)
            .arg(denied_url)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| {
        panic!("cannot run python3 ({error}); install it with `apt-get install -y python3`")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "200 hello from alpha; body 0 bytes");
    assert!(lines[1].starts_with("403 "), "{stdout}");
    assert_eq!(denied.connections.load(Ordering::SeqCst), 0);
    let decisions = policy.decisions();
    assert_eq!(decisions[0].0.call.as_deref(), Some("call-py"));
    assert!(decisions[0].1);
    assert!(!decisions[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_tunnels_through_connect_with_its_call_token() {
    let upstream = Upstream::start("alpha").await;
    let denied = Echo::start().await;
    let policy = Arc::new(AllowList::new(&[("127.0.0.1", upstream.port())]));
    let proxy = proxy(&policy).await;
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let run = |url: String| {
        let proxy_url = proxy_url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "30", "--proxytunnel", "--noproxy", ""])
                .args(["--proxy", &proxy_url, "--proxy-user", "call-curl:"])
                .args(["-w", "\n%{http_code} %{http_connect}", &url])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .output()
                .unwrap_or_else(|error| {
                    panic!("cannot run curl ({error}); install it with `apt-get install -y curl`")
                })
        })
    };

    let output = run(format!("http://{}/via-tunnel", upstream.addr))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "hello from alpha; body 0 bytes\n200 200");
    // Inside the tunnel the upstream sees curl's own request, untouched.
    assert_eq!(upstream.seen()[0].target, "/via-tunnel");

    let output = run(format!("http://{}/", denied.addr)).await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).ends_with("403"));
    assert_eq!(denied.connections.load(Ordering::SeqCst), 0);

    let decisions = policy.decisions();
    assert_eq!(decisions.len(), 2);
    assert!(
        decisions
            .iter()
            .all(|(target, _)| target.kind == TargetKind::Tunnel
                && target.call.as_deref() == Some("call-curl"))
    );
    assert_eq!(
        decisions
            .iter()
            .map(|(_, allowed)| *allowed)
            .collect::<Vec<_>>(),
        [true, false]
    );
}

/// Every spelling of a loopback, unspecified or link-local destination a client can write.
const RESTRICTED_SPELLINGS: [&str; 15] = [
    "127.0.0.1",
    "2130706433",
    "127.1",
    "0x7f.0.0.1",
    "127.000.000.001",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::1]",
    "0",
    "0.0.0.0",
    "localhost",
    "localhost.",
    "LOCALHOST",
    "169.254.169.254",
];

async fn grants_proxy(policy: &Arc<common::Grants>) -> sigil_egress::ProxyHandle {
    // Short connect timeout: 169.254.169.254 must be refused, never tried.
    let options = Options::new().connect_timeout(Duration::from_secs(5));
    Proxy::serve_tcp_with("127.0.0.1:0".parse().unwrap(), policy.clone(), &options)
        .await
        .unwrap()
}

/// Runs curl through the proxy, tunnelling with `CONNECT` or not; stdout ends with the status.
async fn curl(proxy: std::net::SocketAddr, url: String, tunnel: bool) -> String {
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new("curl");
        command.args(["-sS", "--max-time", "20", "--noproxy", ""]);
        if tunnel {
            command.arg("--proxytunnel");
        }
        let output = command
            .args(["--proxy", &format!("http://{proxy}")])
            .args(["-w", "\n%{http_code} %{http_connect}", "-g", &url])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run curl ({error}); install it with `apt-get install -y curl`")
            });
        String::from_utf8_lossy(&output.stdout).to_string()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_addresses_in_every_spelling_are_refused_and_recorded_under_a_wildcard_grant() {
    // What an outside attacker had: everything granted, the loopback address denied, and a
    // service listening there.
    let upstream = Upstream::start("loopback service").await;
    let port = upstream.port();
    let policy = Arc::new(common::Grants::new(
        &["net.connect:*"],
        &["net.connect:127.0.0.1"],
    ));
    let proxy = grants_proxy(&policy).await;
    let addr = proxy.local_addr().unwrap();

    for spelling in RESTRICTED_SPELLINGS {
        let authority = format!("{spelling}:{port}");
        let attempts = [
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes(),
            get(&format!("http://{authority}/"), &authority),
        ];
        for attempt in attempts {
            let before = policy.denials().len();
            let reply = exchange(addr, &attempt).await;
            assert_eq!(reply.status, 403, "{authority}: {}", reply.all());
            let denials = policy.denials();
            assert!(denials.len() > before, "{authority}: no deny recorded");
            let (capability, rule) = denials.last().unwrap();
            assert!(capability.starts_with("net.connect:"), "{capability}");
            assert!(
                rule.contains("denies `net.connect:127.0.0.1`")
                    || rule.contains("reachable only through a grant naming it"),
                "{authority}: {rule}"
            );
        }
        for tunnel in [true, false] {
            let before = policy.denials().len();
            let out = curl(addr, format!("http://{authority}/"), tunnel).await;
            assert!(!out.contains("hello from"), "{authority}: {out}");
            assert!(out.contains("403"), "{authority} (tunnel {tunnel}): {out}");
            assert!(
                policy.denials().len() > before,
                "{authority}: no deny recorded"
            );
        }
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
    assert!(upstream.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_naming_a_loopback_address_or_host_reaches_it() {
    let upstream = Upstream::start("named").await;
    let port = upstream.port();
    for grant in [
        format!("net.connect:127.0.0.1:{port}"),
        format!("net.connect:localhost:{port}"),
    ] {
        let policy = Arc::new(common::Grants::new(&[&grant], &[]));
        let proxy = grants_proxy(&policy).await;
        let named = grant.trim_start_matches("net.connect:").to_string();
        let out = curl(
            proxy.local_addr().unwrap(),
            format!("http://{named}/"),
            true,
        )
        .await;
        assert!(out.starts_with("hello from named"), "{grant}: {out}");
        let reply = exchange(
            proxy.local_addr().unwrap(),
            &get(&format!("http://{named}/"), &named),
        )
        .await;
        assert_eq!(reply.status, 200, "{grant}: {}", reply.all());
        assert!(
            policy
                .records
                .lock()
                .unwrap()
                .iter()
                .any(|(capability, allowed, _)| *allowed
                    && *capability == format!("net.connect:127.0.0.1:{port}")),
            "the address connected to was decided"
        );
    }
    // A wildcard names nothing, even with the exact port.
    let policy = Arc::new(common::Grants::new(
        &[&format!("net.connect:*:{port}")],
        &[],
    ));
    let proxy = grants_proxy(&policy).await;
    let reply = exchange(
        proxy.local_addr().unwrap(),
        &get(
            &format!("http://127.0.0.1:{port}/"),
            &format!("127.0.0.1:{port}"),
        ),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.all());
    assert!(
        policy.denials()[0]
            .1
            .contains("a loopback address is reachable only through a grant naming it"),
        "{:?}",
        policy.denials()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigils_own_listener_is_refused_even_when_explicitly_granted() {
    let daemon = Upstream::start("sigil api").await;
    let port = daemon.port();
    let _protected = sigil_egress::protect_listener(daemon.addr);
    let policy = Arc::new(common::Grants::new(
        &[
            &format!("net.connect:127.0.0.1:{port}"),
            &format!("net.connect:localhost:{port}"),
            &format!("net.connect:0.0.0.0:{port}"),
            &format!("net.connect:[::1]:{port}"),
        ],
        &[],
    ));
    let proxy = grants_proxy(&policy).await;
    let addr = proxy.local_addr().unwrap();
    for spelling in [
        "127.0.0.1",
        "2130706433",
        "localhost",
        "0.0.0.0",
        "0",
        "[::ffff:127.0.0.1]",
    ] {
        let authority = format!("{spelling}:{port}");
        for attempt in [
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes(),
            get(&format!("http://{authority}/"), &authority),
        ] {
            let reply = exchange(addr, &attempt).await;
            assert_eq!(reply.status, 403, "{authority}: {}", reply.all());
            let denials = policy.denials();
            let (_, rule) = denials.last().unwrap();
            assert!(
                rule.contains("unreachable whatever is granted")
                    && rule.contains("where Sigil itself listens"),
                "{authority}: {rule}"
            );
        }
    }
    assert_eq!(daemon.connections.load(Ordering::SeqCst), 0);
}
