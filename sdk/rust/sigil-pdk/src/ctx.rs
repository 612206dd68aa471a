//! [`Ctx`]: a tool's view of its call and its host.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{HostError, ToolError};
use crate::host::{CallInfo, Host, Level};

/// What a tool gets besides its input: who is calling, and the host calls it may make.
///
/// Every host call is checked by the host against the plugin's grants and may fail with a
/// [`HostError`]; `?` turns that into the tool's [`ToolError`].
pub struct Ctx<'a> {
    host: &'a mut dyn Host,
    call: &'a CallInfo,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("call", self.call).finish()
    }
}

impl<'a> Ctx<'a> {
    /// A context for `call` on `host`.
    pub fn new(host: &'a mut dyn Host, call: &'a CallInfo) -> Ctx<'a> {
        Ctx { host, call }
    }

    /// Who is calling: call id, tool, user and workspace.
    pub fn call(&self) -> &CallInfo {
        self.call
    }

    /// Writes a log line at `level`.
    pub fn log(&mut self, level: Level, message: impl AsRef<str>) {
        self.host.log(level, message.as_ref());
    }

    /// Writes a log line at level `trace`.
    pub fn trace(&mut self, message: impl AsRef<str>) {
        self.log(Level::Trace, message);
    }

    /// Writes a log line at level `debug`.
    pub fn debug(&mut self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Writes a log line at level `info`.
    pub fn info(&mut self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Writes a log line at level `warn`.
    pub fn warn(&mut self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Writes a log line at level `error`.
    pub fn error(&mut self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }

    /// Reads `key` from the plugin's key-value namespace.
    ///
    /// # Errors
    /// The host denied `kv.read:<key>`, or its store failed.
    pub fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.host
            .kv_get(key)
            .map_err(|e| HostError::new(format!("kv.get `{key}`"), e))
    }

    /// Writes `key` in the plugin's key-value namespace.
    ///
    /// # Errors
    /// The host denied `kv.write:<key>`, the value is over its size limit, or its store failed.
    pub fn kv_set(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<(), HostError> {
        self.host
            .kv_set(key, value.as_ref())
            .map_err(|e| HostError::new(format!("kv.set `{key}`"), e))
    }

    /// Deletes `key` from the plugin's key-value namespace. Deleting a missing key succeeds.
    ///
    /// # Errors
    /// The host denied `kv.write:<key>`, or its store failed.
    pub fn kv_delete(&mut self, key: &str) -> Result<(), HostError> {
        self.host
            .kv_delete(key)
            .map_err(|e| HostError::new(format!("kv.delete `{key}`"), e))
    }

    /// Reads `key` and decodes it from JSON.
    ///
    /// # Errors
    /// As [`Ctx::kv_get`]; and [`ToolError::Failed`] when the stored value is not JSON of type `T`.
    pub fn kv_get_json<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, ToolError> {
        match self.kv_get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ToolError::failed(format!("kv value `{key}` is not the JSON expected: {e}"))
            }),
        }
    }

    /// Encodes `value` as JSON and writes it to `key`.
    ///
    /// # Errors
    /// As [`Ctx::kv_set`]; and [`ToolError::Failed`] when `value` cannot be encoded.
    pub fn kv_set_json<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), ToolError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ToolError::failed(format!("kv value `{key}` cannot be encoded: {e}")))?;
        Ok(self.kv_set(key, bytes)?)
    }

    /// The operator's configuration for this plugin (an empty object when there is none),
    /// already validated by the host against the manifest's `config.schema`. Secret fields
    /// are never included.
    pub fn config(&mut self) -> Value {
        let text = self.host.config();
        // The host sends JSON it produced itself; anything else is treated as no configuration.
        serde_json::from_str(&text).unwrap_or_else(|_| Value::Object(Default::default()))
    }

    /// The configuration decoded as `T`.
    ///
    /// # Errors
    /// [`ToolError::Failed`] naming the mismatch when the configuration does not fit `T`.
    pub fn config_as<T: DeserializeOwned>(&mut self) -> Result<T, ToolError> {
        serde_json::from_value(self.config())
            .map_err(|e| ToolError::failed(format!("plugin configuration does not fit: {e}")))
    }

    /// A placeholder for secret `name`, to put in an outgoing HTTP header (for example
    /// `authorization: Bearer <placeholder>`).
    ///
    /// # Errors
    /// The host denied `secret.use:<name>`, or no such secret is configured.
    ///
    /// # Security
    /// The plugin never holds the value: the host replaces the placeholder when it sends a
    /// request to a destination the plugin was granted. Do not parse the placeholder; its
    /// form is the host's business.
    pub fn secret_ref(&mut self, name: &str) -> Result<String, HostError> {
        self.host
            .secret_reference(name)
            .map_err(|e| HostError::new(format!("secret `{name}`"), e))
    }
}
