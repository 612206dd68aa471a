//! The cost of calling a process-tier tool, with a baseline in the same run.
//!
//! - `process_call/runtime_invoke`: `Runtime::invoke` of `echo/echo` (64-byte string) on a
//!   warm sandboxed plugin: the enforcer's decision (a durable audit record), input schema
//!   validation, the gRPC round trip over the plugin's Unix socket, output checks and the
//!   durable outcome record.
//! - `process_call/runtime_invoke_process_durability`: the same with `[audit] durability =
//!   "process"` (records committed to SQLite without waiting for fsync).
//! - After the `process` line, the mean time of each stage of the call path over 2,000 calls
//!   is printed (`stage_timing`).
//! - `process_call/bare_tonic`: the baseline: the same plugin binary started directly (no
//!   sandbox), serving on a Unix socket, and one `Tool.Invoke` with the same input from a tonic
//!   client over a `UnixStream`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hyper_util::rt::TokioIo;
use serde_json::json;
use sigil_process::ProcessTier;
use sigil_process::proto::tool_client::ToolClient;
use sigil_process::proto::{CallInfo, InvokeRequest};
use sigil_runtime::{Home, Runtime};
use tonic::transport::Endpoint;

const MANIFEST: &str = r#"
id = "echo"
name = "Echo"
version = "0.1.0"
description = "Returns its input."
kinds = ["tool"]
engine = "*"

[execution]
tier = "process"
entry = "plugin"
"#;

fn config(durability: &str) -> String {
    format!(
        r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

[audit]
durability = "{durability}"
"#
    )
}

fn input() -> serde_json::Value {
    json!({ "text": "x".repeat(64) })
}

fn world(
    parent: &Path,
    binaries: &sigil_process_guests::Binaries,
    durability: &str,
) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir_in(parent).unwrap();
    let home = dir.path().canonicalize().unwrap().join("home");
    let plugin = home.join("plugins/echo");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::copy(&binaries.echo, plugin.join("plugin")).unwrap();
    std::fs::write(plugin.join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(home.join("sigil.toml"), config(durability)).unwrap();
    let sandbox = sigil_sandbox::Sandbox::with_init(&binaries.sandbox_init).unwrap();
    let tier = ProcessTier::with_sandbox(home.join("run"), sandbox).unwrap();
    let runtime = Runtime::open_with(
        Home::resolve(Some(&home)).unwrap(),
        Vec::new(),
        vec![(sigil_manifest::Tier::Process, Arc::new(tier))],
    )
    .unwrap();
    (dir, runtime)
}

fn bench(c: &mut Criterion) {
    let binaries = sigil_process_guests::build().unwrap();
    let parent = std::env::temp_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("process_call");

    for (name, durability) in [
        ("runtime_invoke", "disk"),
        ("runtime_invoke_process_durability", "process"),
    ] {
        let (_dir, runtime) = world(&parent, &binaries, durability);
        let actor = runtime.local_actor(None, None);
        let result = rt.block_on(runtime.invoke(&actor, "echo/echo", input()));
        assert_eq!(result.unwrap().output, input());
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(runtime.invoke(&actor, "echo/echo", input()).await.unwrap());
            });
        });
        if durability == "process" {
            sigil_runtime::stage_timing::enable();
            let _ = sigil_runtime::stage_timing::take();
            for _ in 0..2_000 {
                rt.block_on(runtime.invoke(&actor, "echo/echo", input()))
                    .unwrap();
            }
            eprintln!("stage means over 2,000 warm process-tier calls, durability = \"process\":");
            for (stage, mean) in sigil_runtime::stage_timing::take() {
                eprintln!(
                    "  {:<15} {:>9.2} µs",
                    stage.name(),
                    mean.as_secs_f64() * 1e6
                );
            }
        }
    }

    // The baseline: the same binary, no sandbox, a bare tonic client on a Unix socket.
    let dir = tempfile::tempdir_in(&parent).unwrap();
    let socket = dir.path().join("plugin.sock");
    let mut child = std::process::Command::new(&binaries.echo)
        .env_clear()
        .env("SIGIL_PLUGIN_SOCKET", &socket)
        .spawn()
        .unwrap();
    let client = rt.block_on(async {
        while !socket.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let path = socket.clone();
        let channel = Endpoint::from_static("http://bare.sigil")
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .unwrap();
        ToolClient::new(channel)
    });
    let request = || InvokeRequest {
        call: Some(CallInfo {
            call_id: "bench".into(),
            tool: "echo".into(),
            user: Some("alice".into()),
            workspace: Some("home".into()),
        }),
        input: input().to_string(),
    };
    group.bench_function("bare_tonic", |b| {
        b.to_async(&rt).iter(|| {
            let mut client = client.clone();
            async move {
                black_box(client.invoke(request()).await.unwrap());
            }
        });
    });
    group.finish();
    drop(client);
    let _ = child.kill();
    let _ = child.wait();
}

criterion_group!(benches, bench);
criterion_main!(benches);
