//! JSON-RPC errors where the MCP SDK answers otherwise.
//!
//! The SDK reads a POST body straight into its typed messages. A body that is not a JSON-RPC
//! message at all (broken JSON, a batch, a wrong `jsonrpc`, `"id": null`, a method that is not
//! a string) it answers with `415` and a line of text; a known method with parameters that do
//! not fit (`initialize` without `clientInfo`, `tools/call` without `name`) falls through to
//! "method not found". JSON-RPC and MCP say otherwise: `-32700` for a parse error and `-32600`
//! for an invalid request, each with `400`, and `-32602` for invalid parameters. [`HttpService`]
//! lets the SDK answer first (so its `Host` and `Origin` checks, its content type and size
//! limits keep their order and their answers), then corrects those answers.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use serde_json::{Value, json};

use crate::McpServer;

/// The largest request body read (the SDK's own limit).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The start of the SDK's answer to a body it cannot read as a message.
const SDK_UNREADABLE: &[u8] = b"fail to deserialize request body";

/// The response body every answer here has.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// The streamable HTTP MCP service: a tower `Service` of `http::Request`s, to nest with
/// `axum::Router::nest_service`. The SDK's service, with its answers to malformed messages
/// made JSON-RPC errors (see the module's docs).
#[derive(Clone)]
pub struct HttpService {
    inner: StreamableHttpService<McpServer, NeverSessionManager>,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService").finish_non_exhaustive()
    }
}

impl HttpService {
    pub(crate) fn new(inner: StreamableHttpService<McpServer, NeverSessionManager>) -> Self {
        HttpService { inner }
    }
}

impl<B> tower_service::Service<http::Request<B>> for HttpService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send + 'static,
    B::Error: Display + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            if request.method() != http::Method::POST {
                return Ok(inner.handle(request).await);
            }
            let (parts, body) = request.into_parts();
            let Ok(collected) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
                return Ok(text(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Payload Too Large: request body exceeds {MAX_BODY_BYTES} bytes"),
                ));
            };
            let bytes = collected.to_bytes();
            let answered = inner
                .handle(http::Request::from_parts(parts, Full::new(bytes.clone())))
                .await;
            Ok(correct(answered, &bytes).await)
        })
    }
}

/// The SDK's answer to `request`, corrected where it is not the JSON-RPC error it should be.
async fn correct(
    answered: http::Response<ResponseBody>,
    request: &[u8],
) -> http::Response<ResponseBody> {
    if answered.status() == http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
        let (parts, body) = answered.into_parts();
        let Ok(collected) = body.collect().await;
        let text = collected.to_bytes();
        if text.starts_with(SDK_UNREADABLE) {
            let (id, code, message) = unreadable(request);
            return error(http::StatusCode::BAD_REQUEST, id, code, &message);
        }
        return http::Response::from_parts(parts, Full::new(text).boxed());
    }
    let Some(problem) = param_problem(request) else {
        return answered;
    };
    // Only a reply the SDK gave to the request itself is corrected: a refusal of the caller
    // (`Host`, `Origin`, no authenticated user) stays what it is.
    if answered.status() != http::StatusCode::OK {
        return answered;
    }
    let (parts, body) = answered.into_parts();
    let Ok(collected) = body.collect().await;
    let text = collected.to_bytes();
    let reply = serde_json::from_slice::<Value>(&text).unwrap_or(Value::Null);
    let misread = reply["error"]["code"]
        .as_i64()
        .is_some_and(|code| code == METHOD_NOT_FOUND || code == INVALID_PARAMS);
    let accepted = reply.get("result").is_some();
    if misread || (accepted && problem.always) {
        return error(
            http::StatusCode::OK,
            problem.id,
            INVALID_PARAMS,
            &problem.message,
        );
    }
    http::Response::from_parts(parts, Full::new(text).boxed())
}

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;
const METHOD_NOT_FOUND: i64 = -32601;

/// Why a body the SDK could not read is no JSON-RPC message: its id (when it has a usable
/// one), the code and the message.
fn unreadable(request: &[u8]) -> (Value, i64, String) {
    let Ok(message) = serde_json::from_slice::<Value>(request) else {
        return (
            Value::Null,
            PARSE_ERROR,
            "Parse error: the body is not JSON".into(),
        );
    };
    let Value::Object(fields) = &message else {
        let why = if message.is_array() {
            "Invalid Request: batches are not supported; send one message per request"
        } else {
            "Invalid Request: a message is a JSON object"
        };
        return (Value::Null, INVALID_REQUEST, why.into());
    };
    let id = match fields.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    let why = if fields.get("jsonrpc") != Some(&json!("2.0")) {
        "`jsonrpc` must be \"2.0\"".to_string()
    } else if fields.get("method").is_some_and(|m| !m.is_string()) {
        "`method` must be a string".to_string()
    } else if fields
        .get("id")
        .is_some_and(|id| !(id.is_string() || id.is_number()))
    {
        "`id` must be a string or a number".to_string()
    } else if fields.get("params").is_some_and(|p| !p.is_object()) {
        "`params` must be an object".to_string()
    } else {
        "not a JSON-RPC message MCP knows".to_string()
    };
    (id, INVALID_REQUEST, format!("Invalid Request: {why}"))
}

/// Parameters a known method cannot take.
struct ParamProblem {
    id: Value,
    message: String,
    /// Whether the SDK accepts them anyway (and its result must be overruled), rather than
    /// refusing them with the wrong code.
    always: bool,
}

/// What is wrong with the parameters of a request for a method Sigil serves, if anything.
fn param_problem(request: &[u8]) -> Option<ParamProblem> {
    let message: Value = serde_json::from_slice(request).ok()?;
    let method = message.get("method")?.as_str()?;
    let id = message
        .get("id")
        .filter(|id| id.is_string() || id.is_number())?
        .clone();
    let params = message.get("params");
    let object = |key: &str| params.and_then(|p| p.get(key));
    let problem = |why: String, always: bool| {
        Some(ParamProblem {
            id: id.clone(),
            message: format!("Invalid params for `{method}`: {why}"),
            always,
        })
    };
    match method {
        "initialize" => {
            if !object("protocolVersion").is_some_and(Value::is_string) {
                return problem("`protocolVersion` must be a string".into(), false);
            }
            if !object("capabilities").is_some_and(Value::is_object) {
                return problem("`capabilities` must be an object".into(), false);
            }
            let info = object("clientInfo");
            if !info.is_some_and(|i| {
                i.get("name").is_some_and(Value::is_string)
                    && i.get("version").is_some_and(Value::is_string)
            }) {
                return problem(
                    "`clientInfo` must be an object with `name` and `version` strings".into(),
                    false,
                );
            }
            None
        }
        "tools/call" => {
            if !object("name").is_some_and(Value::is_string) {
                return problem("`name` must be a string".into(), false);
            }
            if object("arguments").is_some_and(|a| !a.is_object()) {
                return problem("`arguments` must be an object".into(), false);
            }
            None
        }
        "tools/list" => match object("cursor") {
            // Every tool is listed on the first page, so no cursor names a page.
            Some(cursor) => problem(
                format!("cursor {cursor} names no page: every tool is on the first"),
                true,
            ),
            None => None,
        },
        _ => None,
    }
}

fn error(
    status: http::StatusCode,
    id: Value,
    code: i64,
    message: &str,
) -> http::Response<ResponseBody> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    });
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new()).boxed()))
}

fn text(status: http::StatusCode, message: String) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(Full::new(Bytes::from(message)).boxed());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_malformed_message_gets_its_code() {
        let cases: [(&str, i64, Value); 7] = [
            ("{not json", PARSE_ERROR, Value::Null),
            ("[]", INVALID_REQUEST, Value::Null),
            (r#"{"id":1,"method":"ping"}"#, INVALID_REQUEST, json!(1)),
            (
                r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#,
                INVALID_REQUEST,
                json!("a"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                INVALID_REQUEST,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":7}"#,
                INVALID_REQUEST,
                json!(2),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[1]}"#,
                INVALID_REQUEST,
                json!(3),
            ),
        ];
        for (body, code, id) in cases {
            let (got_id, got_code, message) = unreadable(body.as_bytes());
            assert_eq!((got_id, got_code), (id, code), "{body}: {message}");
        }
    }

    #[test]
    fn known_methods_with_parameters_that_do_not_fit_are_found() {
        let bad = [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"nope"}}"#,
        ];
        for body in bad {
            assert!(param_problem(body.as_bytes()).is_some(), "{body}");
        }
        let good = [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        ];
        for body in good {
            assert!(param_problem(body.as_bytes()).is_none(), "{body}");
        }
    }
}
