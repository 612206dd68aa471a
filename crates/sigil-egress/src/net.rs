//! Where a plugin's connection may go, decided on the address actually connected to.
//!
//! Every outbound path of every tier comes through here: the WebAssembly tier's `wasi:http`,
//! the process tier's `HttpSend` host call, and this crate's proxy (`CONNECT` and plain
//! requests, for sandboxed process plugins and the MCP bridge). One attempt goes:
//!
//! 1. The host as written is canonicalised once ([`Host::parse`]): lower case, no trailing
//!    dot, IPv6 in its canonical form, an IPv4-mapped IPv6 address as the IPv4 address it
//!    maps to, and every numeric IPv4 spelling a resolver accepts (`127.1`, `2130706433`,
//!    `0x7f.0.0.1`, `0177.0.0.1`, `127.000.000.001`) as the dotted quad it denotes. A number
//!    that is no address, a zone id and anything not ASCII are refused.
//! 2. `net.connect:<host>:<port>` is decided ([`Gate::host`]) before any name is resolved, so
//!    a plugin cannot make the host look up names it was not granted.
//! 3. The name is resolved once. Each address is classified ([`AddressClass`]) and decided
//!    ([`Gate::address`]): Sigil's own listening addresses ([`protect_listener`]) are never
//!    reachable; loopback, private, link-local, unspecified, multicast, broadcast and reserved
//!    addresses only through a grant naming the host or the address
//!    ([`sigil_policy::Reach::Named`]).
//! 4. The connection goes to exactly the address decided: it is never resolved again, so a
//!    name that changes its answer in between (DNS rebinding) changes nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sigil_policy::Reach;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// At most this many addresses of one name are decided and tried.
pub const MAX_ADDRESSES: usize = 8;

/// A destination host in its one canonical spelling. Only [`Host::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    text: String,
    ip: Option<IpAddr>,
}

/// A host that names no single destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host `{shown}`: {reason}")]
pub struct HostError {
    shown: String,
    reason: String,
}

impl HostError {
    fn new(raw: &str, reason: impl Into<String>) -> HostError {
        let shown: String = raw.chars().take(80).collect();
        HostError {
            shown: shown.escape_debug().to_string(),
            reason: reason.into(),
        }
    }

    /// Why, without the host.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Host {
    /// Canonicalises a host as written in a URI, a `Host` header or a `CONNECT` target (IPv6
    /// inside brackets).
    ///
    /// # Errors
    ///
    /// A host that is empty, too long, not ASCII, has an invalid label, ends in a number
    /// without being an IPv4 address, or is a bracketed text that is no IPv6 address (zone
    /// ids included).
    ///
    /// # Security
    ///
    /// The decision is made on this host and the connection made to what it resolves to, so
    /// it must name one destination in one spelling: every numeric form a resolver would turn
    /// into an address is that address (`2130706433` is `127.0.0.1`), and whatever is not
    /// plainly a name or an address is refused, never guessed.
    pub fn parse(raw: &str) -> Result<Host, HostError> {
        if let Some(inner) = raw.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| HostError::new(raw, "the IPv6 address is missing `]`"))?;
            let address: Ipv6Addr = inner
                .parse()
                .map_err(|_| HostError::new(raw, "not an IPv6 address (zone ids are refused)"))?;
            return Ok(Host::from_ip(IpAddr::V6(address)));
        }
        if !raw.is_ascii() {
            return Err(HostError::new(
                raw,
                "not ASCII: write an internationalised name in its `xn--` form",
            ));
        }
        let lower = raw.to_ascii_lowercase();
        let host = lower.strip_suffix('.').unwrap_or(&lower);
        if host.is_empty() {
            return Err(HostError::new(raw, "the host is empty"));
        }
        if host.len() > 253 {
            return Err(HostError::new(raw, "longer than 253 characters"));
        }
        if let Some(number) = ipv4_number(host) {
            if host.len() < lower.len() {
                // `inet_aton` refuses `127.0.0.1.`; a resolver looks it up as a name. Which of
                // the two a client means cannot be known, so neither is guessed.
                return Err(HostError::new(
                    raw,
                    "a number followed by a dot is a name to a resolver, not an address; write the address without the dot",
                ));
            }
            return number
                .map(|address| Host::from_ip(IpAddr::V4(address)))
                .ok_or_else(|| HostError::new(raw, "ends in a number but is no IPv4 address"));
        }
        for label in host.split('.') {
            if label.is_empty()
                || label.len() > 63
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(HostError::new(raw, format!("invalid label `{label}`")));
            }
        }
        Ok(Host {
            text: host.to_string(),
            ip: None,
        })
    }

    /// The host for an address.
    #[must_use]
    pub fn from_ip(ip: IpAddr) -> Host {
        let ip = canonical_ip(ip);
        Host {
            text: ip_text(ip),
            ip: Some(ip),
        }
    }

    /// The canonical text: a name, a dotted quad, or an IPv6 address in brackets.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The address, when the host is one.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A host whose last label is a number is an IPv4 address in one of the spellings resolvers
/// accept (`inet_aton`, the URL standard): one to four parts, each decimal, octal with a
/// leading `0` or hexadecimal with `0x`, the last filling the remaining bytes (`127.1`,
/// `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`, `127.000.000.001`). `None` for a name;
/// `Some(None)` for a number that is no address (`1.2.3.4.5`, `08`, `256.0.0.1`).
fn ipv4_number(host: &str) -> Option<Option<Ipv4Addr>> {
    let parts: Vec<&str> = host.split('.').collect();
    let last = parts.last().copied().unwrap_or_default();
    let numeric = |part: &str| match part.strip_prefix("0x") {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()),
    };
    if !numeric(last) {
        return None;
    }
    let value = |part: &str| -> Option<u64> {
        if part.len() > 16 {
            return None;
        }
        match part.strip_prefix("0x") {
            Some("") => Some(0),
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None if part.len() > 1 && part.starts_with('0') => u64::from_str_radix(part, 8).ok(),
            None => part.parse().ok(),
        }
    };
    if parts.len() > 4 {
        return Some(None);
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in parts.iter().copied() {
        values.push(value(part).filter(|_| numeric(part)));
    }
    let Some(values) = values.into_iter().collect::<Option<Vec<u64>>>() else {
        return Some(None);
    };
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|v| *v > 255) {
        return Some(None);
    }
    let room = 8 * (5 - values.len() as u32);
    if *last >= 1u64 << room {
        return Some(None);
    }
    let mut address = *last;
    for (i, v) in leading.iter().enumerate() {
        address |= v << (24 - 8 * i as u32);
    }
    Some(u32::try_from(address).ok().map(Ipv4Addr::from))
}

/// `::a.b.c.d`, other than `::` and `::1`.
fn is_ipv4_compatible(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    segments[..6] == [0; 6] && !address.is_unspecified() && !address.is_loopback()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it maps to; any other address as it is.
#[must_use]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An address as a capability's host: a dotted quad, or IPv6 in brackets.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// What kind of address a destination is. Every class but [`AddressClass::Public`] is
/// restricted: reachable only through a grant that names the host or the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// A routable address of the internet.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `0.0.0.0/8`, `::`: on Linux, connecting to it reaches the host itself.
    Unspecified,
    /// `169.254.0.0/16` (cloud metadata services live at `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `100.64.0.0/10` (carrier-grade NAT),
    /// `fc00::/7`, `fec0::/10`, `64:ff9b:1::/48`.
    Private,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`, `192.0.0.0/24`, `198.18.0.0/15`, `100::/64`, IPv4-compatible IPv6.
    Reserved,
}

impl AddressClass {
    /// The class of `ip`. An IPv4-mapped or NAT64 (`64:ff9b::/96`) IPv6 address has the class
    /// of the IPv4 address inside it; a 6to4 one (`2002::/16`) too when that is restricted.
    #[must_use]
    pub fn of(ip: IpAddr) -> AddressClass {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> AddressClass {
        let [a, b, c, _] = ip.octets();
        match (a, b, c) {
            _ if ip.is_broadcast() => AddressClass::Broadcast,
            (0, _, _) => AddressClass::Unspecified,
            (127, _, _) => AddressClass::Loopback,
            (169, 254, _) => AddressClass::LinkLocal,
            (10, _, _) | (192, 168, _) => AddressClass::Private,
            (172, 16..=31, _) | (100, 64..=127, _) => AddressClass::Private,
            (224..=239, _, _) => AddressClass::Multicast,
            (240..=255, _, _) | (192, 0, 0) | (198, 18..=19, _) => AddressClass::Reserved,
            _ => AddressClass::Public,
        }
    }

    fn of_v6(ip: Ipv6Addr) -> AddressClass {
        let s = ip.segments();
        let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        if ip.is_unspecified() {
            AddressClass::Unspecified
        } else if ip.is_loopback() {
            AddressClass::Loopback
        } else if is_ipv4_compatible(ip) || s[..4] == [0x100, 0, 0, 0] {
            AddressClass::Reserved
        } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            Self::of_v4(embedded(s[6], s[7]))
        } else if s[..3] == [0x64, 0xff9b, 1] {
            AddressClass::Private
        } else if s[0] == 0x2002 {
            match Self::of_v4(embedded(s[1], s[2])) {
                AddressClass::Public => AddressClass::Public,
                restricted => restricted,
            }
        } else if s[0] & 0xffc0 == 0xfe80 {
            AddressClass::LinkLocal
        } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
            AddressClass::Private
        } else if s[0] & 0xff00 == 0xff00 {
            AddressClass::Multicast
        } else {
            AddressClass::Public
        }
    }

    /// Whether only a grant naming the host or the address reaches this class.
    #[must_use]
    pub fn is_restricted(self) -> bool {
        self != AddressClass::Public
    }

    /// The class in words, as audit records name it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Unspecified => "unspecified",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Private => "private",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The addresses Sigil itself listens on, in this process.
static LISTENERS: Mutex<Vec<(u64, SocketAddr)>> = Mutex::new(Vec::new());
static NEXT_LISTENER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Marks `address` as one of Sigil's own listening sockets (the daemon's API, for one) until
/// the returned guard is dropped: no plugin connection reaches it, whatever is granted. An
/// unspecified address (`0.0.0.0`, `::`) covers every address of the machine on that port.
#[must_use = "the address is protected only while the guard lives"]
pub fn protect_listener(address: SocketAddr) -> ListenerGuard {
    let id = NEXT_LISTENER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    LISTENERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, address));
    ListenerGuard { id, address }
}

/// Keeps a listening address protected; see [`protect_listener`].
#[derive(Debug)]
pub struct ListenerGuard {
    id: u64,
    address: SocketAddr,
}

impl ListenerGuard {
    /// The protected address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        LISTENERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.id);
    }
}

/// Whether a connection to `destination` would reach one of Sigil's own listening sockets.
///
/// # Security
///
/// Errs towards refusing: connecting to an unspecified address reaches the machine itself,
/// so it matches any listener on that port, and a listener on an unspecified address matches
/// every address that can be bound locally on that port (whichever family).
#[must_use]
pub fn is_own_listener(destination: SocketAddr) -> bool {
    let ip = canonical_ip(destination.ip());
    let listeners = LISTENERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    listeners.iter().any(|(_, listener)| {
        if listener.port() != destination.port() {
            return false;
        }
        let own = canonical_ip(listener.ip());
        own == ip || ip.is_unspecified() || (own.is_unspecified() && is_local(ip))
    })
}

/// Whether `ip` is an address of this machine: loopback, or one a socket can be bound to.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Decides each step of one attempt. The tiers implement it over the enforcer: each method is
/// one decision with its audit record.
#[async_trait::async_trait]
pub trait Gate: Send + Sync {
    /// Decides `net.connect:<host>:<port>` as the plugin named it, before any resolution.
    ///
    /// # Errors
    ///
    /// `Err(reason)` denies.
    async fn host(&self, capability: &str) -> Result<(), String>;

    /// Decides `address` (`net.connect:<ip>:<port>`), one address the host resolved to,
    /// reached through `host` (the capability [`Gate::host`] allowed), with `reach` saying
    /// what its class takes.
    ///
    /// # Errors
    ///
    /// `Err(reason)` denies this address.
    async fn address(&self, address: &str, host: &str, reach: Reach<'_>) -> Result<(), String>;
}

/// Why an attempt went nowhere.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A decision denied it.
    #[error("denied {target}: {reason}")]
    Denied {
        /// The `host:port` or `ip:port` denied.
        target: String,
        /// The rule.
        reason: String,
    },
    /// The name did not resolve.
    #[error("cannot resolve `{host}`: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// Connecting failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The `ip:port` tried.
        target: String,
        /// The error.
        source: std::io::Error,
    },
    /// Resolving and connecting took longer than allowed.
    #[error("connecting to {target} timed out")]
    Timeout {
        /// The `host:port`.
        target: String,
    },
    /// TLS with the destination failed.
    #[error("TLS with {target} failed: {reason}")]
    Tls {
        /// The `host:port`.
        target: String,
        /// What failed.
        reason: String,
    },
}

impl ConnectError {
    /// Whether a decision refused the attempt (rather than the network failing it).
    #[must_use]
    pub fn is_denied(&self) -> bool {
        matches!(self, ConnectError::Denied { .. })
    }
}

/// A connection made to a decided address.
#[derive(Debug)]
pub struct Connected {
    /// The stream.
    pub stream: TcpStream,
    /// The address it goes to.
    pub address: SocketAddr,
}

/// The addresses an attempt may go to, each decided; only [`decide`] makes one. Connecting
/// with it never resolves the name again.
#[derive(Debug, Clone)]
pub struct Decided {
    target: String,
    addresses: Vec<SocketAddr>,
}

impl Decided {
    /// The allowed addresses, in the resolver's order.
    #[must_use]
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Connects to the first allowed address that answers within `timeout`.
    ///
    /// # Errors
    ///
    /// The last address's failure, or [`ConnectError::Timeout`].
    pub async fn connect(self, timeout: Duration) -> Result<Connected, ConnectError> {
        let target = self.target;
        let attempt = async {
            let mut failure = None;
            for address in self.addresses {
                match TcpStream::connect(address).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(Connected { stream, address });
                    }
                    Err(source) => {
                        failure = Some(ConnectError::Connect {
                            target: address.to_string(),
                            source,
                        });
                    }
                }
            }
            Err(failure.unwrap_or_else(|| ConnectError::Resolve {
                host: target.clone(),
                reason: "no address".into(),
            }))
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| ConnectError::Timeout {
                target: target.clone(),
            })?
    }
}

/// The `net.connect` resource of `host:port`.
fn capability(host: &str, port: u16) -> String {
    format!("net.connect:{host}:{port}")
}

/// Decides `host:port` ([`Gate::host`]), resolves it once (within `timeout`), and decides each
/// address ([`Gate::address`]).
///
/// # Errors
///
/// [`ConnectError::Denied`] when the host, or every address it resolves to, is denied (the
/// first denial is named); [`ConnectError::Resolve`] or [`ConnectError::Timeout`] when the
/// name does not resolve.
///
/// # Security
///
/// See the module documentation: decided before resolving, resolved once, every address
/// classified and decided.
pub async fn decide(
    host: &Host,
    port: u16,
    gate: &dyn Gate,
    timeout: Duration,
) -> Result<Decided, ConnectError> {
    let shown = format!("{host}:{port}");
    let target = capability(host.as_str(), port);
    if let Err(reason) = gate.host(&target).await {
        return Err(ConnectError::Denied {
            target: shown,
            reason,
        });
    }
    let resolved = tokio::time::timeout(timeout, resolve(host, port))
        .await
        .map_err(|_| ConnectError::Timeout {
            target: shown.clone(),
        })??;
    let mut allowed = Vec::new();
    let mut denial = None;
    for address in resolved {
        let ip = canonical_ip(address.ip());
        let address = SocketAddr::new(ip, port);
        let own = format!("{address} is where Sigil itself listens");
        let class = AddressClass::of(ip);
        let reach = if is_own_listener(address) {
            Reach::Closed { reason: &own }
        } else if class.is_restricted() {
            Reach::Named {
                class: class.name(),
            }
        } else {
            Reach::Open
        };
        let decided = capability(&ip_text(ip), port);
        match gate.address(&decided, &target, reach).await {
            Ok(()) => allowed.push(address),
            Err(reason) => {
                tracing::debug!(%host, %address, %class, %reason, "egress address denied");
                denial.get_or_insert(ConnectError::Denied {
                    target: format!("{}:{port}", ip_text(ip)),
                    reason,
                });
            }
        }
    }
    if allowed.is_empty() {
        return Err(denial.unwrap_or(ConnectError::Resolve {
            host: host.to_string(),
            reason: "no address".into(),
        }));
    }
    Ok(Decided {
        target: shown,
        addresses: allowed,
    })
}

/// [`decide`]s `host:port`, then connects to the first allowed address that answers; each
/// step within `timeout`.
///
/// # Errors
///
/// As [`decide`] and [`Decided::connect`].
pub async fn connect(
    host: &Host,
    port: u16,
    gate: &dyn Gate,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    decide(host, port, gate, timeout)
        .await?
        .connect(timeout)
        .await
}

/// The addresses of `host`: itself when it is one, else what the system resolver says, in
/// its order, mapped IPv6 as IPv4, without repeats, at most [`MAX_ADDRESSES`].
async fn resolve(host: &Host, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Some(ip) = host.ip() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|error| ConnectError::Resolve {
            host: host.to_string(),
            reason: error.to_string(),
        })?;
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in found {
        let address = SocketAddr::new(canonical_ip(address.ip()), port);
        if !addresses.contains(&address) {
            addresses.push(address);
        }
        if addresses.len() == MAX_ADDRESSES {
            break;
        }
    }
    Ok(addresses)
}

/// Where an `http` or `https` URI goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDestination {
    /// The canonical host.
    pub host: Host,
    /// The port: the URI's, else 80 or 443 by scheme.
    pub port: u16,
    /// Whether the scheme is `https`.
    pub tls: bool,
}

impl HttpDestination {
    /// Reads the destination of an absolute `http` or `https` URI.
    ///
    /// # Errors
    ///
    /// Another scheme, no host, user information, port 0, or a host [`Host::parse`] refuses.
    pub fn of(uri: &http::Uri) -> Result<HttpDestination, HostError> {
        let shown = uri.to_string();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HostError::new(&shown, "the URI must be http or https")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| HostError::new(&shown, "the URI has no host"))?;
        if authority.as_str().contains('@') {
            return Err(HostError::new(
                &shown,
                "the URI must not carry user information",
            ));
        }
        if authority.port().is_some() && authority.port_u16().is_none() {
            return Err(HostError::new(&shown, "the URI has an invalid port"));
        }
        let port = match authority.port_u16() {
            Some(0) => return Err(HostError::new(&shown, "the URI names port 0")),
            Some(port) => port,
            None if tls => 443,
            None => 80,
        };
        Ok(HttpDestination {
            host: Host::parse(authority.host())?,
            port,
            tls,
        })
    }

    /// The `Host` header value: the host, with the port when it is not the scheme's default.
    #[must_use]
    pub fn host_header(&self) -> String {
        if self.port == if self.tls { 443 } else { 80 } {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A byte stream to an HTTP destination: plain TCP or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Connects to an address `decided` for `destination` and, for `https`, speaks TLS over the
/// connection with the certificate checked against the host as named (web PKI roots).
///
/// # Errors
///
/// As [`Decided::connect`], and [`ConnectError::Tls`].
pub async fn connect_http(
    decided: Decided,
    destination: &HttpDestination,
    timeout: Duration,
) -> Result<Box<dyn Stream>, ConnectError> {
    let connected = decided.connect(timeout).await?;
    if !destination.tls {
        return Ok(Box::new(connected.stream));
    }
    let target = format!("{}:{}", destination.host, destination.port);
    let tls_error = |reason: String| ConnectError::Tls {
        target: target.clone(),
        reason,
    };
    let name = match destination.host.ip() {
        Some(ip) => ServerName::from(ip),
        None => ServerName::try_from(destination.host.as_str().to_string())
            .map_err(|e| tls_error(format!("not a TLS server name: {e}")))?,
    };
    let connector = tls_connector().map_err(tls_error)?;
    let stream = tokio::time::timeout(timeout, connector.connect(name, connected.stream))
        .await
        .map_err(|_| ConnectError::Timeout {
            target: target.clone(),
        })?
        .map_err(|e| tls_error(e.to_string()))?;
    Ok(Box::new(stream))
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    use tokio_rustls::rustls;
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("cannot configure TLS: {e}"))
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn hosts_canonicalise_to_one_spelling_or_are_refused() {
        let table = [
            ("Example.COM.", Some("example.com")),
            ("example.com", Some("example.com")),
            ("LOCALHOST", Some("localhost")),
            ("localhost.", Some("localhost")),
            ("127.0.0.1", Some("127.0.0.1")),
            ("0.0.0.0", Some("0.0.0.0")),
            ("[::1]", Some("[::1]")),
            ("[0:0:0:0:0:0:0:1]", Some("[::1]")),
            ("[::FFFF:127.0.0.1]", Some("127.0.0.1")),
            ("[0:0:0:0:0:ffff:7f00:1]", Some("127.0.0.1")),
            ("[2001:DB8::1]", Some("[2001:db8::1]")),
            ("xn--exmple-cua.com", Some("xn--exmple-cua.com")),
            ("my_host.internal", Some("my_host.internal")),
            ("127.1", Some("127.0.0.1")),
            ("2130706433", Some("127.0.0.1")),
            ("0", Some("0.0.0.0")),
            ("0x7f.0.0.1", Some("127.0.0.1")),
            ("0X7F.0.0.1", Some("127.0.0.1")),
            ("0x7f000001", Some("127.0.0.1")),
            ("0177.0.0.1", Some("127.0.0.1")),
            ("127.000.000.001", Some("127.0.0.1")),
            ("127.0.1", Some("127.0.0.1")),
            ("169.254.43518", Some("169.254.169.254")),
            // A resolver looks `2130706433.` up as a name; `inet_aton` refuses it.
            ("2130706433.", None),
            ("127.0.0.1.", None),
            ("example.0x", None),
            ("1.2.3.4.5", None),
            ("256.0.0.1", None),
            ("08.0.0.1", None),
            ("4294967296", None),
            ("[::127.0.0.1]", Some("[::7f00:1]")),
            ("[fe80::1%25eth0]", None),
            ("a..b", None),
            ("", None),
            (".", None),
            ("[::1", None),
            ("ex%61mple.com", None),
            ("exämple.com", None),
            ("ｌｏｃａｌｈｏｓｔ", None),
        ];
        for (raw, want) in table {
            assert_eq!(
                Host::parse(raw).ok().as_ref().map(Host::as_str),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn addresses_fall_into_their_classes() {
        let table = [
            ("8.8.8.8", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("100.128.0.1", AddressClass::Public),
            ("fd00::1", AddressClass::Private),
            ("fc00::1", AddressClass::Private),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            ("::127.0.0.1", AddressClass::Reserved),
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("2002:7f00:1::", AddressClass::Loopback),
        ];
        for (text, want) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(AddressClass::of(ip), want, "{text}");
            assert_eq!(want.is_restricted(), want != AddressClass::Public);
        }
    }

    #[test]
    fn a_protected_listener_covers_its_address_and_every_local_one_when_unspecified() {
        let loopback: SocketAddr = "127.0.0.1:41001".parse().unwrap();
        let guard = protect_listener(loopback);
        assert!(is_own_listener(loopback));
        assert!(is_own_listener("[::ffff:127.0.0.1]:41001".parse().unwrap()));
        assert!(is_own_listener("0.0.0.0:41001".parse().unwrap()));
        assert!(is_own_listener("[::]:41001".parse().unwrap()));
        assert!(!is_own_listener("127.0.0.1:41002".parse().unwrap()));
        drop(guard);
        assert!(!is_own_listener(loopback));

        let any = protect_listener("0.0.0.0:41003".parse().unwrap());
        assert!(is_own_listener("127.0.0.1:41003".parse().unwrap()));
        assert!(is_own_listener("127.0.0.2:41003".parse().unwrap()));
        assert!(is_own_listener("[::1]:41003".parse().unwrap()));
        assert!(!is_own_listener("192.0.2.1:41003".parse().unwrap()));
        drop(any);
    }

    #[test]
    fn http_destinations_take_the_scheme_default_port() {
        let of = |uri: &str| HttpDestination::of(&uri.parse().unwrap());
        let d = of("https://Example.com./x").unwrap();
        assert_eq!((d.host.as_str(), d.port, d.tls), ("example.com", 443, true));
        assert_eq!(d.host_header(), "example.com");
        let d = of("http://[::ffff:7f00:1]:8080/").unwrap();
        assert_eq!((d.host.as_str(), d.port, d.tls), ("127.0.0.1", 8080, false));
        assert_eq!(d.host_header(), "127.0.0.1:8080");
        assert_eq!(of("http://2130706433/").unwrap().host.as_str(), "127.0.0.1");
        assert!(of("http://1.2.3.4.5/").is_err());
        assert!(of("ftp://example.com/").is_err());
        assert!(of("http://user@example.com/").is_err());
        assert!(of("http://example.com:0/").is_err());
    }
}
