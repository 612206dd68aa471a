//! Key-value state kept for plugins, each plugin in its own namespace, in the same SQLite
//! database as the audit log. Access control is not done here: callers go through
//! [`crate::Call`], which asks the enforcer for `kv.read:<key>` / `kv.write:<key>` first.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// The largest value a plugin may store.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Plugin key-value state.
#[derive(Debug)]
pub struct KvStore {
    connection: Mutex<Connection>,
}

impl KvStore {
    /// Opens (creating if needed) the `kv_entries` table in the database at `path`.
    ///
    /// # Errors
    /// When the database cannot be opened or the table created.
    pub fn open(path: &Path) -> Result<KvStore, String> {
        let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
        crate::files::ensure_private_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let connection = Connection::open(path).map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(fail)?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS kv_entries (
                    plugin TEXT NOT NULL,
                    key TEXT NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (plugin, key)
                 ) STRICT;",
            )
            .map_err(fail)?;
        Ok(KvStore {
            connection: Mutex::new(connection),
        })
    }

    /// The value of `key` in `plugin`'s namespace.
    ///
    /// # Errors
    /// On a storage failure.
    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM kv_entries WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
                |row| row.get(0),
            )
            .optional()
        })
    }

    /// Stores `value` under `key` in `plugin`'s namespace.
    ///
    /// # Errors
    /// When the value is larger than [`MAX_VALUE_BYTES`], or on a storage failure.
    pub fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), String> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "value of {} bytes is larger than the limit of {MAX_VALUE_BYTES}",
                value.len()
            ));
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO kv_entries (plugin, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                params![plugin, key, value],
            )
            .map(|_| ())
        })
    }

    /// Removes `key` from `plugin`'s namespace; removing a missing key is not an error.
    ///
    /// # Errors
    /// On a storage failure.
    pub fn delete(&self, plugin: &str, key: &str) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "DELETE FROM kv_entries WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
            )
            .map(|_| ())
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| "key-value store lock poisoned".to_string())?;
        f(&connection).map_err(|e| format!("key-value store: {e}"))
    }
}
