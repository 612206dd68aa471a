//! The egress proxy's reading of a request head (request line, `CONNECT` target, `Host` and
//! `Proxy-Authorization` headers): it never panics; a target it accepts is named in the one
//! canonical spelling of the address the connection reaches, that spelling is a fixed point of
//! the normalisation, the `net.connect` capability decided for it reads back unchanged, and a
//! plain request's `Host` header names the same target.
#![no_main]

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sigil_egress::TargetKind;
use sigil_egress::fuzzing::{normalise_host, target};
use sigil_policy::Capability;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The request head as hyper reads it off the connection: httparse, then the request
    // target as a `Uri` and the headers as a `HeaderMap`.
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(_)) = request.parse(data) else {
        if let Ok(text) = std::str::from_utf8(data) {
            check_host(text.trim_end());
        }
        return;
    };
    let (Some(method), Some(path)) = (request.method, request.path) else {
        return;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let Ok(uri) = Uri::try_from(path) else {
        return;
    };
    if let Some(host) = uri.host() {
        check_host(host);
    }
    let mut headers = HeaderMap::new();
    for header in request.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return;
        };
        headers.append(name, value);
    }
    let Ok(target) = target(&method, &uri, &headers) else {
        return;
    };
    assert_ne!(target.port, 0, "{target}");
    assert_eq!(
        normalise_host(&target.host).as_deref(),
        Ok(target.host.as_str()),
        "the host of `{uri}` is not normalised"
    );
    let raw_host = uri
        .host()
        .unwrap_or_else(|| panic!("`{uri}` accepted without a host"));
    let reached = sigil_fuzz::net::reached(raw_host);
    assert_eq!(
        target.host,
        reached.canonical(),
        "`{uri}` reaches {reached:?}"
    );
    let capability = format!("net.connect:{target}");
    let parsed = Capability::parse(&capability)
        .unwrap_or_else(|e| panic!("`{capability}` is decided but does not parse: {e}"));
    assert_eq!(parsed.as_str(), capability);
    match target.kind {
        TargetKind::Tunnel => assert_eq!(method, Method::CONNECT),
        TargetKind::Http => {
            assert_ne!(method, Method::CONNECT);
            if let Some(host) = headers.get(HOST) {
                let named: Uri = host
                    .to_str()
                    .ok()
                    .and_then(|text| format!("http://{text}/").parse().ok())
                    .unwrap_or_else(|| panic!("accepted `Host: {host:?}`"));
                let named_host = named.host().unwrap_or_default();
                assert_eq!(
                    sigil_fuzz::net::reached(named_host),
                    reached,
                    "`Host: {host:?}` for `{uri}`"
                );
                assert_eq!(named.port_u16().unwrap_or(80), target.port);
            }
        }
    }
    if let Some(call) = &target.call {
        assert!(
            !call.is_empty() && call.len() <= 256 && call.bytes().all(|b| b.is_ascii_graphic())
        );
    }
});

/// The normalisation alone: a fixed point, in the canonical spelling of what it reaches.
fn check_host(raw: &str) {
    let Ok(host) = normalise_host(raw) else {
        return;
    };
    assert_eq!(
        normalise_host(&host).as_deref(),
        Ok(host.as_str()),
        "`{raw}`"
    );
    assert_eq!(host, sigil_fuzz::net::reached(raw).canonical(), "`{raw}`");
}
