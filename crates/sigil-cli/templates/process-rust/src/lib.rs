//! {{name}}: a Sigil tool plugin run as a sandboxed process.
//!
//! Each `.typed(name, description, input_schema, function)` is one tool. The host validates
//! every input against its schema before the function runs; serde turns it into the input
//! type. `src/main.rs` serves the plugin on the socket Sigil names.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sigil_process_kit::{Context, Plugin, ToolError};

/// The input of `greet`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
    /// End the greeting with an exclamation mark.
    #[serde(default)]
    pub excited: bool,
}

/// The output of `greet`.
#[derive(Debug, Serialize)]
pub struct Greeting {
    /// The greeting.
    pub greeting: String,
}

/// Greets someone by name.
pub async fn greet(_ctx: Context, input: GreetInput) -> Result<Greeting, ToolError> {
    if input.name.trim().is_empty() {
        return Err(ToolError::InvalidInput("`name` is blank".into()));
    }
    let mark = if input.excited { "!" } else { "" };
    Ok(Greeting {
        greeting: format!("hello, {}{mark}", input.name),
    })
}

/// The plugin: its tools.
pub fn plugin() -> Plugin {
    Plugin::new().typed(
        "greet",
        "Greets someone by name.",
        json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "description": "Who to greet." },
                "excited": {
                    "type": "boolean",
                    "description": "End the greeting with an exclamation mark."
                }
            }
        }),
        greet,
    )
}
