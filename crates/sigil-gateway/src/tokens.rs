//! API tokens: created for a user of `sigil.toml`, shown once, stored only as a hash.
//!
//! A token is `sigil_` followed by 64 hex digits: 256 bits from the operating system's random
//! source. The database keeps its SHA-256, so a copy of `sigil.db` grants nothing. Looking a
//! token up is a lookup of its hash by equality in an index; no secret is ever compared byte
//! by byte in memory.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The prefix of every token, so a leaked one is recognisable (and greppable) as Sigil's.
pub const TOKEN_PREFIX: &str = "sigil_";

/// Why the token store failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The database could not be opened or queried.
    #[error("token store {}: {cause}", path.display())]
    Storage {
        /// The database.
        path: PathBuf,
        /// What SQLite said.
        cause: rusqlite::Error,
    },
    /// The database file could not be created.
    #[error("token store {}: cannot create the file: {cause}", path.display())]
    Create {
        /// The database.
        path: PathBuf,
        /// What the operating system said.
        cause: String,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a token: the system random source failed: {0}")]
    Random(String),
}

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// A short public id, for `sigil token revoke`.
    pub id: String,
    /// The user of `sigil.toml` the token acts as.
    pub user: String,
    /// The operator's note, if any.
    pub label: Option<String>,
    /// When it was created, in Unix milliseconds.
    pub created_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
}

/// A token just created: its secret exists only here.
#[derive(Clone)]
pub struct NewToken {
    /// The stored part.
    pub info: TokenInfo,
    /// The secret to hand to the client. It is not stored and cannot be shown again.
    pub secret: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("info", &self.info)
            .field("secret", &"<secret>")
            .finish()
    }
}

/// The tokens of one data directory, in its `sigil.db` (table `gateway_tokens`).
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl TokenStore {
    /// Opens (creating if needed) the token table in the database at `path`.
    ///
    /// # Errors
    /// [`TokenError::Storage`] when the database cannot be opened or the table created.
    pub fn open(path: &Path) -> Result<TokenStore, TokenError> {
        let fail = storage(path);
        sigil_runtime::files::ensure_private_file(path).map_err(|e| TokenError::Create {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })?;
        let connection = Connection::open(path).map_err(&fail)?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(&fail)?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS gateway_tokens (
                    id TEXT PRIMARY KEY,
                    hash TEXT NOT NULL UNIQUE,
                    user TEXT NOT NULL,
                    label TEXT,
                    created_ms INTEGER NOT NULL,
                    revoked_ms INTEGER
                 ) STRICT;",
            )
            .map_err(&fail)?;
        Ok(TokenStore {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
        })
    }

    /// Creates a token for `user`. The caller checks that the user exists in `sigil.toml`.
    ///
    /// # Errors
    /// [`TokenError::Random`] or [`TokenError::Storage`].
    pub fn create(&self, user: &str, label: Option<&str>) -> Result<NewToken, TokenError> {
        let mut secret_bytes = [0u8; 32];
        getrandom::fill(&mut secret_bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let mut id_bytes = [0u8; 6];
        getrandom::fill(&mut id_bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let secret = format!("{TOKEN_PREFIX}{}", hex(&secret_bytes));
        let info = TokenInfo {
            id: hex(&id_bytes),
            user: user.to_string(),
            label: label.map(str::to_string),
            created_ms: now_ms(),
            revoked_ms: None,
        };
        self.with(|c| {
            c.execute(
                "INSERT INTO gateway_tokens (id, hash, user, label, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![info.id, digest(&secret), info.user, info.label, info.created_ms],
            )
        })?;
        Ok(NewToken { info, secret })
    }

    /// Every token, oldest first, revoked ones included.
    ///
    /// # Errors
    /// [`TokenError::Storage`].
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT id, user, label, created_ms, revoked_ms FROM gateway_tokens ORDER BY created_ms, id",
            )?;
            let rows = statement.query_map([], info_from_row)?;
            rows.collect()
        })
    }

    /// Revokes the token with this id (or unique id prefix of at least 4 digits). Returns the
    /// revoked token, or `None` when no unrevoked token matches.
    ///
    /// # Errors
    /// [`TokenError::Storage`].
    pub fn revoke(&self, id: &str) -> Result<Option<TokenInfo>, TokenError> {
        if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let pattern = format!("{}%", id.to_ascii_lowercase());
        self.with(|c| {
            let matches: Vec<TokenInfo> = {
                let mut statement = c.prepare(
                    "SELECT id, user, label, created_ms, revoked_ms FROM gateway_tokens
                     WHERE id LIKE ?1 AND revoked_ms IS NULL",
                )?;
                let rows = statement.query_map([&pattern], info_from_row)?;
                rows.collect::<Result<_, _>>()?
            };
            let [only] = matches.as_slice() else {
                return Ok(None);
            };
            let revoked_ms = now_ms();
            c.execute(
                "UPDATE gateway_tokens SET revoked_ms = ?1 WHERE id = ?2",
                params![revoked_ms, only.id],
            )?;
            Ok(Some(TokenInfo {
                revoked_ms: Some(revoked_ms),
                ..only.clone()
            }))
        })
    }

    /// The unrevoked token whose secret is `secret`, if any.
    ///
    /// # Errors
    /// [`TokenError::Storage`].
    pub fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>, TokenError> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let hash = digest(secret);
        // Every request asks this: the statement is prepared once per connection.
        self.with(|c| {
            c.prepare_cached(
                "SELECT id, user, label, created_ms, revoked_ms FROM gateway_tokens
                 WHERE hash = ?1 AND revoked_ms IS NULL",
            )?
            .query_row([hash], info_from_row)
            .optional()
        })
    }

    /// Whether the token with exactly this id exists and is not revoked: asked again by
    /// connections that outlive the request that authenticated them (the event stream).
    ///
    /// # Errors
    /// [`TokenError::Storage`].
    pub fn is_active(&self, id: &str) -> Result<bool, TokenError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM gateway_tokens WHERE id = ?1 AND revoked_ms IS NULL",
                [id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, TokenError> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&connection).map_err(storage(&self.path))
    }
}

fn storage(path: &Path) -> impl Fn(rusqlite::Error) -> TokenError + '_ {
    move |cause| TokenError::Storage {
        path: path.to_path_buf(),
        cause,
    }
}

fn info_from_row(row: &rusqlite::Row<'_>) -> Result<TokenInfo, rusqlite::Error> {
    Ok(TokenInfo {
        id: row.get(0)?,
        user: row.get(1)?,
        label: row.get(2)?,
        created_ms: row.get(3)?,
        revoked_ms: row.get(4)?,
    })
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_token_authenticates_until_revoked_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sigil.db");
        let store = TokenStore::open(&db).unwrap();
        let token = store.create("alice", Some("laptop")).unwrap();
        assert!(token.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(token.secret.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(
            store.authenticate(&token.secret).unwrap().unwrap().user,
            "alice"
        );
        assert_eq!(store.authenticate("sigil_0000").unwrap(), None);
        assert_eq!(store.authenticate("").unwrap(), None);

        let stored: Vec<String> = {
            let c = Connection::open(&db).unwrap();
            let mut s = c.prepare("SELECT hash FROM gateway_tokens").unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(stored, vec![digest(&token.secret)]);
        assert!(!format!("{token:?}").contains(&token.secret));

        assert!(store.is_active(&token.info.id).unwrap());
        let revoked = store.revoke(&token.info.id[..6]).unwrap().unwrap();
        assert_eq!(revoked.id, token.info.id);
        assert_eq!(store.authenticate(&token.secret).unwrap(), None);
        assert!(!store.is_active(&token.info.id).unwrap());
        assert!(!store.is_active(&token.info.id[..6]).unwrap());
        assert_eq!(store.revoke(&token.info.id).unwrap(), None);
        assert!(store.list().unwrap()[0].revoked_ms.is_some());
    }
}
