//! The tool's door back to the host, for the duration of one call.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::ToolError;
use crate::proto;
use crate::proto::host_client::HostClient;

/// A log level for [`Context::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// An HTTP request the host sends on the plugin's behalf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values; values may hold secret placeholders.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The host's answer to an [`HttpRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// One call in progress: who is calling, and host access on the call's behalf.
///
/// Cheap to clone. Every host call carries this call's id; the host decides it with the
/// call's authority, so a context kept after its call has ended is refused.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) info: proto::CallInfo,
    pub(crate) host: Option<HostClient<Channel>>,
}

impl Context {
    /// The call's id.
    pub fn call_id(&self) -> &str {
        &self.info.call_id
    }

    /// The tool called; for a hook, the event's name (`before_tool_execute`, ...).
    pub fn tool(&self) -> &str {
        &self.info.tool
    }

    /// The user on whose behalf the call runs, if known.
    pub fn user(&self) -> Option<&str> {
        self.info.user.as_deref()
    }

    /// The workspace the call runs in, if known.
    pub fn workspace(&self) -> Option<&str> {
        self.info.workspace.as_deref()
    }

    fn host(&self) -> Result<HostClient<Channel>, ToolError> {
        self.host
            .clone()
            .ok_or_else(|| ToolError::Failed("the host has not initialised this plugin".into()))
    }

    /// Logs a message, tagged by the host with the plugin and call. Failures are ignored:
    /// logging never fails a tool.
    pub async fn log(&self, level: LogLevel, message: &str) {
        let Ok(mut host) = self.host() else { return };
        let level = match level {
            LogLevel::Trace => proto::LogLevel::Trace,
            LogLevel::Debug => proto::LogLevel::Debug,
            LogLevel::Info => proto::LogLevel::Info,
            LogLevel::Warn => proto::LogLevel::Warn,
            LogLevel::Error => proto::LogLevel::Error,
        };
        let _ = host
            .log(proto::LogRequest {
                call_id: self.info.call_id.clone(),
                level: level as i32,
                message: message.to_string(),
            })
            .await;
    }

    /// [`Context::log`] at info level.
    pub async fn log_info(&self, message: &str) {
        self.log(LogLevel::Info, message).await;
    }

    /// Reads `key` from the plugin's key-value state (needs `kv.read:<key>`).
    ///
    /// # Errors
    /// [`ToolError::Denied`] when not granted; [`ToolError::Failed`] when the host fails.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, ToolError> {
        let reply = self
            .host()?
            .kv_get(proto::KvGetRequest {
                call_id: self.info.call_id.clone(),
                key: key.to_string(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        match reply.error {
            Some(error) => Err(host_error(error)),
            None => Ok(reply.value),
        }
    }

    /// Writes `key` in the plugin's key-value state (needs `kv.write:<key>`).
    ///
    /// # Errors
    /// [`ToolError::Denied`] when not granted; [`ToolError::Failed`] when the host fails.
    pub async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), ToolError> {
        let reply = self
            .host()?
            .kv_set(proto::KvSetRequest {
                call_id: self.info.call_id.clone(),
                key: key.to_string(),
                value: value.to_vec(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        reply.error.map_or(Ok(()), |e| Err(host_error(e)))
    }

    /// Removes `key` from the plugin's key-value state (needs `kv.write:<key>`).
    ///
    /// # Errors
    /// [`ToolError::Denied`] when not granted; [`ToolError::Failed`] when the host fails.
    pub async fn kv_delete(&self, key: &str) -> Result<(), ToolError> {
        let reply = self
            .host()?
            .kv_delete(proto::KvDeleteRequest {
                call_id: self.info.call_id.clone(),
                key: key.to_string(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        reply.error.map_or(Ok(()), |e| Err(host_error(e)))
    }

    /// The plugin's configuration (secret fields are never included).
    ///
    /// # Errors
    /// [`ToolError::Failed`] when the host fails or sends something that is not JSON.
    pub async fn config(&self) -> Result<Value, ToolError> {
        let reply = self
            .host()?
            .config_get(proto::ConfigGetRequest {
                call_id: self.info.call_id.clone(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        serde_json::from_str(&reply.config).map_err(|e| {
            ToolError::Failed(format!("the host sent configuration that is not JSON: {e}"))
        })
    }

    /// A placeholder for secret `name` (needs `secret.use:<name>`), to put in an outgoing
    /// request's header; the host replaces it with the value on an allowed request.
    ///
    /// # Errors
    /// [`ToolError::Denied`] when not granted or the secret does not exist.
    pub async fn secret_ref(&self, name: &str) -> Result<String, ToolError> {
        let reply = self
            .host()?
            .secret_reference(proto::SecretReferenceRequest {
                call_id: self.info.call_id.clone(),
                name: name.to_string(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        match (reply.placeholder, reply.error) {
            (_, Some(error)) => Err(host_error(error)),
            (Some(placeholder), None) => Ok(placeholder),
            (None, None) => Err(ToolError::Failed("the host sent no placeholder".into())),
        }
    }

    /// Sends an HTTP request through the host (needs `net.connect:<host>:<port>`).
    ///
    /// # Errors
    /// [`ToolError::Denied`] when the destination is not granted; [`ToolError::Failed`] when
    /// the request fails.
    pub async fn http(&self, request: HttpRequest) -> Result<HttpResponse, ToolError> {
        let reply = self
            .host()?
            .http_send(proto::HttpSendRequest {
                call_id: self.info.call_id.clone(),
                method: request.method,
                url: request.url,
                headers: request
                    .headers
                    .into_iter()
                    .map(|(name, value)| proto::Header { name, value })
                    .collect(),
                body: request.body,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        if let Some(error) = reply.error {
            return Err(host_error(error));
        }
        Ok(HttpResponse {
            status: u16::try_from(reply.status).unwrap_or(0),
            headers: reply
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: reply.body,
        })
    }
}

/// A host error text, classified: the host words every refusal as `denied ...`.
fn host_error(error: String) -> ToolError {
    if error.starts_with("denied") {
        ToolError::Denied(error)
    } else {
        ToolError::Failed(error)
    }
}

fn status_error(status: tonic::Status) -> ToolError {
    if status.code() == tonic::Code::PermissionDenied {
        ToolError::Denied(status.message().to_string())
    } else {
        ToolError::Failed(format!("host call failed: {}", status.message()))
    }
}

/// A lazily connected channel to the host's socket.
pub(crate) fn host_channel(path: PathBuf) -> Result<Channel, tonic::transport::Error> {
    // The URI is required by the API but unused: the connector always dials the socket.
    let endpoint = Endpoint::from_static("http://sigil.host");
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        })),
    )
}
