//! An independent model of what address a host spelling reaches, written from the C
//! library's documented behaviour rather than from Sigil's code, so the fuzz targets can check
//! that a decision names exactly what the connection reaches.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What a host spelling reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// An IPv4 address (including one spelled as an IPv4-mapped IPv6 address).
    V4(Ipv4Addr),
    /// An IPv6 address.
    V6(Ipv6Addr),
    /// A name the resolver looks up: compared without case and without a trailing dot.
    Name(String),
}

impl Reached {
    /// The one spelling a `net.connect` decision must use for this destination.
    pub fn canonical(&self) -> String {
        match self {
            Reached::V4(address) => address.to_string(),
            Reached::V6(address) => format!("[{address}]"),
            Reached::Name(name) => name.clone(),
        }
    }
}

/// What connecting to `host` (a URI host, IPv6 in brackets or not) reaches.
pub fn reached(host: &str) -> Reached {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return match v6.to_ipv4_mapped() {
            Some(v4) => Reached::V4(v4),
            None => Reached::V6(v6),
        };
    }
    if let Some(v4) = inet_aton(bare) {
        return Reached::V4(v4);
    }
    let lower = bare.to_ascii_lowercase();
    Reached::Name(lower.strip_suffix('.').unwrap_or(&lower).to_string())
}

/// The numbers-and-dots forms that `inet_aton(3)` (and so `getaddrinfo`) reads as an IPv4
/// address: one to four parts, each decimal, octal (leading `0`) or hexadecimal (`0x`), the
/// last part filling the remaining bytes.
pub fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        values.push(number(part)?);
    }
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|v| *v > 0xff) {
        return None;
    }
    let room = 8 * (4 - leading.len() as u32);
    if room < 32 && *last >= 1u64 << room {
        return None;
    }
    if *last > u64::from(u32::MAX) {
        return None;
    }
    let mut address: u64 = 0;
    for (i, value) in leading.iter().enumerate() {
        address |= value << (24 - 8 * i as u32);
    }
    address |= last;
    u32::try_from(address).ok().map(Ipv4Addr::from)
}

fn number(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            // `0x` alone reads as 0.
            if hex.is_empty() {
                return Some(0);
            }
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // `strtoul` reads any number of leading zeros; past them, longer than any 32-bit value
    // in any radix is out of range, not a wrap-around.
    let significant = digits.trim_start_matches('0');
    if significant.len() > 32 {
        return None;
    }
    if significant.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(significant, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_forms() {
        let table = [
            ("127.0.0.1", Some([127, 0, 0, 1])),
            ("127.1", Some([127, 0, 0, 1])),
            ("2130706433", Some([127, 0, 0, 1])),
            ("0x7f.0.0.1", Some([127, 0, 0, 1])),
            ("0177.0.0.01", Some([127, 0, 0, 1])),
            ("0x7f000001", Some([127, 0, 0, 1])),
            // `strtoul` reads any number of leading zeros.
            ("000000000000000000000000000000002445", Some([0, 0, 5, 37])),
            ("0x00000000000000000000000000000000000000007f000001", Some([127, 0, 0, 1])),
            ("256.0.0.1", None),
            ("1.2.3.4.5", None),
            ("08.1", None),
            ("example.com", None),
            ("", None),
            ("1..2", None),
        ];
        for (text, want) in table {
            assert_eq!(inet_aton(text), want.map(Ipv4Addr::from), "{text}");
        }
    }
}
