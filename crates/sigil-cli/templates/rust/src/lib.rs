//! {{name}}: a Sigil tool plugin.
//!
//! Each `Tool::new(name, description, function)` in `sigil_pdk::plugin!` is a tool. The
//! function's input type gives the JSON Schema of its input (doc comments become
//! descriptions), its output type the schema of its output. Build with `sigil plugin build`,
//! test with `cargo test`.

use sigil_pdk::prelude::*;

/// Greet someone by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
    /// End the greeting with an exclamation mark.
    #[serde(default)]
    pub excited: bool,
}

/// The greeting.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Greeting {
    /// The greeting.
    pub greeting: String,
}

fn greet(ctx: &mut Ctx, input: GreetInput) -> Result<Greeting, ToolError> {
    if input.name.trim().is_empty() {
        return Err(ToolError::invalid_input("`name` is blank"));
    }
    ctx.info(format!("greeting {}", input.name));
    let bang = if input.excited { "!" } else { "" };
    Ok(Greeting {
        greeting: format!("hello, {}{bang}", input.name),
    })
}

sigil_pdk::plugin![Tool::new("greet", "Greet someone by name.", greet)];
