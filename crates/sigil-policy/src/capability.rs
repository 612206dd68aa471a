//! The capability grammar: concrete capabilities (what a call needs) and
//! patterns (what a grant or a deny covers).
//!
//! ```text
//! capability := action [ ":" resource ]
//! action     := segment ( "." segment )*          segment: [A-Za-z0-9_-]+, patterns may glob with `*`
//! resource   := path | host [ ":" port ] | name    chosen by the action's first segment:
//!               fs  → path  (absolute, normalised; `*` within a component, `**` across components)
//!               net → host  (labels split on `.`; `*` as a label matches one or more labels;
//!                            port exact or `*`; a pattern without a port matches any port)
//!               any other namespace → name (opaque; `*` matches any run of characters)
//! ```
//!
//! Legacy forms are lifted into this grammar when parsed:
//! - Wingman `resource:action[:action…]` (`docker:restart`, `proxmox:snapshot:create`) becomes
//!   `docker.restart`, `proxmox.snapshot.create`. It is recognised by a first part without a dot;
//!   native capabilities with a resource therefore always have an action of two or more segments.
//! - Sigil (Go) path capabilities `filesystem.read./data/*` become `fs.read:/data/*`: the first
//!   `./` starts the path, and the namespace `filesystem` is renamed `fs`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::CapabilityError;

/// Which grammar a capability's resource follows. Chosen by the namespace (first action segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// Filesystem paths (`fs.*`).
    Path,
    /// Network destinations (`net.*`).
    Host,
    /// Opaque names: secrets, keys, container names.
    Name,
}

impl ResourceKind {
    /// The resource kind used by capabilities in `namespace`.
    pub fn for_namespace(namespace: &str) -> ResourceKind {
        match namespace {
            "fs" => ResourceKind::Path,
            "net" => ResourceKind::Host,
            _ => ResourceKind::Name,
        }
    }
}

/// A concrete capability a call needs, such as `fs.read:/data/report.txt`.
///
/// It contains no wildcards: a `*` in a path or a name is an ordinary character.
/// Paths are normalised when parsed, so `/data/../etc/shadow` *is* `/etc/shadow`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Capability {
    text: String,
    pub(crate) action: Vec<Box<str>>,
    pub(crate) resource: Option<Resource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Path(Vec<Box<str>>),
    Host {
        labels: Vec<Box<str>>,
        port: Option<u16>,
    },
    Name(Box<str>),
}

/// A capability pattern from a grant, a consent, an allow list or a deny list.
///
/// Cheap to clone: the compiled form is shared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    inner: std::sync::Arc<PatternInner>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PatternInner {
    text: String,
    pub(crate) action: Vec<Seg>,
    pub(crate) resource: Option<ResourcePattern>,
}

/// One segment of an action, a host label, or a path component, in a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    /// Matches exactly this text.
    Lit(Box<str>),
    /// Matches one segment by glob (`tele*`, `*`-in-a-path-component).
    Glob(Glob),
    /// Matches one or more whole segments (`*` as an action segment or host label).
    Many,
    /// Matches zero or more whole path components (`**`).
    Deep,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ResourcePattern {
    Path(Vec<Seg>),
    Host { labels: Vec<Seg>, port: PortPattern },
    Name(Seg),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PortPattern {
    /// No port given, or `*`.
    Any,
    Exact(u16),
}

/// A single-segment glob: the text split at each `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Glob {
    parts: Vec<Box<str>>,
}

impl Glob {
    fn new(text: &str) -> Glob {
        Glob {
            parts: text.split('*').map(Box::from).collect(),
        }
    }

    /// Whether `text` matches: the first part is a prefix, the last a suffix,
    /// and the parts between appear in order.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some(mut remaining) = text.strip_prefix(&**first) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty();
        };
        for part in middle {
            match remaining.find(&**part) {
                Some(at) => remaining = &remaining[at + part.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(&**last)
    }
}

impl Capability {
    /// Parses a concrete capability.
    ///
    /// # Errors
    /// When the text breaks the grammar: an empty or malformed segment, a `*` in the action,
    /// a relative path, a bad port, a control character.
    pub fn parse(text: &str) -> Result<Capability, CapabilityError> {
        let (action, resource) = split(text)?;
        let mut segments = Vec::new();
        for segment in action.split('.') {
            check_segment(text, segment)?;
            if segment.contains('*') {
                return Err(CapabilityError::new(
                    text,
                    "a capability being checked cannot contain `*` in its action",
                ));
            }
            segments.push(Box::from(segment));
        }
        let resource = match resource {
            None => None,
            Some(raw) => Some(match ResourceKind::for_namespace(&segments[0]) {
                ResourceKind::Path => Resource::Path(normalise_path(text, &raw)?),
                ResourceKind::Host => {
                    let (host, port) = split_host(text, &raw)?;
                    let port = match port {
                        None => None,
                        Some(port) => Some(parse_port(text, port)?),
                    };
                    let labels = host_labels(text, host)?;
                    if labels.iter().any(|label| label.contains('*')) {
                        return Err(CapabilityError::new(
                            text,
                            "a host being checked cannot contain `*`",
                        ));
                    }
                    Resource::Host { labels, port }
                }
                ResourceKind::Name => Resource::Name(check_name(text, &raw)?.into()),
            }),
        };
        let capability = Capability {
            text: String::new(),
            action: segments,
            resource,
        };
        Ok(Capability {
            text: capability.render(),
            ..capability
        })
    }

    /// The canonical text, e.g. `fs.read:/etc/shadow` for `filesystem.read./data/../etc/shadow`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first action segment (`fs`, `net`, `tool`, …).
    pub fn namespace(&self) -> &str {
        self.action.first().map(|s| &**s).unwrap_or("")
    }

    fn render(&self) -> String {
        let mut out = self.action.join(".");
        match &self.resource {
            None => {}
            Some(Resource::Path(components)) => {
                out.push(':');
                if components.is_empty() {
                    out.push('/');
                }
                for component in components {
                    out.push('/');
                    out.push_str(component);
                }
            }
            Some(Resource::Host { labels, port }) => {
                out.push(':');
                out.push_str(&labels.join("."));
                if let Some(port) = port {
                    out.push(':');
                    out.push_str(&port.to_string());
                }
            }
            Some(Resource::Name(name)) => {
                out.push(':');
                out.push_str(name);
            }
        }
        out
    }
}

impl Pattern {
    /// Parses a capability pattern.
    ///
    /// # Errors
    /// When the text breaks the grammar, when a resource scope follows a namespace that is
    /// itself a wildcard, or when a path pattern contains `.` or `..` components.
    pub fn parse(text: &str) -> Result<Pattern, CapabilityError> {
        let (action, resource) = split(text)?;
        let mut segments = Vec::new();
        for segment in action.split('.') {
            check_segment(text, segment)?;
            segments.push(segment_pattern(segment));
        }
        let resource = match resource {
            None => None,
            Some(raw) => {
                let Some(Seg::Lit(namespace)) = segments.first() else {
                    return Err(CapabilityError::new(
                        text,
                        "a resource scope needs a literal namespace before it, such as `fs` or `net`",
                    ));
                };
                Some(match ResourceKind::for_namespace(namespace) {
                    ResourceKind::Path => ResourcePattern::Path(path_pattern(text, &raw)?),
                    ResourceKind::Host => {
                        let (host, port) = split_host(text, &raw)?;
                        let port = match port {
                            None | Some("*") => PortPattern::Any,
                            Some(port) => PortPattern::Exact(parse_port(text, port)?),
                        };
                        let labels = host_labels(text, host)?
                            .iter()
                            .map(|label| segment_pattern(label))
                            .collect();
                        ResourcePattern::Host { labels, port }
                    }
                    ResourceKind::Name => {
                        ResourcePattern::Name(name_pattern(check_name(text, &raw)?))
                    }
                })
            }
        };
        let text = render_pattern(&segments, resource.as_ref());
        Ok(Pattern {
            inner: std::sync::Arc::new(PatternInner {
                text,
                action: segments,
                resource,
            }),
        })
    }

    /// Whether this pattern could cover `capability` *or anything below it*: for a path, any
    /// path at or under it. A host uses this before handing a plugin a whole directory (a WASI
    /// preopen), which must not contain anything a deny carves out.
    pub fn may_cover_within(&self, capability: &Capability) -> bool {
        let action: Vec<&str> = capability.action.iter().map(|s| &**s).collect();
        if !match_segments(&self.inner.action, &action) {
            return false;
        }
        match (&self.inner.resource, &capability.resource) {
            (None, _) => true,
            (Some(ResourcePattern::Path(pattern)), Some(Resource::Path(dir))) => {
                let dir: Vec<&str> = dir.iter().map(|s| &**s).collect();
                covers_below(pattern, &dir)
            }
            _ => self.matches(capability),
        }
    }

    /// The canonical text of the pattern.
    pub fn as_str(&self) -> &str {
        &self.inner.text
    }

    /// Whether this pattern names one host: a `net` resource whose host has no wildcard
    /// (`net.connect:127.0.0.1:8080`, `net.connect:localhost`), whatever its port. A grant
    /// like this is what reaching a restricted address (loopback, private, ...) takes; a
    /// wildcard (`net.connect:*`, `net.connect:*.example.com`) never names one.
    pub fn names_host(&self) -> bool {
        match &self.inner.resource {
            Some(ResourcePattern::Host { labels, .. }) => {
                labels.iter().all(|label| matches!(label, Seg::Lit(_)))
            }
            _ => false,
        }
    }

    pub(crate) fn parts(&self) -> &PatternInner {
        &self.inner
    }

    /// Whether this pattern covers `capability`.
    ///
    /// This is the direct, uncompiled matcher; [`crate::CapabilitySet`] compiles many
    /// patterns into one structure and must agree with it.
    pub fn matches(&self, capability: &Capability) -> bool {
        let action: Vec<&str> = capability.action.iter().map(|s| &**s).collect();
        if !match_segments(&self.inner.action, &action) {
            return false;
        }
        match (&self.inner.resource, &capability.resource) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(ResourcePattern::Path(pattern)), Some(Resource::Path(path))) => {
                let path: Vec<&str> = path.iter().map(|s| &**s).collect();
                match_segments(pattern, &path)
            }
            (
                Some(ResourcePattern::Host { labels, port }),
                Some(Resource::Host {
                    labels: host,
                    port: wanted,
                }),
            ) => {
                let host: Vec<&str> = host.iter().map(|s| &**s).collect();
                let port_ok = match (port, wanted) {
                    (PortPattern::Any, _) => true,
                    (PortPattern::Exact(p), Some(w)) => p == w,
                    (PortPattern::Exact(_), None) => false,
                };
                port_ok && match_segments(labels, &host)
            }
            (Some(ResourcePattern::Name(pattern)), Some(Resource::Name(name))) => {
                match_segments(std::slice::from_ref(pattern), &[&**name])
            }
            _ => false,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.text)
    }
}

impl std::str::FromStr for Capability {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::parse(s)
    }
}

impl std::str::FromStr for Pattern {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

fn render_pattern(action: &[Seg], resource: Option<&ResourcePattern>) -> String {
    let mut out = action.iter().map(render_seg).collect::<Vec<_>>().join(".");
    match resource {
        None => {}
        Some(ResourcePattern::Path(components)) => {
            out.push(':');
            if components.is_empty() {
                out.push('/');
            }
            for component in components {
                out.push('/');
                out.push_str(&render_seg(component));
            }
        }
        Some(ResourcePattern::Host { labels, port }) => {
            out.push(':');
            out.push_str(&labels.iter().map(render_seg).collect::<Vec<_>>().join("."));
            if let PortPattern::Exact(port) = port {
                out.push(':');
                out.push_str(&port.to_string());
            }
        }
        Some(ResourcePattern::Name(name)) => {
            out.push(':');
            out.push_str(&render_seg(name));
        }
    }
    out
}

/// Whether some path at or below `dir` matches `pattern`.
fn covers_below(pattern: &[Seg], dir: &[&str]) -> bool {
    let Some((first, rest)) = dir.split_first() else {
        // `dir` is used up: whatever is left of the pattern can match something beneath it.
        return true;
    };
    match pattern.split_first() {
        None => false,
        Some((Seg::Deep, tail)) => covers_below(tail, dir) || covers_below(pattern, rest),
        Some((Seg::Many, tail)) => covers_below(tail, rest) || covers_below(pattern, rest),
        Some((Seg::Lit(lit), tail)) => **lit == **first && covers_below(tail, rest),
        Some((Seg::Glob(glob), tail)) => glob.matches(first) && covers_below(tail, rest),
    }
}

/// Straightforward backtracking match of pattern segments against input segments.
pub(crate) fn match_segments(pattern: &[Seg], input: &[&str]) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return input.is_empty();
    };
    match first {
        Seg::Lit(lit) => input.first() == Some(&&**lit) && match_segments(rest, &input[1..]),
        Seg::Glob(glob) => {
            input.first().is_some_and(|seg| glob.matches(seg)) && match_segments(rest, &input[1..])
        }
        Seg::Many => (1..=input.len()).any(|n| match_segments(rest, &input[n..])),
        Seg::Deep => (0..=input.len()).any(|n| match_segments(rest, &input[n..])),
    }
}

fn render_seg(seg: &Seg) -> String {
    match seg {
        Seg::Lit(lit) => lit.to_string(),
        Seg::Glob(glob) => glob.parts.join("*"),
        Seg::Many => "*".to_string(),
        Seg::Deep => "**".to_string(),
    }
}

fn segment_pattern(segment: &str) -> Seg {
    if segment == "*" {
        Seg::Many
    } else if segment.contains('*') {
        Seg::Glob(Glob::new(segment))
    } else {
        Seg::Lit(segment.into())
    }
}

fn name_pattern(name: &str) -> Seg {
    if name.contains('*') {
        Seg::Glob(Glob::new(name))
    } else {
        Seg::Lit(name.into())
    }
}

/// Splits text into action and resource, lifting the legacy forms.
fn split(text: &str) -> Result<(String, Option<String>), CapabilityError> {
    if text.is_empty() {
        return Err(CapabilityError::new(text, "a capability cannot be empty"));
    }
    if let Some(bad) = text.chars().find(|c| c.is_control()) {
        return Err(CapabilityError::new(
            text,
            format!("a capability cannot contain control characters (found {bad:?})"),
        ));
    }
    match text.split_once(':') {
        Some((head, tail)) if !head.contains('.') => {
            // Wingman `resource:action[:action…]`.
            let parts: Vec<&str> = text.split(':').collect();
            if parts
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(is_segment_char))
            {
                return Err(CapabilityError::new(
                    text,
                    "a resource scope needs an action of two or more segments before `:` \
                     (`resource:action` is read as the Wingman form, whose parts are plain words)",
                ));
            }
            let _ = tail;
            Ok((parts.join("."), None))
        }
        Some((head, tail)) => {
            if tail.is_empty() {
                return Err(CapabilityError::new(
                    text,
                    format!("capability `{head}` has an empty resource after `:`"),
                ));
            }
            Ok((head.to_string(), Some(tail.to_string())))
        }
        None => match text.find("./") {
            // Sigil (Go) `filesystem.read./data/*`.
            Some(at) => {
                let action = &text[..at];
                let path = &text[at + 1..];
                // As in the native form, a resource follows an action of two or more segments:
                // `fs./etc` would otherwise read as `fs:/etc`, which is no capability at all.
                if !action.contains('.') {
                    return Err(CapabilityError::new(
                        text,
                        format!(
                            "a resource scope needs an action of two or more segments before it, not `{action}`"
                        ),
                    ));
                }
                let action = match action.split_once('.') {
                    Some(("filesystem", rest)) => format!("fs.{rest}"),
                    _ => action.to_string(),
                };
                Ok((action, Some(path.to_string())))
            }
            None => Ok((text.to_string(), None)),
        },
    }
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '*'
}

fn check_segment(text: &str, segment: &str) -> Result<(), CapabilityError> {
    if segment.is_empty() {
        return Err(CapabilityError::new(text, "an action has an empty segment"));
    }
    if let Some(bad) = segment.chars().find(|c| c.is_whitespace()) {
        return Err(CapabilityError::new(
            text,
            format!("action segment `{segment}` contains whitespace ({bad:?})"),
        ));
    }
    if let Some(bad) = segment.chars().find(|c| !is_segment_char(*c)) {
        return Err(CapabilityError::new(
            text,
            format!(
                "action segment `{segment}` contains `{bad}`; use letters, digits, `_`, `-` or `*`"
            ),
        ));
    }
    if segment.contains("**") {
        return Err(CapabilityError::new(
            text,
            format!(
                "action segment `{segment}` contains `**`; `*` alone already matches one or more segments"
            ),
        ));
    }
    Ok(())
}

fn check_name<'a>(text: &str, name: &'a str) -> Result<&'a str, CapabilityError> {
    if name.is_empty() {
        return Err(CapabilityError::new(text, "the resource name is empty"));
    }
    Ok(name)
}

fn split_components<'a>(text: &str, path: &'a str) -> Result<Vec<&'a str>, CapabilityError> {
    if !path.starts_with('/') {
        return Err(CapabilityError::new(
            text,
            format!("path `{path}` must be absolute (start with `/`)"),
        ));
    }
    Ok(path.split('/').filter(|c| !c.is_empty()).collect())
}

/// Lexical normalisation: `.` dropped, `..` removes the previous component (never above `/`).
fn normalise_path(text: &str, path: &str) -> Result<Vec<Box<str>>, CapabilityError> {
    let mut out: Vec<Box<str>> = Vec::new();
    for component in split_components(text, path)? {
        match component {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other.into()),
        }
    }
    Ok(out)
}

fn path_pattern(text: &str, path: &str) -> Result<Vec<Seg>, CapabilityError> {
    let mut out = Vec::new();
    for component in split_components(text, path)? {
        match component {
            "." | ".." => {
                return Err(CapabilityError::new(
                    text,
                    format!(
                        "path pattern `{path}` contains `{component}`; write the normalised path"
                    ),
                ));
            }
            "**" => {
                // `**/**` means the same as `**`.
                if out.last() != Some(&Seg::Deep) {
                    out.push(Seg::Deep);
                }
            }
            c if c.contains("**") => {
                return Err(CapabilityError::new(
                    text,
                    format!("`**` must be a whole path component, not part of `{c}`"),
                ));
            }
            c if c.contains('*') => out.push(Seg::Glob(Glob::new(c))),
            c => out.push(Seg::Lit(c.into())),
        }
    }
    Ok(out)
}

fn split_host<'a>(text: &str, raw: &'a str) -> Result<(&'a str, Option<&'a str>), CapabilityError> {
    if let Some(rest) = raw.strip_prefix('[') {
        // Bracketed IPv6: `[::1]:8080`.
        let Some(close) = rest.find(']') else {
            return Err(CapabilityError::new(
                text,
                format!("host `{raw}` is missing `]`"),
            ));
        };
        let host = &raw[..close + 2];
        return match &raw[close + 2..] {
            "" => Ok((host, None)),
            tail => match tail.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(CapabilityError::new(
                    text,
                    format!("unexpected `{tail}` after host `{host}`"),
                )),
            },
        };
    }
    match raw.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((raw, None)),
    }
}

fn parse_port(text: &str, port: &str) -> Result<u16, CapabilityError> {
    port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
        CapabilityError::new(
            text,
            format!("port `{port}` is not a number from 1 to 65535 or `*`"),
        )
    })
}

/// Reads a host: lower case, no trailing dot, and an IP address in its one spelling.
///
/// # Security
/// A decision is made on this text, and a connection made to what a resolver makes of the
/// text the plugin wrote, so both must name one destination. An IPv6 address is written
/// canonically, an IPv4-mapped one as the IPv4 address it reaches, and the numeric forms a
/// resolver reads as an IPv4 address (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`) as
/// that address in dotted-quad form, so a deny on `127.0.0.1` covers every spelling of it.
/// A host whose last label is a number but no address is refused, with a trailing dot too
/// (`127.0.0.1.` is a name to a resolver): no name ends so. Hosts with a `*` (patterns) are
/// left as written.
fn host_labels(text: &str, host: &str) -> Result<Vec<Box<str>>, CapabilityError> {
    let rooted = host.ends_with('.');
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return Err(CapabilityError::new(text, "the host is empty"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if inner.contains('*') {
            return Ok(vec![host.into()]);
        }
        let address: Ipv6Addr = inner.parse().map_err(|_| {
            CapabilityError::new(text, format!("host `{host}` is not an IPv6 address"))
        })?;
        return Ok(match address.to_ipv4_mapped() {
            Some(v4) => ipv4_labels(v4),
            None => vec![format!("[{address}]").into()],
        });
    }
    let labels = host
        .split('.')
        .map(|label| {
            if label.is_empty()
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*' || c == '_')
            {
                Err(CapabilityError::new(
                    text,
                    format!("host `{host}` has an invalid label `{label}`"),
                ))
            } else {
                Ok(label.into())
            }
        })
        .collect::<Result<Vec<Box<str>>, _>>()?;
    let numeric = labels.last().is_some_and(|last| is_number(last));
    if host.contains('*') || !numeric {
        return Ok(labels);
    }
    // With a trailing dot, numbers are no address to a resolver but a name to look up.
    match numeric_ipv4(&host).filter(|_| !rooted) {
        Some(address) => Ok(ipv4_labels(address)),
        None => Err(CapabilityError::new(
            text,
            format!("host `{host}` is neither a name nor an IPv4 address"),
        )),
    }
}

fn ipv4_labels(address: Ipv4Addr) -> Vec<Box<str>> {
    address
        .octets()
        .iter()
        .map(|o| o.to_string().into())
        .collect()
}

/// Whether a label is a number as an address part is written: decimal, octal (a leading
/// `0`) or hexadecimal (`0x`).
fn is_number(label: &str) -> bool {
    match label.strip_prefix("0x") {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// The IPv4 address a resolver reads from numbers and dots, as `inet_aton(3)` does: one to
/// four parts, each decimal, octal (leading `0`) or hexadecimal (`0x`, alone meaning 0), the
/// last filling the bytes the others leave.
fn numeric_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts = host
        .split('.')
        .map(address_part)
        .collect::<Option<Vec<u32>>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|part| *part > 0xff) {
        return None;
    }
    let room = 32 - 8 * leading.len() as u32;
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, part)| acc | part << (24 - 8 * i as u32));
    Some(Ipv4Addr::from(high | last))
}

fn address_part(part: &str) -> Option<u32> {
    let (digits, radix) = match part.strip_prefix("0x") {
        Some("") => return Some(0),
        Some(hex) => (hex, 16),
        None if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
        None => (part, 10),
    };
    u32::from_str_radix(digits, radix).ok()
}
