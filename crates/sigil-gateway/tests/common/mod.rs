//! A real gateway on a loopback port over a real runtime, with the compiled-in plugins, a slow
//! plugin that reports when a call is inside it, and a stand-in wasm tier for installs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sigil_gateway::{Gateway, TokenStore};
use sigil_runtime::{
    Builtin, Call, Home, LoadRequest, Runtime, Steps, TierLoader, ToolDescriptor, ToolError,
    ToolPlugin, async_trait,
};

pub const CONFIG: &str = r#"
[defaults]
user = "admin"
workspace = "main"

[workspaces.main]
allow = ["*"]

[workspaces.narrow]
allow = ["tool.fs.*"]

[users.admin]
permissions = ["*"]
workspaces = ["main", "narrow"]

[users.bob]
permissions = ["tool.fs.*"]

[users.carol]
permissions = ["tool.text.*", "tool.slow.*", "tool.echo.*"]
"#;

pub const SLOW_MANIFEST: &str = r#"
id = "slow"
name = "Slow"
version = "0.1.0"
description = "Sleeps, so tests can catch a call in flight."
kinds = ["tool"]
engine = ">=0.1.0"

[execution]
tier = "builtin"

[execution.limits]
timeout_ms = 10000
"#;

/// Sleeps `ms` milliseconds; counts calls inside it.
#[derive(Debug, Default)]
pub struct Slow {
    pub inside: AtomicUsize,
}

#[async_trait]
impl ToolPlugin for Slow {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![ToolDescriptor {
            name: "sleep".into(),
            description: "Sleeps.".into(),
            input_schema: json!({
                "type": "object",
                "properties": { "ms": { "type": "integer", "minimum": 0, "maximum": 5000 } },
                "required": ["ms"],
            }),
            output_schema: None,
            steps: Steps::default(),
        }]
    }

    async fn invoke(&self, _call: &Call, input: Value) -> Result<Value, ToolError> {
        self.inside.fetch_add(1, Ordering::SeqCst);
        let ms = input["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({ "slept_ms": ms }))
    }
}

/// Echoes its input: the plugin the stand-in tier "loads" from an installed directory.
#[derive(Debug)]
pub struct Echo;

#[async_trait]
impl ToolPlugin for Echo {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![ToolDescriptor {
            name: "echo".into(),
            description: "Returns its input.".into(),
            input_schema: json!({ "type": "object" }),
            output_schema: None,
            steps: Steps::default(),
        }]
    }

    async fn invoke(&self, _call: &Call, input: Value) -> Result<Value, ToolError> {
        Ok(input)
    }
}

/// A wasm tier that checks the entry exists and serves [`Echo`].
#[derive(Debug)]
pub struct EchoTier;

impl TierLoader for EchoTier {
    fn load(&self, request: &LoadRequest<'_>) -> Result<Arc<dyn ToolPlugin>, String> {
        let entry = request
            .manifest
            .execution()
            .entry
            .as_ref()
            .ok_or("no entry")?;
        let bytes = std::fs::read(request.dir.join(entry)).map_err(|e| e.to_string())?;
        if bytes != b"echo" {
            return Err("not an echo component".into());
        }
        Ok(Arc::new(Echo))
    }
}

/// Writes an installable plugin directory for the stand-in tier.
pub fn echo_plugin(dir: &std::path::Path, version: &str, artifact: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            r#"id = "echo"
name = "Echo"
version = "{version}"
description = "Returns its input."
kinds = ["tool"]
engine = ">=0.1.0"

[[capabilities.request]]
capability = "kv.read:echo.*"
reason = "remembers nothing, but asks anyway"

[execution]
tier = "wasm"
entry = "plugin.wasm"
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.join("plugin.wasm"), artifact).unwrap();
}

pub struct Server {
    pub home: tempfile::TempDir,
    pub address: SocketAddr,
    pub runtime: Option<Arc<Runtime>>,
    pub tokens: HashMap<&'static str, String>,
    pub slow: Arc<Slow>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(CONFIG).await
    }

    pub async fn start_with(config: &str) -> Server {
        Server::start_with_builtins(config, Vec::new()).await
    }

    /// A server whose runtime also has `extra` compiled-in plugins.
    pub async fn start_with_builtins(config: &str, extra: Vec<Builtin>) -> Server {
        let home_dir = tempfile::tempdir().unwrap();
        std::fs::write(home_dir.path().join("sigil.toml"), config).unwrap();
        let home = Home::resolve(Some(home_dir.path())).unwrap();
        let store = TokenStore::open(&home.database_path()).unwrap();
        let mut tokens = HashMap::new();
        for user in ["admin", "bob", "carol"] {
            tokens.insert(user, store.create(user, None).unwrap().secret);
        }
        let slow = Arc::new(Slow::default());
        let mut builtins = sigil_builtins::all();
        builtins.push(Builtin {
            manifest: SLOW_MANIFEST,
            plugin: slow.clone(),
        });
        builtins.extend(extra);
        let tiers: Vec<(sigil_manifest::Tier, Arc<dyn TierLoader>)> =
            vec![(sigil_manifest::Tier::Wasm, Arc::new(EchoTier))];
        let runtime = Arc::new(Runtime::open_with(home, builtins, tiers).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let gateway = Gateway::builder(runtime.clone(), store).build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));
        Server {
            home: home_dir,
            address,
            runtime: Some(runtime),
            tokens,
            slow,
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// A second handle on the data directory's tokens, as `sigil token` opens them.
    pub fn token_store(&self) -> TokenStore {
        TokenStore::open(&self.home.path().join("sigil.db")).unwrap()
    }

    pub fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn get(&self, path: &str, user: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.client.get(self.url(path));
        match user {
            Some(user) => request.bearer_auth(&self.tokens[user]),
            None => request,
        }
    }

    pub fn post(&self, path: &str, user: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.tokens[user])
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    pub fn delete(&self, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.tokens[user])
    }

    /// Stops accepting, waits for requests in flight, closes the runtime (and its audit log).
    pub async fn shutdown(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
        let mut runtime = self.runtime.take().unwrap();
        // Handlers finished with the server; their clones are gone.
        let runtime = loop {
            match Arc::try_unwrap(runtime) {
                Ok(runtime) => break runtime,
                Err(shared) => {
                    runtime = shared;
                    tokio::task::yield_now().await;
                }
            }
        };
        runtime.close().unwrap();
    }
}

/// Sends a request and returns its status and JSON body.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "status {status}: content type `{content_type}`, body {text}"
    );
    (status, serde_json::from_str(&text).unwrap())
}

/// Asserts an error response's shape and code.
pub fn assert_error(result: &(u16, Value), status: u16, code: &str) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error"]["code"], code, "{}", result.1);
    assert!(result.1["error"]["message"].as_str().unwrap().len() > 5);
    assert_eq!(result.1.as_object().unwrap().len(), 1, "{}", result.1);
}
