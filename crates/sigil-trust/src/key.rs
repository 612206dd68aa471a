//! Keys: the operator's trusted public keys, and key pairs for signing.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use crate::TrustError;

/// A minisign key id: eight bytes, shown as 16 uppercase hex digits as minisign shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u64);

impl KeyId {
    pub(crate) fn from_keynum(keynum: &[u8]) -> KeyId {
        let mut bytes = [0u8; 8];
        for (to, from) in bytes.iter_mut().zip(keynum) {
            *to = *from;
        }
        KeyId(u64::from_le_bytes(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// An Ed25519 public key in minisign's format.
#[derive(Clone)]
pub struct PublicKey {
    inner: minisign::PublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.inner.to_bytes() == other.inner.to_bytes()
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Parses a public key: the text of a minisign `.pub` file (an `untrusted comment:` line,
    /// then the key) or the key's base64 line alone (`RW…`). `what` names it in errors.
    ///
    /// # Errors
    /// [`TrustError::BadKey`] when it is neither.
    pub fn parse(text: &str, what: &str) -> Result<PublicKey, TrustError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| TrustError::BadKey {
                what: what.to_string(),
                message: "no key found".into(),
            })?;
        let inner = minisign::PublicKey::from_base64(line).map_err(|e| TrustError::BadKey {
            what: what.to_string(),
            message: format!("not a minisign public key: {e}"),
        })?;
        Ok(PublicKey { inner })
    }

    /// The key's id, which every signature it makes names.
    pub fn id(&self) -> KeyId {
        KeyId::from_keynum(self.inner.keynum())
    }

    /// The key's base64 line, as `sigil.toml` and minisign's `-P` take it.
    pub fn to_base64(&self) -> String {
        self.inner.to_base64()
    }

    /// The text of a minisign `.pub` file for this key.
    pub fn to_file_text(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.id(),
            self.to_base64()
        )
    }

    pub(crate) fn inner(&self) -> &minisign::PublicKey {
        &self.inner
    }
}

/// Whether `name` may name a trusted key: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The operator's trust store: public keys by name. A plugin signed by one of them is
/// `verified`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: BTreeMap<String, PublicKey>,
}

impl TrustedKeys {
    /// Adds `key` as `name`.
    ///
    /// # Errors
    /// [`TrustError::BadKey`] when the name is not [`valid_key_name`], or is taken, or the key
    /// is already trusted under another name.
    pub fn insert(&mut self, name: &str, key: PublicKey) -> Result<(), TrustError> {
        let bad = |message: String| TrustError::BadKey {
            what: format!("trusted key `{name}`"),
            message,
        };
        if !valid_key_name(name) {
            return Err(bad(
                "a key name is 1 to 64 letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        if self.keys.contains_key(name) {
            return Err(bad("the name is taken".into()));
        }
        if let Some((other, _)) = self.by_id(key.id()) {
            return Err(bad(format!(
                "key {} is already trusted as `{other}`",
                key.id()
            )));
        }
        self.keys.insert(name.to_string(), key);
        Ok(())
    }

    /// The trusted key with this id, and its name.
    pub fn by_id(&self, id: KeyId) -> Option<(&str, &PublicKey)> {
        self.keys
            .iter()
            .find(|(_, key)| key.id() == id)
            .map(|(name, key)| (name.as_str(), key))
    }

    /// Every trusted key by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PublicKey)> {
        self.keys.iter().map(|(name, key)| (name.as_str(), key))
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A key pair that signs plugins.
pub struct KeyPair {
    public: PublicKey,
    secret: minisign::SecretKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.public.id())
    }
}

impl KeyPair {
    /// A new key pair whose secret key is not protected by a password.
    ///
    /// # Errors
    /// [`TrustError::SecretKey`] when the system's random source fails.
    pub fn generate_unencrypted() -> Result<KeyPair, TrustError> {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(generation)?;
        Ok(KeyPair {
            public: PublicKey { inner: pair.pk },
            secret: pair.sk,
        })
    }

    /// A new key pair whose secret key is encrypted with `password` (minisign's scrypt
    /// encryption) when written.
    ///
    /// # Errors
    /// [`TrustError::SecretKey`] when the system's random source fails.
    pub fn generate_encrypted(password: String) -> Result<KeyPair, TrustError> {
        let pair =
            minisign::KeyPair::generate_encrypted_keypair(Some(password)).map_err(generation)?;
        Ok(KeyPair {
            public: PublicKey { inner: pair.pk },
            secret: pair.sk,
        })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Writes the secret key to `secret` (created new, readable by its owner only) and the
    /// public key to `public`, both in minisign's formats.
    ///
    /// # Errors
    /// [`TrustError::Io`] when either file exists already or cannot be written.
    pub fn write(&self, secret: &Path, public: &Path) -> Result<(), TrustError> {
        for path in [secret, public] {
            if path.exists() {
                return Err(TrustError::io(
                    path,
                    &"exists already; choose another path or move it away",
                ));
            }
        }
        let comment = format!("minisign secret key {}", self.public.id());
        let text = self
            .secret
            .to_box(Some(&comment))
            .map_err(|e| TrustError::io(secret, &e))?
            .into_string();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(secret)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|e| TrustError::io(secret, &e))?;
        std::fs::write(public, self.public.to_file_text()).map_err(|e| TrustError::io(public, &e))
    }

    /// Reads a minisign secret key file. An encrypted key needs its `password`; an
    /// unencrypted one takes none.
    ///
    /// # Errors
    /// [`TrustError::SecretKey`] when the file cannot be read, is not a minisign secret key,
    /// is encrypted and no password was given, or the password is wrong.
    pub fn read(secret: &Path, password: Option<String>) -> Result<KeyPair, TrustError> {
        let fail = |message: String| TrustError::SecretKey {
            path: secret.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(secret).map_err(|e| fail(e.to_string()))?;
        let boxed = minisign::SecretKeyBox::from_string(&text).map_err(|e| fail(e.to_string()))?;
        let key = match password {
            Some(password) => minisign::SecretKey::from_box(boxed, Some(password)),
            None => minisign::SecretKey::from_unencrypted_box(boxed).map_err(|e| {
                minisign::PError::new(
                    minisign::ErrorKind::Io,
                    format!("{e}; an encrypted key needs its password"),
                )
            }),
        }
        .map_err(|e| fail(format!("cannot use this secret key: {e}")))?;
        let public = minisign::PublicKey::from_secret_key(&key)
            .map_err(|e| fail(format!("cannot use this secret key: {e}")))?;
        Ok(KeyPair {
            public: PublicKey { inner: public },
            secret: key,
        })
    }

    pub(crate) fn secret(&self) -> &minisign::SecretKey {
        &self.secret
    }
}

fn generation(error: minisign::PError) -> TrustError {
    TrustError::SecretKey {
        path: "<new key>".into(),
        message: format!("cannot generate a key pair: {error}"),
    }
}
