//! Plugins' configuration over real HTTP: an invalid change is refused with the schema's error
//! and the old configuration stays in force; a valid one reaches the plugin's next call; secret
//! fields are shown redacted, and their value is in no response body and no audit record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{CONFIG, Server, assert_error, echo_plugin, send};
use serde_json::{Value, json};
use sigil_audit::Filter;
use sigil_runtime::{Builtin, Call, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait};

const SECRET: &str = "sk-Hv3pGatewaySecret0912";

const MANIFEST: &str = r#"
id = "configured"
name = "Configured"
version = "0.1.0"
description = "Reports the configuration it is called with."
kinds = ["tool"]
engine = ">=0.1.0"

[execution]
tier = "builtin"

[config.schema]
type = "object"
additionalProperties = false
required = ["greeting"]

[config.schema.properties.greeting]
type = "string"
minLength = 1

[config.schema.properties.api_key]
type = "string"
pattern = "^sk-"
secret = true
"#;

/// Reports its greeting, and whether it holds the expected API key (without returning it).
#[derive(Debug)]
struct Report;

#[async_trait]
impl ToolPlugin for Report {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![ToolDescriptor {
            name: "report".into(),
            description: "Reports the plugin's configuration.".into(),
            input_schema: json!({ "type": "object" }),
            output_schema: None,
            steps: Steps::default(),
        }]
    }

    async fn invoke(&self, call: &Call, _input: Value) -> Result<Value, ToolError> {
        let config = call.config();
        Ok(json!({
            "greeting": config["greeting"],
            "has_key": config["api_key"].as_str() == Some(SECRET),
        }))
    }
}

async fn start() -> Server {
    let config = format!(
        "{CONFIG}\n# Configured's settings.\n[plugins.configured.config]\ngreeting = \"hello\"\n"
    );
    Server::start_with_builtins(
        &config,
        vec![Builtin {
            manifest: MANIFEST,
            plugin: Arc::new(Report),
        }],
    )
    .await
}

/// Every body the test received, to check none holds the secret.
#[derive(Default)]
struct Bodies(Vec<String>);

impl Bodies {
    fn keep(&mut self, result: (u16, Value)) -> (u16, Value) {
        self.0.push(result.1.to_string());
        result
    }
}

fn put(server: &Server, path: &str, user: &str, body: &Value) -> reqwest::RequestBuilder {
    server
        .client
        .put(server.url(path))
        .bearer_auth(&server.tokens[user])
        .header("content-type", "application/json")
        .body(body.to_string())
}

async fn report(server: &Server, bodies: &mut Bodies) -> Value {
    let (status, body) = bodies
        .keep(send(server.post("/v1/tools/configured/report/invoke", "admin", json!({}))).await);
    assert_eq!(status, 200, "{body}");
    body["output"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_over_http_are_validated_live_and_keep_secrets_secret() {
    let mut server = start().await;
    let mut bodies = Bodies::default();
    let path = "/v1/plugins/configured/config";

    let shown = bodies.keep(send(server.get(path, Some("admin"))).await);
    assert_eq!(
        shown,
        (
            200,
            json!({ "plugin": "configured", "config": { "greeting": "hello" } })
        )
    );
    assert_eq!(
        report(&server, &mut bodies).await,
        json!({ "greeting": "hello", "has_key": false })
    );

    // Only users allowed `admin.config`.
    assert_error(&send(server.get(path, Some("bob"))).await, 403, "forbidden");
    assert_error(
        &send(put(&server, path, "bob", &json!({ "greeting": "x" }))).await,
        403,
        "forbidden",
    );
    assert_error(
        &send(server.post("/v1/config/reload", "bob", json!({}))).await,
        403,
        "forbidden",
    );
    assert_error(
        &send(server.get("/v1/plugins/nope/config", Some("admin"))).await,
        404,
        "unknown_plugin",
    );

    // Invalid: refused with the schema's error; nothing changes.
    let refused = bodies.keep(
        send(put(
            &server,
            path,
            "admin",
            &json!({ "greeting": "", "api_key": SECRET }),
        ))
        .await,
    );
    assert_error(&refused, 422, "invalid_config");
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("/properties/greeting/minLength"),
        "{message}"
    );
    let refused = bodies.keep(
        send(put(
            &server,
            path,
            "admin",
            &json!({ "greeting": "hi", "api_key": "pk-wrong" }),
        ))
        .await,
    );
    assert_error(&refused, 422, "invalid_config");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/properties/api_key/pattern"),
        "{}",
        refused.1
    );
    assert_error(
        &send(put(&server, path, "admin", &json!([1]))).await,
        422,
        "invalid_config",
    );
    let shown = bodies.keep(send(server.get(path, Some("admin"))).await);
    assert_eq!(shown.1["config"], json!({ "greeting": "hello" }));
    assert_eq!(
        report(&server, &mut bodies).await,
        json!({ "greeting": "hello", "has_key": false })
    );
    let toml = std::fs::read_to_string(server.home.path().join("sigil.toml")).unwrap();
    assert!(toml.contains("greeting = \"hello\""), "{toml}");

    // Valid: the next call sees it, the secret is stored encrypted, shown redacted.
    let changed = bodies.keep(
        send(put(
            &server,
            path,
            "admin",
            &json!({ "greeting": "ahoy", "api_key": SECRET }),
        ))
        .await,
    );
    assert_eq!(
        changed,
        (
            200,
            json!({ "plugins": ["configured"], "file_changed": true })
        )
    );
    assert_eq!(
        report(&server, &mut bodies).await,
        json!({ "greeting": "ahoy", "has_key": true })
    );
    let shown = bodies.keep(send(server.get(path, Some("admin"))).await);
    assert_eq!(
        shown.1["config"],
        json!({ "greeting": "ahoy", "api_key": "<secret>" })
    );
    let toml = std::fs::read_to_string(server.home.path().join("sigil.toml")).unwrap();
    assert!(toml.contains("# Configured's settings."), "{toml}");
    assert!(toml.contains("greeting = \"ahoy\""), "{toml}");
    assert!(!toml.contains(SECRET), "{toml}");

    // A reload of an unchanged file changes nothing; a broken file is refused, the old stays.
    let unchanged = bodies.keep(send(server.post("/v1/config/reload", "admin", json!({}))).await);
    assert_eq!(
        unchanged,
        (200, json!({ "plugins": [], "file_changed": false }))
    );
    std::fs::write(
        server.home.path().join("sigil.toml"),
        toml.replace("greeting = \"ahoy\"", "greeting = \"unterminated"),
    )
    .unwrap();
    let rejected = bodies.keep(send(server.post("/v1/config/reload", "admin", json!({}))).await);
    assert_error(&rejected, 422, "config_rejected");
    assert!(
        rejected.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sigil.toml: line"),
        "{}",
        rejected.1
    );
    assert_eq!(
        report(&server, &mut bodies).await,
        json!({ "greeting": "ahoy", "has_key": true })
    );
    // While the file is broken, an update is refused too, and writes nothing.
    let refused = bodies.keep(send(put(&server, path, "admin", &json!({ "greeting": "x" }))).await);
    assert_error(&refused, 422, "config_rejected");
    std::fs::write(server.home.path().join("sigil.toml"), &toml).unwrap();

    // The audit log, over the API and exported, holds the changes but never the value.
    let audit = bodies.keep(send(server.get("/v1/audit?limit=1000", Some("admin"))).await);
    assert_eq!(audit.0, 200, "{}", audit.1);
    assert!(audit.1.to_string().contains("admin.config"), "{}", audit.1);
    let mut export = Vec::new();
    server
        .runtime()
        .audit()
        .export(&Filter::default(), &mut export)
        .unwrap();
    let export = String::from_utf8(export).unwrap();
    assert!(export.contains("configuration change rejected"), "{export}");
    assert!(!export.contains(SECRET), "the audit log holds the secret");
    for body in &bodies.0 {
        assert!(
            !body.contains(SECRET),
            "a response holds the secret: {body}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_routes_are_documented() {
    let mut server = start().await;
    let (status, doc) = send(server.get("/openapi.json", None)).await;
    assert_eq!(status, 200);
    let paths = &doc["paths"];
    for (path, method) in [
        ("/v1/plugins/{id}/config", "get"),
        ("/v1/plugins/{id}/config", "put"),
        ("/v1/config/reload", "post"),
    ] {
        let operation = &paths[path][method];
        assert_eq!(
            operation["security"],
            json!([{ "bearer": [] }]),
            "{path} {method}"
        );
        assert!(operation["responses"]["403"].is_object(), "{path} {method}");
    }
    assert!(paths["/v1/plugins/{id}/config"]["put"]["responses"]["422"].is_object());
    server.shutdown().await;
}

/// An install (which writes the plugin's consent) and a configuration update (which writes
/// another plugin's settings) change `sigil.toml` at the same moment, a hundred times: each
/// round, the file holds both changes. Before `sigil.toml` had one editor, each request wrote
/// back the file as it had read it, and the other's change could vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_and_a_configuration_update_at_once_never_lose_a_write() {
    let server = start().await;
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().join("echo");
    echo_plugin(&dir, "1.0.0", b"echo");
    let install = json!({ "path": dir.display().to_string() });
    let config_path = server.home.path().join("sigil.toml");
    let read = || -> toml::Table {
        std::fs::read_to_string(&config_path)
            .unwrap()
            .parse()
            .unwrap()
    };

    for round in 0..100 {
        let greeting = format!("hello {round}");
        let body = json!({ "greeting": greeting });
        let ((installed, out), (updated, changed)) = tokio::join!(
            send(server.post("/v1/plugins", "admin", install.clone())),
            send(put(
                &server,
                "/v1/plugins/configured/config",
                "admin",
                &body
            )),
        );
        assert_eq!(installed, 201, "round {round}: {out}");
        assert_eq!(updated, 200, "round {round}: {changed}");
        let file = read();
        let plugins = &file["plugins"];
        assert_eq!(
            plugins.get("echo").and_then(|p| p.get("consent")),
            Some(&toml::Value::Array(vec!["kv.read:echo.*".into()])),
            "round {round}: the install's consent was lost: {file}"
        );
        assert_eq!(
            plugins["configured"]["config"]["greeting"].as_str(),
            Some(greeting.as_str()),
            "round {round}: the configuration update was lost: {file}"
        );

        let (removed, out) = send(server.delete("/v1/plugins/echo", "admin")).await;
        assert_eq!(removed, 200, "round {round}: {out}");
        assert!(
            read()["plugins"].get("echo").is_none(),
            "round {round}: the removal left the consent"
        );
    }
}
