//! Where a request wants to go: parsed from the untrusted request once, normalised, and only
//! then shown to the policy.

use std::fmt;

use base64::Engine as _;
use http::header::{HOST, PROXY_AUTHORIZATION};
use http::uri::Authority;
use http::{HeaderMap, Method, Uri};

use crate::net::Host;

/// One attempt to reach a destination, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The normalised host: lower case, no trailing dot; an IPv4 address in dotted-quad form; an
    /// IPv6 address in its canonical form inside brackets (`[::1]`), except an IPv4-mapped
    /// one, which is shown as the IPv4 address it maps to.
    pub host: String,
    /// The port: from the URI, 80 for an `http://` URI without one; `CONNECT` must name it.
    pub port: u16,
    /// A tunnel or a plain request.
    pub kind: TargetKind,
    /// The call token from `Proxy-Authorization: Basic base64(<token>:)` if the client sent one.
    pub call: Option<String>,
}

/// How the client wants to reach a [`Target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `CONNECT host:port`: bytes are tunnelled opaquely, no injection.
    Tunnel,
    /// A plain-HTTP request forwarded by the proxy, where secrets may be injected.
    Http,
}

impl fmt::Display for Target {
    /// `host:port`, the resource of a `net.connect` capability.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Target {
    /// The value of the `Host` header the upstream gets.
    pub(crate) fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            self.to_string()
        }
    }

    /// The host as a [`Host`]; `host` is canonical already, so this cannot fail on a target
    /// the proxy parsed.
    pub(crate) fn destination(&self) -> Result<Host, crate::net::HostError> {
        Host::parse(&self.host)
    }
}

/// Why a request was refused before any decision: the client gets `400`.
#[derive(Debug)]
pub(crate) struct BadRequest(pub(crate) String);

/// The target of a `CONNECT` request.
pub(crate) fn tunnel_target(uri: &Uri, headers: &HeaderMap) -> Result<Target, BadRequest> {
    let authority = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, Some(authority), None) => authority,
        _ => {
            return Err(BadRequest(format!(
                "CONNECT needs `host:port` as its target, not `{uri}`"
            )));
        }
    };
    let (host, port) = split_authority(authority, None, "CONNECT target")?;
    Ok(Target {
        host,
        port,
        kind: TargetKind::Tunnel,
        call: call_token(headers)?,
    })
}

/// The target of a plain request, which must be in absolute form with an `http` scheme and
/// agree with its `Host` header.
pub(crate) fn http_target(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Target, BadRequest> {
    let Some(authority) = uri.authority() else {
        return Err(BadRequest(format!(
            "`{method} {uri}` has no target: a proxy request needs an absolute `http://` URI"
        )));
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(BadRequest(format!(
                "`{uri}`: use CONNECT to reach an https URI through the proxy"
            )));
        }
        _ => {
            return Err(BadRequest(format!("`{uri}`: only http URIs are forwarded")));
        }
    }
    let (host, port) = split_authority(authority, Some(80), "request URI")?;
    let mut host_headers = headers.get_all(HOST).iter();
    if let Some(value) = host_headers.next() {
        if host_headers.next().is_some() {
            return Err(BadRequest(
                "the request has more than one `Host` header".into(),
            ));
        }
        let text = value
            .to_str()
            .map_err(|_| BadRequest("the `Host` header is not text".into()))?;
        let authority: Authority = text
            .parse()
            .map_err(|_| BadRequest(format!("the `Host` header `{text}` is not host[:port]")))?;
        let named = split_authority(&authority, Some(80), "`Host` header")?;
        if named != (host.clone(), port) {
            return Err(BadRequest(format!(
                "the `Host` header `{text}` does not match the request target `{host}:{port}`"
            )));
        }
    }
    Ok(Target {
        host,
        port,
        kind: TargetKind::Http,
        call: call_token(headers)?,
    })
}

fn split_authority(
    authority: &Authority,
    default_port: Option<u16>,
    what: &str,
) -> Result<(String, u16), BadRequest> {
    if authority.as_str().contains('@') {
        return Err(BadRequest(format!(
            "{what} `{authority}` must not carry user information"
        )));
    }
    let host = normalise_host(authority.host())
        .map_err(|why| BadRequest(format!("{what} `{authority}`: {why}")))?;
    let port = match (authority.port_u16(), default_port) {
        (Some(0), _) => {
            return Err(BadRequest(format!("{what} `{authority}` names port 0")));
        }
        (Some(port), _) | (None, Some(port)) => port,
        (None, None) => {
            return Err(BadRequest(format!(
                "{what} `{authority}` needs a port (`host:port`)"
            )));
        }
    };
    // `Authority` accepts a port it cannot represent (`host:99999`) as "no port".
    if authority.port_u16().is_none() && authority.port().is_some() {
        return Err(BadRequest(format!(
            "{what} `{authority}` has an invalid port"
        )));
    }
    Ok((host, port))
}

/// Normalises a host as written in a URI or `Host` header; see [`Host::parse`].
pub(crate) fn normalise_host(raw: &str) -> Result<String, String> {
    Host::parse(raw)
        .map(|host| host.as_str().to_string())
        .map_err(|e| e.reason().to_string())
}

/// The call token from `Proxy-Authorization: Basic base64(<token>:)`.
fn call_token(headers: &HeaderMap) -> Result<Option<String>, BadRequest> {
    let malformed = || BadRequest("`Proxy-Authorization` is not `Basic base64(<token>:)`".into());
    let mut values = headers.get_all(PROXY_AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadRequest(
            "the request has more than one `Proxy-Authorization` header".into(),
        ));
    }
    let text = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, encoded) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (token, _password) = decoded.split_once(':').ok_or_else(malformed)?;
    if token.is_empty() || token.len() > 256 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadRequest(
            "the call token in `Proxy-Authorization` must be 1 to 256 visible ASCII characters"
                .into(),
        ));
    }
    Ok(Some(token.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn plain_targets_default_to_port_80_and_must_match_host() {
        let uri: Uri = "http://Example.com./x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "example.com:80".parse().unwrap());
        let target = http_target(&Method::GET, &uri, &headers).unwrap();
        assert_eq!((target.host.as_str(), target.port), ("example.com", 80));

        headers.insert(HOST, "example.com:8080".parse().unwrap());
        assert!(http_target(&Method::GET, &uri, &headers).is_err());
        headers.insert(HOST, "evil.com".parse().unwrap());
        assert!(http_target(&Method::GET, &uri, &headers).is_err());

        let origin: Uri = "/x".parse().unwrap();
        assert!(http_target(&Method::GET, &origin, &HeaderMap::new()).is_err());
        let userinfo: Uri = "http://good.com@evil.com/".parse().unwrap();
        assert!(http_target(&Method::GET, &userinfo, &HeaderMap::new()).is_err());
    }

    #[test]
    fn tunnels_need_a_port() {
        let with: Uri = "[::1]:443".parse().unwrap();
        let target = tunnel_target(&with, &HeaderMap::new()).unwrap();
        assert_eq!(target.to_string(), "[::1]:443");
        assert_eq!(
            target.destination().unwrap().ip(),
            Some(std::net::Ipv6Addr::LOCALHOST.into())
        );
        let without: Uri = "example.com".parse().unwrap();
        assert!(tunnel_target(&without, &HeaderMap::new()).is_err());
    }

    #[test]
    fn call_tokens_come_from_basic_proxy_authorization() {
        let mut headers = HeaderMap::new();
        assert_eq!(call_token(&headers).unwrap(), None);
        // base64("call-7:")
        headers.insert(PROXY_AUTHORIZATION, "Basic Y2FsbC03Og==".parse().unwrap());
        assert_eq!(call_token(&headers).unwrap().as_deref(), Some("call-7"));
        headers.insert(PROXY_AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(call_token(&headers).is_err());
        headers.insert(PROXY_AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(call_token(&headers).is_err());
    }
}
