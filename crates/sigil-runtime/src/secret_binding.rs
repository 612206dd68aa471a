//! Where a secret of `[secrets]` may be sent.
//!
//! A plugin granted `secret.use:NAME` never holds the value: it holds a placeholder that the
//! host replaces at the boundary. Granting the use of a secret is not enough on its own, since
//! a plugin may send the placeholder anywhere its network grants reach, including an endpoint
//! that echoes requests back. So every secret is bound, in `sigil.toml`, to the destinations it
//! may be sent to:
//!
//! ```toml
//! [secrets.github]
//! env = "GITHUB_TOKEN"
//! destinations = [
//!   { host = "api.github.com", port = 443, header = "authorization", path = "/repos/**" },
//! ]
//! ```
//!
//! `host` is required (`*.example.com` matches any subdomain); `port`, `header` and `path`
//! narrow it further when given. A placeholder is replaced only in a header of a request whose
//! destination matches one entry, and only in that entry's header when it names one. Nothing is
//! ever injected into a URL or a body: a placeholder there reaches the server as it is.
//!
//! Host and port are matched with the policy core's `net` grammar, paths with its `fs` path
//! grammar (`*` within one segment, `**` across segments, normalised first). A request path
//! that hides structure from that normalisation (`%2e`, `%2f`, `%5c`, a backslash, `;`
//! parameters) matches no path-restricted destination: a server could read it differently.

use std::sync::Arc;

use sigil_policy::{Capability, Pattern};

use crate::config::SecretValue;

/// The action under which destination hosts are matched (the `net` grammar).
const HOST_ACTION: &str = "net.connect";
/// The action under which destination paths are matched (the `fs` path grammar). Internal:
/// it never reaches the enforcer or the audit log.
const PATH_ACTION: &str = "fs.send";

/// One place a secret may be sent.
#[derive(Debug, Clone)]
pub struct SecretDestination {
    text: String,
    host: Pattern,
    header: Option<String>,
    path: Option<Pattern>,
}

impl SecretDestination {
    /// Validates one `destinations` entry. `at` names it in errors.
    pub(crate) fn parse(
        host: &str,
        port: Option<u16>,
        header: Option<&str>,
        path: Option<&str>,
        at: &str,
    ) -> Result<SecretDestination, String> {
        let host_text = match port {
            Some(port) => format!("{HOST_ACTION}:{host}:{port}"),
            None => format!("{HOST_ACTION}:{host}"),
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) || host.starts_with('[') {
            return Err(format!(
                "{at}.host: `{host}` is not a host name (give a name such as `api.example.com`)"
            ));
        }
        let host_pattern =
            Pattern::parse(&host_text).map_err(|e| format!("{at}.host: `{host}`: {e}"))?;
        let header = match header {
            None => None,
            Some(name) => {
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !valid {
                    return Err(format!("{at}.header: `{name}` is not an HTTP header name"));
                }
                Some(name.to_ascii_lowercase())
            }
        };
        let path = match path {
            None => None,
            Some(path) => {
                if !path.starts_with('/') {
                    return Err(format!(
                        "{at}.path: `{path}` must start with `/` (as `/v1/**`)"
                    ));
                }
                Some(
                    Pattern::parse(&format!("{PATH_ACTION}:{path}"))
                        .map_err(|e| format!("{at}.path: `{path}`: {e}"))?,
                )
            }
        };
        let mut text = host.to_string();
        if let Some(port) = port {
            text.push_str(&format!(":{port}"));
        }
        if let Some(path) = &path {
            text.push_str(&path.as_str()[PATH_ACTION.len() + 1..]);
        }
        if let Some(header) = &header {
            text.push_str(&format!(" (header {header})"));
        }
        Ok(SecretDestination {
            text,
            host: host_pattern,
            header,
            path,
        })
    }

    fn admits(&self, request: &OutboundRequest<'_>, header: &str) -> bool {
        if self
            .header
            .as_deref()
            .is_some_and(|h| !h.eq_ignore_ascii_case(header))
        {
            return false;
        }
        let Ok(host) =
            Capability::parse(&format!("{HOST_ACTION}:{}:{}", request.host, request.port))
        else {
            return false;
        };
        if !self.host.matches(&host) {
            return false;
        }
        match &self.path {
            None => true,
            Some(pattern) => request_path(request.path).is_some_and(|path| {
                Capability::parse(&format!("{PATH_ACTION}:{path}"))
                    .is_ok_and(|path| pattern.matches(&path))
            }),
        }
    }
}

impl std::fmt::Display for SecretDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The path part of a request target, without its query, when it spells its structure
/// plainly; `None` when it hides a separator or a dot segment from normalisation.
fn request_path(target: &str) -> Option<&str> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') || path.contains(['\\', ';']) {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return None;
    }
    Some(path)
}

/// Where an outgoing request goes, as the host that sends it sees it.
#[derive(Debug, Clone, Copy)]
pub struct OutboundRequest<'a> {
    /// The host name or address, as in the request's target.
    pub host: &'a str,
    /// The port connected to.
    pub port: u16,
    /// The request target's path (a query, when present, is ignored).
    pub path: &'a str,
}

impl std::fmt::Display for OutboundRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.split(['?', '#']).next().unwrap_or("");
        write!(f, "{}:{}{}", self.host, self.port, path)
    }
}

/// The value of a `[secrets]` entry with the destinations it may be sent to, for host code
/// that injects it at a boundary. Never hand it to a plugin.
///
/// Its `Debug` shows the name and destinations, never the value.
#[derive(Clone)]
pub struct BoundSecret {
    name: Arc<str>,
    value: SecretValue,
    destinations: Arc<[SecretDestination]>,
}

impl std::fmt::Debug for BoundSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSecret")
            .field("name", &self.name)
            .field("value", &self.value)
            .field(
                "destinations",
                &self
                    .destinations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BoundSecret {
    pub(crate) fn new(
        name: &str,
        value: SecretValue,
        destinations: Arc<[SecretDestination]>,
    ) -> BoundSecret {
        BoundSecret {
            name: name.into(),
            value,
            destinations,
        }
    }

    /// The secret's name in `[secrets]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The destinations it may be sent to.
    pub fn destinations(&self) -> &[SecretDestination] {
        &self.destinations
    }

    /// The value, for a header of `request` named `header`, when the secret is bound to that
    /// destination.
    ///
    /// # Errors
    /// When no destination of the secret admits the request and header: the message names the
    /// secret, the request's destination and the bound ones, never the value.
    pub fn value_for(&self, request: &OutboundRequest<'_>, header: &str) -> Result<&str, String> {
        if self.destinations.iter().any(|d| d.admits(request, header)) {
            return Ok(self.value.expose());
        }
        let bound = self
            .destinations
            .iter()
            .map(|d| format!("`{d}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!(
            "secret `{}` is not bound to {request} (header {}); it may be sent only to {bound}",
            self.name,
            header.to_ascii_lowercase()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// (host, port, header, path)
    type Destination<'a> = (&'a str, Option<u16>, Option<&'a str>, Option<&'a str>);

    fn secret(destinations: &[Destination<'_>]) -> BoundSecret {
        let destinations: Vec<SecretDestination> = destinations
            .iter()
            .enumerate()
            .map(|(i, (host, port, header, path))| {
                SecretDestination::parse(host, *port, *header, *path, &format!("d[{i}]")).unwrap()
            })
            .collect();
        BoundSecret::new(
            "token",
            SecretValue::new("s3cr3t".into()),
            destinations.into(),
        )
    }

    fn to(host: &str, port: u16, path: &str) -> OutboundRequest<'static> {
        OutboundRequest {
            host: Box::leak(host.to_string().into_boxed_str()),
            port,
            path: Box::leak(path.to_string().into_boxed_str()),
        }
    }

    #[test]
    fn a_secret_reaches_only_the_destinations_it_is_bound_to() {
        let s = secret(&[(
            "api.example.com",
            Some(443),
            Some("Authorization"),
            Some("/v1/**"),
        )]);
        // (host, port, path, header, admitted)
        let cases = [
            (
                "api.example.com",
                443,
                "/v1/items?x=1",
                "authorization",
                true,
            ),
            ("API.example.com", 443, "/v1/a/b", "Authorization", true),
            ("api.example.com", 443, "/v2/items", "authorization", false),
            (
                "api.example.com",
                443,
                "/v1/../admin",
                "authorization",
                false,
            ),
            (
                "api.example.com",
                443,
                "/v1/%2e%2e/admin",
                "authorization",
                false,
            ),
            (
                "api.example.com",
                443,
                "/v1/..%2Fadmin",
                "authorization",
                false,
            ),
            (
                "api.example.com",
                443,
                "/v1\\..\\admin",
                "authorization",
                false,
            ),
            ("api.example.com", 443, "/v1/items", "x-echo", false),
            ("api.example.com", 80, "/v1/items", "authorization", false),
            ("echo.example.com", 443, "/v1/items", "authorization", false),
            (
                "api.example.com.evil.test",
                443,
                "/v1/items",
                "authorization",
                false,
            ),
            ("evil.test", 443, "/v1/items", "authorization", false),
        ];
        for (host, port, path, header, admitted) in cases {
            let result = s.value_for(&to(host, port, path), header);
            assert_eq!(
                result.is_ok(),
                admitted,
                "{host}:{port}{path} {header}: {result:?}"
            );
            if let Err(message) = result {
                assert!(!message.contains("s3cr3t"), "{message}");
                assert!(message.contains("secret `token` is not bound"), "{message}");
            }
        }
    }

    #[test]
    fn a_destination_without_port_header_or_path_admits_any_of_them() {
        let s = secret(&[("*.example.com", None, None, None)]);
        assert!(
            s.value_for(&to("a.example.com", 8443, "/x"), "x-key")
                .is_ok()
        );
        assert!(s.value_for(&to("example.org", 443, "/x"), "x-key").is_err());
    }

    #[test]
    fn malformed_destinations_are_refused_with_their_place() {
        for (host, header, path, expected) in [
            ("", None, None, "d.host"),
            ("http://api.example.com", None, None, "d.host"),
            ("[::1]", None, None, "d.host"),
            ("api.example.com", Some("bad header"), None, "d.header"),
            ("api.example.com", None, Some("v1/**"), "d.path"),
        ] {
            let error = SecretDestination::parse(host, None, header, path, "d").unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = secret(&[("api.example.com", None, None, None)]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("api.example.com"), "{shown}");
    }
}
