//! The one editor of `sigil.toml`.
//!
//! Several front ends change the configuration: a plugin's settings over HTTP, an install's
//! consent, `sigil trust add`, and they may run at once in one process or in two (a daemon and
//! the command line). Each reads the file, changes its part and replaces the file; two doing
//! so at the same time would each write what they read, and one change would be lost. So every
//! change goes through [`ConfigFile::edit`], which holds an exclusive lock from the read to the
//! replace: `flock` on `.<name>.lock` beside the file, which serialises threads and processes
//! alike (each edit opens the lock file afresh, and `flock` locks belong to the open file).
//! The file itself cannot carry the lock: it is replaced by a rename, so a second editor would
//! lock the new file while the first still holds the old one.
//!
//! An edit keeps the file's comments and layout (`toml_edit`), is checked by the caller before
//! it is written (a change that would not load is never written), and replaces the file
//! atomically and private to the user ([`crate::files::write_private_atomically`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::Value;
use toml_edit::{DocumentMut, InlineTable, Item, Table};

/// Why `sigil.toml` could not be read, changed or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    /// The file, or its lock, could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is not valid TOML.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key the change goes through holds something other than a table.
    #[error("{}: `{key}` is not a table", path.display())]
    NotATable {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A value cannot be written as TOML.
    #[error("{message}")]
    Value {
        /// What and where.
        message: String,
    },
}

/// Whether an edit changed the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// The change left the text as it was; nothing was written.
    Unchanged,
    /// The file was replaced.
    Written,
}

/// `sigil.toml` (or another configuration file), edited only through [`ConfigFile::edit`].
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    /// The configuration file at `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile { path: path.into() }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the file: under the lock, reads it, applies `change`, hands the new text to
    /// `before_write`, and replaces the file with it if it differs. An error from `change` or
    /// `before_write` leaves the file as it was, so a check of the new text (does it still
    /// load?) belongs in `before_write`, as does anything that must be stored only when the
    /// change is valid and before it is in force. `before_write` runs whether or not the text
    /// changed; only a changed text is written.
    ///
    /// Blocks while another edit, in this process or another, holds the lock: each is a
    /// read, an in-memory change and one small write, so the wait is short.
    ///
    /// # Errors
    /// [`ConfigFileError`] (made into `E`) when the file cannot be locked, read, parsed or
    /// written; the errors of `change` and `before_write`.
    pub fn edit<E>(
        &self,
        change: impl FnOnce(&mut Settings<'_>) -> Result<(), E>,
        before_write: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<Edited, E>
    where
        E: From<ConfigFileError>,
    {
        let _lock = self.lock()?;
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.io(&e))?;
        let mut document: DocumentMut =
            text.parse()
                .map_err(|e: toml_edit::TomlError| ConfigFileError::Syntax {
                    path: self.path.clone(),
                    message: e.message().to_string(),
                })?;
        change(&mut Settings {
            document: &mut document,
            path: &self.path,
        })?;
        let edited = document.to_string();
        before_write(&edited)?;
        if edited == text {
            return Ok(Edited::Unchanged);
        }
        crate::files::write_private_atomically(&self.path, edited.as_bytes())
            .map_err(|e| self.io(&e))?;
        Ok(Edited::Written)
    }

    /// Takes the exclusive lock, waiting for it; it is released when the returned file closes.
    fn lock(&self) -> Result<File, ConfigFileError> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(".{name}.lock"));
        let file = match crate::files::create_private_file(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => File::options()
                .write(true)
                .open(&path)
                .map_err(|e| ConfigFileError::Io {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
            Err(e) => {
                return Err(ConfigFileError::Io {
                    path,
                    message: e.to_string(),
                });
            }
        };
        file.lock().map_err(|e| ConfigFileError::Io {
            path,
            message: format!("cannot lock: {e}"),
        })?;
        Ok(file)
    }

    fn io(&self, error: &std::io::Error) -> ConfigFileError {
        ConfigFileError::Io {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }
}

/// The parsed file during an edit: the changes Sigil makes to its configuration, each keeping
/// the comments and layout around it.
#[derive(Debug)]
pub struct Settings<'a> {
    document: &'a mut DocumentMut,
    path: &'a Path,
}

impl Settings<'_> {
    /// Replaces `[plugins.<id>.config]` with `config` (a JSON object), or removes it when
    /// `config` is empty. A table written out stays a table: its header, its comments and
    /// those of the values that stay are kept.
    ///
    /// # Errors
    /// When `config` is not an object or holds what TOML cannot (`null`, integers past
    /// `i64`); when `plugins` or `plugins.<id>` is not a table.
    pub fn set_plugin_config(&mut self, id: &str, config: &Value) -> Result<(), ConfigFileError> {
        let Value::Object(fields) = config else {
            return Err(ConfigFileError::Value {
                message: "the configuration must be a JSON object".into(),
            });
        };
        let plugin = self.plugin(id)?;
        if fields.is_empty() {
            plugin.remove("config");
            return Ok(());
        }
        let table = inline_table(fields, "")?;
        match plugin.get_mut("config") {
            Some(Item::Table(existing)) => {
                let gone: Vec<String> = existing
                    .iter()
                    .map(|(key, _)| key.to_string())
                    .filter(|key| !fields.contains_key(key))
                    .collect();
                for key in gone {
                    existing.remove(&key);
                }
                for (key, mut value) in table {
                    match existing.get_mut(&key) {
                        Some(Item::Value(old)) => {
                            *value.decor_mut() = old.decor().clone();
                            *old = value;
                        }
                        Some(other) => *other = Item::Value(value),
                        None => {
                            existing.insert(&key, Item::Value(value));
                        }
                    }
                }
            }
            Some(Item::Value(toml_edit::Value::InlineTable(existing))) => {
                let decor = existing.decor().clone();
                *existing = table;
                *existing.decor_mut() = decor;
            }
            _ => {
                plugin.insert("config", Item::Table(table.into_table()));
            }
        }
        Ok(())
    }

    /// Writes (`Some`) or removes (`None`) `[plugins.<id>] consent`; a plugin table left
    /// empty by the removal is removed too.
    ///
    /// # Errors
    /// When `plugins` or `plugins.<id>` is not a table.
    pub fn set_consent(
        &mut self,
        id: &str,
        consent: Option<&[String]>,
    ) -> Result<(), ConfigFileError> {
        match consent {
            Some(consent) => {
                let list: toml_edit::Array = consent.iter().map(String::as_str).collect();
                self.plugin(id)?.insert("consent", toml_edit::value(list));
            }
            None => {
                let Some(plugins) = self
                    .document
                    .get_mut("plugins")
                    .and_then(Item::as_table_like_mut)
                else {
                    return Ok(());
                };
                let now_empty = match plugins.get_mut(id).and_then(Item::as_table_like_mut) {
                    Some(plugin) => {
                        plugin.remove("consent");
                        plugin.is_empty()
                    }
                    None => return Ok(()),
                };
                if now_empty {
                    plugins.remove(id);
                }
            }
        }
        Ok(())
    }

    /// Adds `[trust.keys] <name> = "<key>"`. Returns `false`, changing nothing, when a key
    /// of that name is already there.
    ///
    /// # Errors
    /// When `trust` or `trust.keys` is not a table.
    pub fn add_trust_key(&mut self, name: &str, key: &str) -> Result<bool, ConfigFileError> {
        let keys = self.trust_keys()?;
        if keys.contains_key(name) {
            return Ok(false);
        }
        keys.insert(name, toml_edit::value(key));
        Ok(true)
    }

    /// Removes `[trust.keys] <name>`. Returns whether it was there.
    ///
    /// # Errors
    /// When `trust` or `trust.keys` is not a table.
    pub fn remove_trust_key(&mut self, name: &str) -> Result<bool, ConfigFileError> {
        Ok(self.trust_keys()?.remove(name).is_some())
    }

    fn trust_keys(&mut self) -> Result<&mut Table, ConfigFileError> {
        let path = self.path;
        let not_table = |key: &str| ConfigFileError::NotATable {
            path: path.to_path_buf(),
            key: key.into(),
        };
        self.document
            .entry("trust")
            .or_insert_with(|| Item::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| not_table("trust"))?
            .entry("keys")
            .or_insert_with(|| Item::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| not_table("trust.keys"))
    }

    /// `[plugins.<id>]`, created if missing (`[plugins]` itself implicit).
    fn plugin(&mut self, id: &str) -> Result<&mut dyn toml_edit::TableLike, ConfigFileError> {
        let path = self.path;
        let not_table = |key: String| ConfigFileError::NotATable {
            path: path.to_path_buf(),
            key,
        };
        self.document
            .entry("plugins")
            .or_insert_with(|| {
                let mut table = Table::new();
                table.set_implicit(true);
                Item::Table(table)
            })
            .as_table_like_mut()
            .ok_or_else(|| not_table("plugins".into()))?
            .entry(id)
            .or_insert(Item::Table(Table::new()))
            .as_table_like_mut()
            .ok_or_else(|| not_table(format!("plugins.{id}")))
    }
}

fn inline_table(
    fields: &serde_json::Map<String, Value>,
    at: &str,
) -> Result<InlineTable, ConfigFileError> {
    let mut table = InlineTable::new();
    for (key, value) in fields {
        let place = format!("{at}/{key}");
        table.insert(key, toml_value(value, &place)?);
    }
    Ok(table)
}

/// JSON as a TOML value. TOML has no null, and integers end at `i64`.
fn toml_value(value: &Value, at: &str) -> Result<toml_edit::Value, ConfigFileError> {
    let refused = |why: &str| ConfigFileError::Value {
        message: format!("at `{at}`: {why}"),
    };
    Ok(match value {
        Value::Null => {
            return Err(refused(
                "null cannot be written to sigil.toml; leave the field out",
            ));
        }
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) if n.is_f64() => f.into(),
            _ => return Err(refused("the number does not fit in TOML")),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for (i, item) in items.iter().enumerate() {
                array.push(toml_value(item, &format!("{at}/{i}"))?);
            }
            toml_edit::Value::Array(array)
        }
        Value::Object(fields) => toml_edit::Value::InlineTable(inline_table(fields, at)?),
    })
}
