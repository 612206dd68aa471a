//! Entry points for the fuzz targets under `fuzz/`: the parsing that turns an untrusted
//! request head into a [`Target`]. Not part of the crate's API; hidden from its docs.

use http::{HeaderMap, Method, Uri};

use crate::Target;
use crate::target::{self, BadRequest};

/// What the proxy makes of a request head before any decision: `CONNECT` is a tunnel, any
/// other method a plain request.
///
/// # Errors
/// Why the request is refused with `400`.
pub fn target(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Target, String> {
    let parsed = if method == Method::CONNECT {
        target::tunnel_target(uri, headers)
    } else {
        target::http_target(method, uri, headers)
    };
    parsed.map_err(|BadRequest(why)| why)
}

/// The host normalisation every target goes through.
///
/// # Errors
/// Why the host is refused.
pub fn normalise_host(raw: &str) -> Result<String, String> {
    target::normalise_host(raw)
}
