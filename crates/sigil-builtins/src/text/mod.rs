//! `text`: pure text utilities. Needs no capabilities.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_runtime::{Builtin, Call, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait};

/// The `text` builtin.
pub fn plugin() -> Builtin {
    Builtin {
        manifest: include_str!("plugin.toml"),
        plugin: std::sync::Arc::new(Text),
    }
}

#[derive(Debug)]
struct Text;

fn text_input() -> Value {
    json!({
        "type": "object",
        "properties": { "text": { "type": "string", "maxLength": 1048576 } },
        "required": ["text"],
        "additionalProperties": false
    })
}

#[async_trait]
impl ToolPlugin for Text {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![
            ToolDescriptor {
                name: "sha256".into(),
                description: "The SHA-256 digest of a text's UTF-8 bytes, in hex.".into(),
                input_schema: text_input(),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": { "sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" } },
                    "required": ["sha256"]
                })),
                steps: Steps::default(),
            },
            ToolDescriptor {
                name: "stats".into(),
                description: "Count a text's lines, words, characters and bytes.".into(),
                input_schema: text_input(),
                output_schema: None,
                steps: Steps::default(),
            },
        ]
    }

    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError> {
        let text = input
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match call.tool() {
            "sha256" => {
                let digest = Sha256::digest(text.as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                Ok(json!({ "sha256": hex }))
            }
            "stats" => Ok(json!({
                "lines": text.lines().count(),
                "words": text.split_whitespace().count(),
                "chars": text.chars().count(),
                "bytes": text.len(),
            })),
            other => Err(ToolError::Failed(format!("no tool `{other}`"))),
        }
    }
}
