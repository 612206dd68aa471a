//! Shared set-up: a data directory in a temporary folder with a given `sigil.toml`, and a
//! builtin probe plugin whose tools misbehave on request.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sigil_runtime::{
    Builtin, Call, Home, Runtime, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait,
};

pub fn home(dir: &Path, config: &str) -> Home {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("sigil.toml"), config).unwrap();
    Home::resolve(Some(dir)).unwrap()
}

pub fn open(dir: &Path, config: &str, builtins: Vec<Builtin>) -> Runtime {
    Runtime::open(home(dir, config), builtins).unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub const CONFIG: &str = r#"
[defaults]
user = "alice"
workspace = "home"

[policy]
deny = ["kv.read:banned.*"]

[workspaces.home]
allow = ["*"]
deny = ["fs.read:/data/private/**"]

[workspaces.kids]
allow = ["tool.text.*"]

[users.alice]
permissions = ["*"]
deny = ["tool.probe.forbidden"]
workspaces = ["home", "kids"]

[users.bob]
permissions = ["tool.probe.*", "approvals.decide"]

[users.nobody]
permissions = []

[plugins.dirplugin]
consent = ["kv.*"]
"#;

pub const PROBE_MANIFEST: &str = r#"
id = "probe"
name = "Probe"
version = "1.2.3"
description = "A plugin whose tools misbehave on request."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [
  { capability = "kv.*", reason = "keeps state" },
  { capability = "fs.read:/data/**", reason = "reads data" },
]
deny = [{ capability = "kv.write:locked.*", reason = "never touches locked keys" }]

[execution]
tier = "builtin"

[execution.limits]
timeout_ms = 300
output_bytes = 1024
"#;

/// Every pipeline step the probe ran, in order.
pub type Journal = Arc<Mutex<Vec<String>>>;

#[derive(Debug, Default)]
pub struct Probe {
    pub journal: Journal,
}

pub fn probe() -> (Builtin, Journal) {
    let probe = Probe::default();
    let journal = probe.journal.clone();
    (
        Builtin {
            manifest: PROBE_MANIFEST,
            plugin: Arc::new(probe),
        },
        journal,
    )
}

fn tool(name: &str, input: Value, output: Option<Value>, steps: Steps) -> ToolDescriptor {
    ToolDescriptor {
        name: name.into(),
        description: format!("probe {name}"),
        input_schema: input,
        output_schema: output,
        steps,
    }
}

fn flag(input: &Value, name: &str) -> bool {
    input.get(name).and_then(Value::as_bool).unwrap_or(false)
}

#[async_trait]
impl ToolPlugin for Probe {
    fn tools(&self) -> Vec<ToolDescriptor> {
        let any = json!({ "type": "object" });
        let all = Steps {
            validate_pre: true,
            validate_post: true,
            rollback: true,
        };
        vec![
            tool(
                "echo",
                json!({ "type": "object", "properties": { "message": { "type": "string" } }, "required": ["message"], "additionalProperties": false }),
                None,
                Steps::default(),
            ),
            tool(
                "host",
                json!({ "type": "object", "properties": { "capability": { "type": "string" } }, "required": ["capability"] }),
                None,
                Steps::default(),
            ),
            tool("slow", any.clone(), None, Steps::default()),
            tool("big", any.clone(), None, Steps::default()),
            tool("panic", any.clone(), None, Steps::default()),
            tool(
                "bad_output",
                any.clone(),
                Some(json!({ "type": "object", "required": ["answer"] })),
                Steps::default(),
            ),
            tool("forbidden", any.clone(), None, Steps::default()),
            tool("pipeline", any, None, all),
        ]
    }

    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError> {
        match call.tool() {
            "echo" => Ok(input),
            "host" => {
                let capability = input["capability"].as_str().unwrap_or_default();
                call.authorize(capability)
                    .await
                    .map(|c| json!({ "granted": c.to_string() }))
            }
            "slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(json!({}))
            }
            "big" => Ok(json!({ "blob": "x".repeat(4096) })),
            "panic" => panic!("probe panics on purpose"),
            "bad_output" => Ok(json!({ "wrong": true })),
            "forbidden" => Ok(json!({ "ran": true })),
            "pipeline" => {
                self.journal.lock().unwrap().push("invoke".into());
                if flag(&input, "fail_invoke") {
                    return Err(ToolError::Failed("invoke broke".into()));
                }
                Ok(json!({ "done": true }))
            }
            other => Err(ToolError::Failed(format!("no tool {other}"))),
        }
    }

    async fn validate_pre(&self, _call: &Call, input: &Value) -> Result<(), ToolError> {
        self.journal.lock().unwrap().push("validate_pre".into());
        if flag(input, "fail_pre") {
            Err(ToolError::InvalidInput("pre says no".into()))
        } else {
            Ok(())
        }
    }

    async fn validate_post(
        &self,
        _call: &Call,
        input: &Value,
        output: &Value,
    ) -> Result<(), ToolError> {
        self.journal
            .lock()
            .unwrap()
            .push(format!("validate_post {output}"));
        if flag(input, "fail_post") {
            Err(ToolError::Failed("post says no".into()))
        } else {
            Ok(())
        }
    }

    async fn rollback(
        &self,
        _call: &Call,
        input: &Value,
        output: Option<&Value>,
    ) -> Result<(), ToolError> {
        self.journal.lock().unwrap().push(format!(
            "rollback {}",
            output.map(|o| o.to_string()).unwrap_or("none".into())
        ));
        if flag(input, "fail_rollback") {
            Err(ToolError::Failed("cannot undo".into()))
        } else {
            Ok(())
        }
    }
}
