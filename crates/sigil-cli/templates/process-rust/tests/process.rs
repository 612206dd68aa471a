//! Starts the built plugin the way Sigil does (minus the sandbox): `SIGIL_PLUGIN_SOCKET` names
//! a socket, and the test speaks gRPC to it as the host would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use hyper_util::rt::TokioIo;
use sigil_process_kit::proto::lifecycle_client::LifecycleClient;
use sigil_process_kit::proto::tool_client::ToolClient;
use sigil_process_kit::proto::{self, invoke_response, tool_error};
use tonic::transport::{Channel, Endpoint};

/// Starts the plugin's executable serving on `dir/plugin.sock` and connects to it.
async fn start(dir: &Path) -> (Child, Channel) {
    let socket = dir.join("plugin.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_{{name}}"))
        .env("SIGIL_PLUGIN_SOCKET", &socket)
        .spawn()
        .expect("the plugin starts");
    while !socket.exists() {
        if let Some(status) = child.try_wait().expect("the plugin can be waited on") {
            panic!("the plugin exited before listening: {status}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let channel = Endpoint::from_static("http://plugin.test")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket: PathBuf = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("the plugin accepts a connection");
    (child, channel)
}

fn invoke(tool: &str, input: &str) -> proto::InvokeRequest {
    proto::InvokeRequest {
        call: Some(proto::CallInfo {
            call_id: "c1".into(),
            tool: tool.into(),
            user: None,
            workspace: None,
        }),
        input: input.into(),
    }
}

#[tokio::test]
async fn greet_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, channel) = start(dir.path()).await;
    let mut lifecycle = LifecycleClient::new(channel.clone());
    let init = lifecycle
        .init(proto::InitRequest {
            protocol_version: sigil_process_kit::PROTOCOL_VERSION.into(),
            plugin_id: "{{name}}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        init.get_ref().protocol_version,
        sigil_process_kit::PROTOCOL_VERSION
    );

    let mut tools = ToolClient::new(channel);
    let described = tools.describe(proto::DescribeRequest {}).await.unwrap();
    let names: Vec<&str> = described
        .get_ref()
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["greet"]);

    let greeted = tools
        .invoke(invoke("greet", r#"{"name":"ada","excited":true}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        greeted.result,
        Some(invoke_response::Result::Output(
            r#"{"greeting":"hello, ada!"}"#.into()
        ))
    );

    let blank = tools
        .invoke(invoke("greet", r#"{"name":"  "}"#))
        .await
        .unwrap()
        .into_inner();
    let Some(invoke_response::Result::Error(error)) = blank.result else {
        panic!("a blank name must fail: {blank:?}");
    };
    assert_eq!(
        (error.kind, error.message.as_str()),
        (tool_error::Kind::InvalidInput as i32, "`name` is blank")
    );

    lifecycle
        .shutdown(proto::ShutdownRequest {
            drain_timeout_ms: 1000,
        })
        .await
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the plugin exited with {status}");
}
