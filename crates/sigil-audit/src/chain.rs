//! The two chain rules: the keyed one (HMAC-SHA256) every record follows since its log was
//! created or upgraded, and the unkeyed one (SHA-256) of records written before keyed chains
//! existed. Also the MACs that protect the chain head and the record of where the keyed chain
//! begins.
//!
//! Every MAC input is domain separated. A record's input starts with its `prev_hash` and ends
//! with its canonical JSON (which starts with `{"v":`); the head's and the marker's inputs start
//! with a `sigil-audit …` tag and hold only digits and hex after it, so no MAC of one kind can
//! pass for one of another.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a chain key.
pub(crate) const CHAIN_KEY_BYTES: usize = 32;

/// The secret the chain is keyed with, prepared once: each MAC clones the keyed state, so
/// keying costs nothing per record.
///
/// `Debug` shows only the key's public id.
#[derive(Clone)]
pub(crate) struct ChainKey {
    keyed: HmacSha256,
    id: String,
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ChainKey {
    /// The key in `bytes`, which must be exactly [`CHAIN_KEY_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<ChainKey> {
        if bytes.len() != CHAIN_KEY_BYTES {
            return None;
        }
        let keyed = HmacSha256::new_from_slice(bytes).ok()?;
        let mut id_mac = keyed.clone();
        id_mac.update(b"sigil-audit key id");
        let id = to_hex(&id_mac.finalize().into_bytes()[..8]);
        Some(ChainKey { keyed, id })
    }

    /// A public name for the key (16 hex digits, a MAC of a fixed text): tells two keys apart
    /// in messages without revealing either.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A record's chain value: `hex(HMAC-SHA256(key, prev_hash || canonical_json))`.
    pub fn record_mac(&self, prev_hash: &str, canonical_json: &[u8]) -> String {
        to_hex(
            &self
                .record(prev_hash, canonical_json)
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `stored` is the record's chain value, compared in constant time.
    pub fn record_mac_matches(&self, prev_hash: &str, canonical_json: &[u8], stored: &str) -> bool {
        matches(self.record(prev_hash, canonical_json), stored)
    }

    /// The MAC of the chain head: the last sequence number and its chain value.
    pub fn head_mac(&self, seq: u64, hash: &str) -> String {
        to_hex(&self.head(seq, hash).finalize().into_bytes())
    }

    /// Whether `stored` is the head's MAC.
    pub fn head_mac_matches(&self, seq: u64, hash: &str, stored: &str) -> bool {
        matches(self.head(seq, hash), stored)
    }

    /// The MAC of the marker saying where the keyed chain begins: the first keyed record and
    /// the chain value it continues from (the legacy head, or [`crate::GENESIS_HASH`]).
    pub fn marker_mac(&self, keyed_from: u64, legacy_head: &str) -> String {
        to_hex(&self.marker(keyed_from, legacy_head).finalize().into_bytes())
    }

    /// Whether `stored` is the marker's MAC.
    pub fn marker_mac_matches(&self, keyed_from: u64, legacy_head: &str, stored: &str) -> bool {
        matches(self.marker(keyed_from, legacy_head), stored)
    }

    fn record(&self, prev_hash: &str, canonical_json: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(prev_hash.as_bytes());
        mac.update(canonical_json);
        mac
    }

    fn head(&self, seq: u64, hash: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"sigil-audit head\n");
        mac.update(seq.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(hash.as_bytes());
        mac
    }

    fn marker(&self, keyed_from: u64, legacy_head: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"sigil-audit keyed-from\n");
        mac.update(keyed_from.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(legacy_head.as_bytes());
        mac
    }
}

fn matches(mac: HmacSha256, stored: &str) -> bool {
    match from_hex32(stored) {
        Some(bytes) => mac.verify_slice(&bytes).is_ok(),
        None => false,
    }
}

/// The unkeyed rule of logs written before keyed chains: `hex(SHA-256(prev_hash || canonical_json))`.
pub(crate) fn legacy_hash(prev_hash: &str, canonical_json: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json);
    to_hex(&hasher.finalize())
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// 64 lowercase hex digits as 32 bytes; anything else is `None`.
fn from_hex32(text: &str) -> Option<[u8; 32]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_padded_and_round_trips() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let bytes: Vec<u8> = (0u8..32).collect();
        assert_eq!(from_hex32(&to_hex(&bytes)).map(Vec::from), Some(bytes));
        assert_eq!(
            from_hex32(&"AB".repeat(32)),
            None,
            "upper case is not the encoding"
        );
        assert_eq!(from_hex32("00"), None);
    }

    #[test]
    fn record_mac_is_hmac_sha256_of_prev_and_canonical() -> Result<(), String> {
        let key = ChainKey::from_bytes(&[7u8; 32]).ok_or("32 bytes make a key")?;
        let mut reference = HmacSha256::new_from_slice(&[7u8; 32]).map_err(|e| e.to_string())?;
        reference.update(b"prev");
        reference.update(b"{\"v\":1}");
        assert_eq!(
            key.record_mac("prev", b"{\"v\":1}"),
            to_hex(&reference.finalize().into_bytes())
        );
        let mac = key.record_mac("prev", b"{}");
        assert!(key.record_mac_matches("prev", b"{}", &mac));
        assert!(!key.record_mac_matches("prev", b"{ }", &mac));
        assert!(!key.record_mac_matches("prev", b"{}", &mac.to_uppercase()));
        Ok(())
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused_and_ids_differ() {
        assert!(ChainKey::from_bytes(&[]).is_none());
        assert!(ChainKey::from_bytes(&[1u8; 31]).is_none());
        assert!(ChainKey::from_bytes(&[1u8; 33]).is_none());
        let one = ChainKey::from_bytes(&[1u8; 32]).map(|k| k.id().to_owned());
        let two = ChainKey::from_bytes(&[2u8; 32]).map(|k| k.id().to_owned());
        assert_ne!(one, two);
        assert_eq!(one.map(|id| id.len()), Some(16));
    }

    #[test]
    fn head_and_marker_macs_are_separate_domains() -> Result<(), String> {
        let key = ChainKey::from_bytes(&[9u8; 32]).ok_or("key")?;
        let hash = "ab".repeat(32);
        assert_ne!(key.head_mac(3, &hash), key.marker_mac(3, &hash));
        assert!(key.head_mac_matches(3, &hash, &key.head_mac(3, &hash)));
        assert!(!key.head_mac_matches(4, &hash, &key.head_mac(3, &hash)));
        assert!(key.marker_mac_matches(1, &hash, &key.marker_mac(1, &hash)));
        assert!(!key.marker_mac_matches(2, &hash, &key.marker_mac(1, &hash)));
        Ok(())
    }
}
