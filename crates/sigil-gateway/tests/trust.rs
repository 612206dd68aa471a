//! Trust through the HTTP API: plugin bodies carry the trust level, an install through the API
//! audits the caller's consent with the trust level and signer, and a plugin changed after
//! signing is refused before anything is copied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, assert_error, echo_plugin, send};
use serde_json::json;
use sigil_trust::{KeyPair, sign_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_report_and_audit_trust_and_tampered_plugins_are_refused() {
    let release = KeyPair::generate_unencrypted().unwrap();
    let config = format!(
        "{}\n[trust.keys]\nrelease = \"{}\"\n",
        common::CONFIG,
        release.public().to_base64()
    );
    let server = Server::start_with(&config).await;
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().join("echo");
    echo_plugin(&dir, "1.0.0", b"echo");
    sign_dir(&dir, &release).unwrap();
    let path = dir.display().to_string();

    let (status, body) = send(server.post("/v1/plugins", "admin", json!({ "path": path }))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "running");
    assert_eq!(
        body["trust"],
        json!({ "level": "verified", "key": "release", "key_id": release.public().id().to_string() })
    );

    let (status, body) = send(server.get("/v1/plugins", Some("carol"))).await;
    assert_eq!(status, 200);
    let plugins = body["plugins"].as_array().unwrap();
    let level = |id: &str| {
        plugins.iter().find(|p| p["id"] == id).unwrap()["trust"]["level"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(level("echo"), "verified");
    assert_eq!(level("text"), "trusted");

    let records = server
        .runtime()
        .audit()
        .query(&sigil_audit::Filter {
            plugin: Some("echo".into()),
            ..Default::default()
        })
        .unwrap();
    let consent: Vec<_> = records
        .iter()
        .filter(|r| r.record.rule.starts_with("install consent"))
        .collect();
    assert_eq!(consent.len(), 1, "{records:?}");
    assert_eq!(consent[0].record.actor.user.as_deref(), Some("admin"));
    assert_eq!(
        consent[0].record.rule,
        format!(
            "install consent: kv.read:echo.*; trust: verified, signed by key `release` ({})",
            release.public().id()
        )
    );

    // Changed after signing: refused, naming the file; nothing copied, nothing audited.
    std::fs::write(dir.join("extra.txt"), "added").unwrap();
    let result = send(server.post(
        "/v1/plugins",
        "admin",
        json!({ "path": path, "force": true }),
    ))
    .await;
    assert_error(&result, 422, "install_refused");
    let message = result.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("extra.txt was added after signing"),
        "{message}"
    );
    assert!(!server.home.path().join("plugins/echo/extra.txt").exists());
    let after = server
        .runtime()
        .audit()
        .query(&sigil_audit::Filter {
            plugin: Some("echo".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        after
            .iter()
            .filter(|r| r.record.rule.starts_with("install consent"))
            .count(),
        1
    );

    // The OpenAPI document describes the trust body.
    let (status, openapi) = send(server.client.get(server.url("/openapi.json"))).await;
    assert_eq!(status, 200);
    let trust = &openapi["components"]["schemas"]["TrustBody"];
    assert!(trust["properties"]["level"].is_object(), "{trust}");
}
