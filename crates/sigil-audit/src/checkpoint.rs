//! Signed checkpoints: statements "at time T the log held records 1..=seq and its chain value
//! at seq was head", signed with the checkpoint key (Ed25519, in minisign's format, so the
//! `minisign` tool can check one too).
//!
//! A checkpoint kept somewhere the database's attacker cannot write proves later edits even to
//! someone who holds the chain key: rewriting any record up to `seq` changes the chain value at
//! `seq`, and only the checkpoint key can sign a new statement.
//!
//! # When the writer signs
//!
//! - every [`CHECKPOINT_EVERY`] records, at exactly the multiples (record 10,000, 20,000, …),
//!   in the same transaction as the batch holding that record, so a periodic checkpoint exists
//!   for every multiple a log has reached and verify reports one that is missing;
//! - when the writer shuts down cleanly ([`crate::AuditLog::close`] or drop), if records were
//!   added since the newest checkpoint;
//! - on demand ([`crate::AuditLog::checkpoint`], `sigil audit checkpoint`);
//! - once when a log from before keyed chains is upgraded, at its last unkeyed record.
//!
//! # The statement
//!
//! The signed bytes are exactly (each line ending in `\n`):
//!
//! ```text
//! sigil-audit-checkpoint/1
//! seq: <decimal>
//! head: <64 hex digits>
//! time_ms: <decimal, Unix milliseconds>
//! ```
//!
//! # The exported form
//!
//! [`Checkpoint::to_json`] writes one JSON object with `format`
//! (`"sigil-audit-checkpoint/1"`), `seq`, `head`, `time_ms`, `statement` (the text above),
//! `public_key` (minisign's one-line base64 public key) and `signature` (a whole `.minisig`
//! file). Saving `statement` and `signature` to two files, `minisign -V -P <public_key> -m
//! statement -x signature` checks it without Sigil.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::AuditError;

/// Records between two periodic checkpoints: one is signed at every multiple of this
/// sequence number. A multiple of it is therefore the furthest an attacker holding the chain
/// key but not the checkpoint key can rewrite back without verify noticing (a stored periodic
/// checkpoint would stop matching, or be missing).
pub const CHECKPOINT_EVERY: u64 = 10_000;

/// The `format` of an exported checkpoint, and the first line of every statement.
pub const CHECKPOINT_FORMAT: &str = "sigil-audit-checkpoint/1";

/// A signed statement of the chain head at one sequence number. See the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record the statement covers (0 for an empty log).
    pub seq: u64,
    /// The chain value of record `seq` ([`crate::GENESIS_HASH`] for 0).
    pub head: String,
    /// When it was signed, Unix milliseconds.
    pub time_ms: i64,
    /// The checkpoint key's public half, minisign's base64 line.
    pub public_key: String,
    /// The signature over [`Checkpoint::statement`], a whole minisign signature file.
    pub signature: String,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("seq", &self.seq)
            .field("head", &self.head)
            .field("time_ms", &self.time_ms)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// The exported form (see the [module docs](self)).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exported {
    format: String,
    seq: u64,
    head: String,
    time_ms: i64,
    statement: String,
    public_key: String,
    signature: String,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn statement(&self) -> String {
        statement(self.seq, &self.head, self.time_ms)
    }

    /// The exported form: one pretty-printed JSON object, ending in a newline.
    pub fn to_json(&self) -> String {
        let exported = Exported {
            format: CHECKPOINT_FORMAT.to_owned(),
            seq: self.seq,
            head: self.head.clone(),
            time_ms: self.time_ms,
            statement: self.statement(),
            public_key: self.public_key.clone(),
            signature: self.signature.clone(),
        };
        // Strings and integers always serialise.
        let mut text = serde_json::to_string_pretty(&exported).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads an exported checkpoint. Its signature is not checked here (see
    /// [`crate::AuditLog::verify_checkpoint`]).
    ///
    /// # Errors
    ///
    /// [`AuditError::CheckpointRefused`] if the text is not an exported checkpoint, or its
    /// `statement` is not the one its fields make.
    pub fn from_json(text: &str) -> Result<Checkpoint, AuditError> {
        let refuse = |reason: String| AuditError::CheckpointRefused { reason };
        let exported: Exported = serde_json::from_str(text)
            .map_err(|e| refuse(format!("not an exported audit checkpoint: {e}")))?;
        if exported.format != CHECKPOINT_FORMAT {
            return Err(refuse(format!(
                "format `{}` is not `{CHECKPOINT_FORMAT}`",
                exported.format.escape_debug()
            )));
        }
        let checkpoint = Checkpoint {
            seq: exported.seq,
            head: exported.head,
            time_ms: exported.time_ms,
            public_key: exported.public_key,
            signature: exported.signature,
        };
        if exported.statement != checkpoint.statement() {
            return Err(refuse(
                "its `statement` is not the one its seq, head and time_ms make".to_owned(),
            ));
        }
        Ok(checkpoint)
    }

    /// Whether the signature is a valid signature of the statement by the key in
    /// `public_key`. Says nothing of whether that key is the log's.
    pub fn signature_is_valid(&self) -> bool {
        let Ok(public) = minisign::PublicKey::from_base64(self.public_key.trim()) else {
            return false;
        };
        signed_by(&public, self)
    }
}

fn statement(seq: u64, head: &str, time_ms: i64) -> String {
    format!("{CHECKPOINT_FORMAT}\nseq: {seq}\nhead: {head}\ntime_ms: {time_ms}\n")
}

fn signed_by(public: &minisign::PublicKey, checkpoint: &Checkpoint) -> bool {
    let Ok(signature) = minisign::SignatureBox::from_string(&checkpoint.signature) else {
        return false;
    };
    let statement = checkpoint.statement();
    // quiet, no output, no legacy (non-prehashed) signatures.
    minisign::verify(
        public,
        &signature,
        Cursor::new(statement.as_bytes()),
        true,
        false,
        false,
    )
    .is_ok()
}

/// The checkpoint key. `Debug` shows the public key only.
pub(crate) struct Signer {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
    public_text: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.public_text)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new key, and the text of its secret-key file.
    ///
    /// # Errors
    ///
    /// A fixed description (never key material) if generation fails.
    pub fn generate() -> Result<(Signer, String), &'static str> {
        let pair = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|_| "a new checkpoint key could not be generated")?;
        let text = pair
            .sk
            .to_box(Some("sigil audit checkpoint key"))
            .map_err(|_| "a new checkpoint key could not be encoded")?
            .into_string();
        let signer = Signer::from_secret_key_text(&text)?;
        Ok((signer, text))
    }

    /// The key in a minisign secret-key file's text, unencrypted.
    ///
    /// # Errors
    ///
    /// A fixed description (never the text) if it is not such a key.
    pub fn from_secret_key_text(text: &str) -> Result<Signer, &'static str> {
        let boxed = minisign::SecretKeyBox::from_string(text)
            .map_err(|_| "is not a minisign secret key")?;
        let secret = minisign::SecretKey::from_unencrypted_box(boxed)
            .map_err(|_| "is not an unencrypted minisign secret key, or is damaged")?;
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|_| "holds a minisign secret key without its public half")?;
        let public_text = public.to_base64();
        Ok(Signer {
            secret,
            public,
            public_text,
        })
    }

    /// The public key, minisign's base64 line.
    pub fn public_key(&self) -> &str {
        &self.public_text
    }

    /// Signs the statement for `seq`, `head` and `time_ms`.
    ///
    /// # Errors
    ///
    /// A fixed description if signing fails (no randomness).
    pub fn sign(&self, seq: u64, head: &str, time_ms: i64) -> Result<Checkpoint, &'static str> {
        let statement = statement(seq, head, time_ms);
        let trusted = format!("sigil-audit-checkpoint seq:{seq} head:{head} time_ms:{time_ms}");
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(statement.as_bytes()),
            Some(&trusted),
            Some("sigil audit checkpoint"),
        )
        .map_err(|_| "the checkpoint could not be signed")?;
        Ok(Checkpoint {
            seq,
            head: head.to_owned(),
            time_ms,
            public_key: self.public_text.clone(),
            signature: signature.into_string(),
        })
    }

    /// Whether `checkpoint` is signed by this key, whatever key it names.
    pub fn signed(&self, checkpoint: &Checkpoint) -> bool {
        signed_by(&self.public, checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_round_trips_and_any_change_breaks_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let (signer, _) = Signer::generate()?;
        let head = "ab".repeat(32);
        let checkpoint = signer.sign(12, &head, 1_700_000_000_000)?;
        assert!(checkpoint.signature_is_valid());
        assert!(signer.signed(&checkpoint));
        let back = Checkpoint::from_json(&checkpoint.to_json())?;
        assert_eq!(back, checkpoint);

        for changed in [
            Checkpoint {
                seq: 13,
                ..checkpoint.clone()
            },
            Checkpoint {
                head: "cd".repeat(32),
                ..checkpoint.clone()
            },
            Checkpoint {
                time_ms: 1,
                ..checkpoint.clone()
            },
        ] {
            assert!(!changed.signature_is_valid(), "{changed:?}");
            assert!(!signer.signed(&changed), "{changed:?}");
        }
        let (other, _) = Signer::generate()?;
        assert!(!other.signed(&checkpoint));
        Ok(())
    }

    #[test]
    fn an_export_whose_statement_disagrees_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let (signer, _) = Signer::generate()?;
        let checkpoint = signer.sign(3, &"00".repeat(32), 5)?;
        let json = checkpoint.to_json().replace("seq: 3", "seq: 4");
        assert!(matches!(
            Checkpoint::from_json(&json),
            Err(AuditError::CheckpointRefused { .. })
        ));
        assert!(matches!(
            Checkpoint::from_json("{}"),
            Err(AuditError::CheckpointRefused { .. })
        ));
        Ok(())
    }
}
