//! The health check a plugin reports through the kit, as the host's `Lifecycle.Health` sees it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use sigil_process_kit::proto::health_response::Status;
use sigil_process_kit::proto::lifecycle_client::LifecycleClient;
use sigil_process_kit::{Health, Plugin, proto};
use tonic::transport::{Channel, Endpoint};

/// Serves `plugin` in a temporary directory and connects to it.
async fn connect(plugin: Plugin) -> (LifecycleClient<Channel>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin.sock");
    tokio::spawn({
        let socket = socket.clone();
        async move { sigil_process_kit::serve_at(plugin, &socket).await }
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
    (LifecycleClient::new(channel), dir)
}

async fn health(client: &mut LifecycleClient<Channel>) -> (Status, String) {
    let reply = client
        .health(proto::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    (Status::try_from(reply.status).unwrap(), reply.message)
}

#[tokio::test]
async fn a_plugin_without_a_check_is_serving() {
    let (mut client, _dir) = connect(Plugin::new()).await;
    assert_eq!(health(&mut client).await, (Status::Serving, String::new()));
}

#[tokio::test]
async fn the_plugins_check_decides_each_answer() {
    let broken = Arc::new(AtomicBool::new(false));
    let plugin = Plugin::new().health({
        let broken = broken.clone();
        move || {
            let broken = broken.load(Ordering::SeqCst);
            async move {
                if broken {
                    Health::NotServing("lost its database".into())
                } else {
                    Health::Serving
                }
            }
        }
    });
    let (mut client, _dir) = connect(plugin).await;
    let table = [
        (false, (Status::Serving, "")),
        (true, (Status::NotServing, "lost its database")),
        (false, (Status::Serving, "")),
    ];
    for (is_broken, (status, message)) in table {
        broken.store(is_broken, Ordering::SeqCst);
        assert_eq!(
            health(&mut client).await,
            (status, message.to_string()),
            "broken: {is_broken}"
        );
    }
}
