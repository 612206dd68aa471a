//! Secret fields of plugins' configurations (properties their `config.schema` marks
//! `secret: true`), kept encrypted in the `plugin_secrets` table of `sigil.db`.
//!
//! Each value is sealed with ChaCha20-Poly1305 under a 32-byte key in `<home>/state/secret.key`
//! (created with mode 0600 when the first secret is stored), with a fresh random nonce, and with
//! the plugin and field as associated data, so a sealed value moved to another row does not
//! open. The database alone never holds a plain value; whoever can read the key file and the
//! database can, which is the operator's own account.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{Connection, params};

use crate::config::SecretValue;

/// Plugin id → field (dotted path for nested properties) → value.
pub(crate) type PluginSecrets = BTreeMap<String, BTreeMap<String, SecretValue>>;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// The encrypted secret fields of plugins' configurations.
pub(crate) struct SecretStore {
    connection: Mutex<Connection>,
    key_path: PathBuf,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// Opens (creating if needed) the `plugin_secrets` table in the database at `database`;
    /// the key is read from `key_path` when first needed.
    pub(crate) fn open(database: &Path, key_path: PathBuf) -> Result<SecretStore, String> {
        let fail = |e: rusqlite::Error| format!("{}: {e}", database.display());
        crate::files::ensure_private_file(database)
            .map_err(|e| format!("{}: {e}", database.display()))?;
        let connection = Connection::open(database).map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(fail)?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS plugin_secrets (
                    plugin TEXT NOT NULL,
                    field TEXT NOT NULL,
                    nonce BLOB NOT NULL,
                    ciphertext BLOB NOT NULL,
                    PRIMARY KEY (plugin, field)
                 ) STRICT;",
            )
            .map_err(fail)?;
        Ok(SecretStore {
            connection: Mutex::new(connection),
            key_path,
        })
    }

    /// Every stored secret field, decrypted. A value that does not open (a replaced key file)
    /// is left out with a warning naming the plugin and field: its plugin then sees the field
    /// unset, and its schema says whether that is acceptable.
    pub(crate) fn load_all(&self) -> Result<PluginSecrets, String> {
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = self.with(|c| {
            let mut statement = c.prepare(
                "SELECT plugin, field, nonce, ciphertext FROM plugin_secrets ORDER BY plugin, field",
            )?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        let mut secrets = PluginSecrets::new();
        if rows.is_empty() {
            return Ok(secrets);
        }
        let cipher = self.cipher(KeyUse::Existing)?;
        for (plugin, field, nonce, ciphertext) in rows {
            if nonce.len() != NONCE_BYTES {
                tracing::warn!(plugin = %plugin, field = %field, "a stored secret field has a damaged nonce; ignored");
                continue;
            }
            let opened = cipher.decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &associated(&plugin, &field),
                },
            );
            match opened.ok().and_then(|plain| String::from_utf8(plain).ok()) {
                Some(value) => {
                    secrets
                        .entry(plugin)
                        .or_default()
                        .insert(field, SecretValue::new(value));
                }
                None => {
                    tracing::warn!(plugin = %plugin, field = %field, key = %self.key_path.display(), "a stored secret field does not decrypt with the key file; ignored");
                }
            }
        }
        Ok(secrets)
    }

    /// Seals and stores `value` as `plugin`'s field `field`, replacing any previous value.
    /// Creates the key file on first use.
    pub(crate) fn set(&self, plugin: &str, field: &str, value: &SecretValue) -> Result<(), String> {
        let cipher = self.cipher(KeyUse::CreateIfMissing)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: &associated(plugin, field),
                },
            )
            .map_err(|_| {
                format!("secret field `{field}` of plugin `{plugin}` could not be encrypted")
            })?;
        self.with(|c| {
            c.execute(
                "INSERT INTO plugin_secrets (plugin, field, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (plugin, field) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext",
                params![plugin, field, nonce.as_slice(), sealed],
            )
            .map(|_| ())
        })
    }

    /// Removes `plugin`'s field `field`; removing one that is not stored is not an error.
    pub(crate) fn remove(&self, plugin: &str, field: &str) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "DELETE FROM plugin_secrets WHERE plugin = ?1 AND field = ?2",
                params![plugin, field],
            )
            .map(|_| ())
        })
    }

    fn cipher(&self, key_use: KeyUse) -> Result<ChaCha20Poly1305, String> {
        let path = &self.key_path;
        let key = match std::fs::read(path) {
            Ok(key) => key,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && key_use == KeyUse::CreateIfMissing =>
            {
                create_key(path)?
            }
            Err(e) => return Err(format!("secret key {}: {e}", path.display())),
        };
        if key.len() != KEY_BYTES {
            return Err(format!(
                "secret key {}: holds {} bytes, not {KEY_BYTES}",
                path.display(),
                key.len()
            ));
        }
        Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| "secret store lock poisoned".to_string())?;
        f(&connection).map_err(|e| format!("secret store: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyUse {
    Existing,
    CreateIfMissing,
}

/// Binds a sealed value to its row.
fn associated(plugin: &str, field: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(plugin.len() + field.len() + 1);
    data.extend_from_slice(plugin.as_bytes());
    data.push(0);
    data.extend_from_slice(field.as_bytes());
    data
}

/// Writes a new random key, readable by the owner only. `create_new` makes a racing second
/// writer fail rather than replace a key already in use; it then reads the winner's key.
fn create_key(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| format!("secret key {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        crate::files::create_private_dir_all(dir).map_err(fail)?;
    }
    let mut key = vec![0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for a secret key: {e}"))?;
    match crate::files::create_private_file(path) {
        Ok(mut file) => {
            file.write_all(&key).map_err(fail)?;
            file.sync_all().map_err(fail)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}
