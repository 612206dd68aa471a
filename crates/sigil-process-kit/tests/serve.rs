//! The kit's server, spoken to by a bare gRPC client over its Unix socket: version
//! negotiation, describe, typed functions and pipeline steps, and errors as values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sigil_process_kit::proto::lifecycle_client::LifecycleClient;
use sigil_process_kit::proto::tool_client::ToolClient;
use sigil_process_kit::proto::{self, tool_error};
use sigil_process_kit::{Plugin, ToolError};
use tonic::transport::{Channel, Endpoint};

#[derive(serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn plugin() -> Plugin {
    Plugin::new()
        .typed(
            "add",
            "Adds two numbers.",
            json!({ "type": "object" }),
            |_ctx, input: Add| async move { Ok::<_, ToolError>(json!({ "sum": input.a + input.b })) },
        )
        .function("fail", "Always fails.", json!({}), |_ctx, _input: Value| async move {
            Err::<Value, _>(ToolError::Failed("as designed".into()))
        })
        .function("slow", "Answers after 300 ms.", json!({}), |_ctx, _input: Value| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, ToolError>(json!("done"))
        })
}

async fn connect(dir: &std::path::Path) -> Channel {
    serve(dir).await.0
}

async fn serve(
    dir: &std::path::Path,
) -> (
    Channel,
    tokio::task::JoinHandle<Result<(), sigil_process_kit::KitError>>,
) {
    let socket = dir.join("plugin.sock");
    let server = tokio::spawn({
        let socket = socket.clone();
        async move { sigil_process_kit::serve_at(plugin(), &socket).await }
    });
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let channel = Endpoint::from_static("http://kit.test")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    (channel, server)
}

fn info(tool: &str) -> Option<proto::CallInfo> {
    Some(proto::CallInfo {
        call_id: "c1".into(),
        tool: tool.into(),
        user: None,
        workspace: None,
    })
}

#[tokio::test]
async fn the_kit_serves_lifecycle_and_tools() {
    let dir = tempfile::tempdir().unwrap();
    let channel = connect(dir.path()).await;
    let mut lifecycle = LifecycleClient::new(channel.clone());

    let refused = lifecycle
        .init(proto::InitRequest {
            protocol_version: "2.0.0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("2.0.0")
            && refused
                .message()
                .contains(sigil_process_kit::PROTOCOL_VERSION),
        "{}",
        refused.message()
    );
    let reply = lifecycle
        .init(proto::InitRequest {
            protocol_version: "1.4.0".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        reply.get_ref().protocol_version,
        sigil_process_kit::PROTOCOL_VERSION
    );

    let mut tools = ToolClient::new(channel);
    let described = tools
        .describe(proto::DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = described.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["add", "fail", "slow"]);

    let sum = tools
        .invoke(proto::InvokeRequest {
            call: info("add"),
            input: r#"{"a":2,"b":3}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        sum.result,
        Some(proto::invoke_response::Result::Output(
            r#"{"sum":5}"#.into()
        ))
    );

    let wrong = tools
        .invoke(proto::InvokeRequest {
            call: info("add"),
            input: r#"{"a":"two"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(proto::invoke_response::Result::Error(error)) = wrong.result else {
        panic!("expected an error");
    };
    assert_eq!(error.kind, tool_error::Kind::InvalidInput as i32);

    let failed = tools
        .invoke(proto::InvokeRequest {
            call: info("fail"),
            input: "{}".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(proto::invoke_response::Result::Error(error)) = failed.result else {
        panic!("expected an error");
    };
    assert_eq!(
        (error.kind, error.message.as_str()),
        (tool_error::Kind::Failed as i32, "as designed")
    );

    // Steps the tool does not override pass; an unknown tool is refused.
    let step = tools
        .validate_pre(proto::ValidatePreRequest {
            call: info("add"),
            input: "{}".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(step.error.is_none());
    let unknown = tools
        .invoke(proto::InvokeRequest {
            call: info("nope"),
            input: "{}".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn shutdown_finishes_the_call_in_flight_and_ends_the_server_while_the_host_stays_connected() {
    let dir = tempfile::tempdir().unwrap();
    let (channel, server) = serve(dir.path()).await;
    let mut tools = ToolClient::new(channel.clone());
    let in_flight = tokio::spawn(async move {
        tools
            .invoke(proto::InvokeRequest {
                call: info("slow"),
                input: "{}".into(),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    LifecycleClient::new(channel.clone())
        .shutdown(proto::ShutdownRequest {
            drain_timeout_ms: 1_000,
        })
        .await
        .unwrap();

    let reply = in_flight.await.unwrap().unwrap().into_inner();
    assert_eq!(
        reply.result,
        Some(proto::invoke_response::Result::Output(r#""done""#.into()))
    );
    // `channel` is still held here: the server must end on its own, not wait for the host to
    // hang up. The bound only guards against a hang; the drain timeout is 1 s.
    let ended = tokio::time::timeout(Duration::from_secs(30), server).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the server did not end after shutdown: {ended:?}"
    );
    drop(channel);
}
