//! Sigil's host-side egress proxy for sandboxed plugins.
//!
//! A process or container plugin has no network. The only way out is this proxy, run by the
//! host and reachable inside the sandbox as `HTTP_PROXY`/`HTTPS_PROXY`. It speaks the HTTP/1.1
//! proxy protocol: `CONNECT host:port` opens an opaque tunnel (TLS stays end to end), and a
//! plain `http://` request in absolute form is forwarded by the proxy itself, which is where
//! secret placeholders in headers are replaced by their values. Every attempt is decided by an
//! [`EgressPolicy`]; a denied attempt gets `403` and goes nowhere.
//!
//! ```
//! use std::sync::Arc;
//! use sigil_egress::{EgressPolicy, Proxy, Reach, Target};
//!
//! /// Lets plugins reach one host and port, and nothing else.
//! #[derive(Debug)]
//! struct OnlyExample;
//!
//! #[async_trait::async_trait]
//! impl EgressPolicy for OnlyExample {
//!     async fn connect(&self, target: &Target) -> Result<(), String> {
//!         if target.host == "example.com" && target.port == 443 {
//!             Ok(())
//!         } else {
//!             Err(format!("net.connect:{target} is not granted"))
//!         }
//!     }
//!     async fn connect_address(
//!         &self,
//!         _: &Target,
//!         _address: &str,
//!         reach: Reach<'_>,
//!     ) -> Result<(), String> {
//!         // Public addresses only: example.com names no loopback or private address.
//!         match reach {
//!             Reach::Open => Ok(()),
//!             _ => Err("a restricted address".into()),
//!         }
//!     }
//!     async fn inject(&self, _: &Target, _: &str, _: &mut http::HeaderMap) -> Result<(), String> {
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let dir = tempfile::tempdir()?;
//!     let proxy = Proxy::serve_unix(&dir.path().join("egress.sock"), Arc::new(OnlyExample))?;
//!     // The sandbox forwards its 127.0.0.1:<port> to `proxy.path()`.
//!     assert!(proxy.path().is_some_and(|path| path.exists()));
//!     proxy.shutdown().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Security
//!
//! - Every request, including each one on a kept-alive connection, is decided separately,
//!   after its target host is canonicalised ([`Host::parse`]: lower case, no trailing dot,
//!   canonical IP literals, IPv4-mapped IPv6 as IPv4, no numeric forms such as `127.1` that a
//!   resolver would accept).
//! - The host is decided before it is resolved; it is resolved once, each address is
//!   classified and decided ([`EgressPolicy::connect_address`]), and the upstream connection
//!   goes to exactly the address decided ([`net`] is the one implementation every tier uses).
//!   Sigil's own listening addresses are never reachable ([`protect_listener`]).
//! - A plain request whose `Host` header names anything but its target is refused, so a
//!   request cannot be decided for one host and served by another.
//! - `Proxy-Authorization` (surfaced as [`Target::call`]) and hop-by-hop headers never leave.
//! - Request heads are bounded (64 KiB) and must arrive within a timeout; the number of
//!   concurrent connections is bounded.
//! - The proxy does not look inside tunnels: `CONNECT` traffic gets no secrets.

#![forbid(unsafe_code)]

mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod net;
mod serve;
mod target;

use std::fmt;
use std::time::Duration;

pub use net::{
    AddressClass, ConnectError, Connected, Decided, Gate, Host, HostError, HttpDestination,
    ListenerGuard, connect, connect_http, decide, is_own_listener, protect_listener,
};
pub use serve::{Proxy, ProxyHandle};
pub use sigil_policy::Reach;
pub use target::{Target, TargetKind};

/// The largest request head (request line and headers) the proxy reads.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Decides each attempt to leave the sandbox, and injects secrets into allowed plain requests.
///
/// The process tier implements it over the enforcer (`net.connect:<host>:<port>`, audited) and
/// the secret placeholders it issued to the plugin.
#[async_trait::async_trait]
pub trait EgressPolicy: Send + Sync + fmt::Debug + 'static {
    /// Decides one attempt to reach `target`. The implementation records the decision in the
    /// audit log.
    ///
    /// # Errors
    ///
    /// `Err(reason)` denies; the client gets `403` with the reason.
    async fn connect(&self, target: &Target) -> Result<(), String>;

    /// Decides one address `target`'s host resolved to (`address` is
    /// `net.connect:<ip>:<port>`), after [`EgressPolicy::connect`] allowed the host; `reach`
    /// says what the address's class takes ([`Gate::address`]). The implementation records
    /// the decision in the audit log.
    ///
    /// # Errors
    ///
    /// `Err(reason)` denies this address; the client gets `403` when no address is allowed.
    async fn connect_address(
        &self,
        target: &Target,
        address: &str,
        reach: Reach<'_>,
    ) -> Result<(), String>;

    /// For a plain-HTTP request to an allowed target, for `path` (its path and query): replace
    /// secret placeholders in header values (the implementation knows which placeholders it
    /// issued, and the destinations each secret is bound to).
    ///
    /// # Errors
    ///
    /// `Err(reason)` refuses the request; the client gets `403` with the reason, which must not
    /// contain a secret.
    async fn inject(
        &self,
        target: &Target,
        path: &str,
        headers: &mut http::HeaderMap,
    ) -> Result<(), String>;
}

/// What went wrong starting the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// There was no tokio runtime to serve on.
    #[error("the egress proxy needs a tokio runtime: start it from within one")]
    NoRuntime,
    /// The socket path is already taken.
    #[error("egress socket path `{0}` already exists")]
    Exists(String),
    /// The socket path has no parent directory or no file name.
    #[error("egress socket path `{0}` must name a file in a directory")]
    BadPath(String),
    /// Binding or preparing the listener failed.
    #[error("cannot {what} `{target}` for the egress proxy: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path or address involved.
        target: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// How a proxy serves. [`Options::new`] documents the defaults.
#[derive(Debug, Clone)]
pub struct Options {
    header_timeout: Duration,
    connect_timeout: Duration,
    max_connections: usize,
}

impl Options {
    /// The defaults: a request head must arrive within 30 s (this also closes idle kept-alive
    /// connections), an upstream connection must be made within 30 s, and at most 256 client
    /// connections (tunnels included) are served at once; more wait to be accepted.
    #[must_use]
    pub fn new() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }

    /// How long a client may take to send a complete request head.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long connecting to an upstream may take before the client gets `504`.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many client connections are served at once (at least one).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// Replaces every placeholder starting with `prefix` in `headers`' values by what `lookup`
/// returns for it (given the header's name and the placeholder), and marks the changed values
/// sensitive. A helper for [`EgressPolicy::inject`] implementations and the other tiers' HTTP
/// hosts; a placeholder runs from `prefix` over ASCII letters, digits and `-`.
///
/// # Errors
///
/// The first refusal of `lookup` (a placeholder not issued, or a secret not bound to this
/// destination or header), or a header whose value would not be a valid header value after
/// replacement. The message never contains a secret.
pub fn replace_placeholders(
    headers: &mut http::HeaderMap,
    prefix: &str,
    mut lookup: impl FnMut(&http::HeaderName, &str) -> Result<String, String>,
) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("the placeholder prefix is empty".into());
    }
    for (name, value) in headers.iter_mut() {
        let Ok(text) = value.to_str() else { continue };
        if !text.contains(prefix) {
            continue;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            out.push_str(&rest[..at]);
            let tail = &rest[at + prefix.len()..];
            let len = tail
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .unwrap_or(tail.len());
            let placeholder = &rest[at..at + prefix.len() + len];
            out.push_str(&lookup(name, placeholder)?);
            rest = &tail[len..];
        }
        out.push_str(rest);
        let mut replaced = http::HeaderValue::from_str(&out).map_err(|_| {
            format!("header `{name}` is not a valid header value once its secret is injected")
        })?;
        replaced.set_sensitive(true);
        *value = replaced;
    }
    Ok(())
}
