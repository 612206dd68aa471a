//! hello-rust: greets people and counts the greetings in the host's key-value store.
//!
//! `greet` uses every step of the execution pipeline: validate-pre refuses a blank name, the
//! tool counts the greeting, validate-post refuses a greeting longer than the configured
//! `max_length`, and rollback takes the count back when that happens. `times` only reads.
//!
//! ```
//! use sigil_pdk::testing::Harness;
//! use serde_json::json;
//!
//! let mut h = Harness::new(hello_rust::plugin()).grant_kv();
//! assert_eq!(h.invoke("greet", json!({"name": "ada"})).unwrap(),
//!            json!({"greeting": "hello, ada", "times": 1}));
//! ```

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use sigil_pdk::prelude::*;

/// The one key this plugin asks for: `kv.read:greetings`, `kv.write:greetings`.
pub const COUNTS: &str = "greetings";

/// Greet someone by name.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
    /// End the greeting with an exclamation mark.
    #[serde(default)]
    pub excited: bool,
}

/// A greeting, and how often this name was greeted.
#[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
pub struct Greeting {
    /// The greeting.
    pub greeting: String,
    /// How many times the name was greeted, this time included.
    pub times: u64,
}

/// How often a name was greeted.
#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct TimesInput {
    /// The name to look up.
    pub name: String,
}

fn counts(ctx: &mut Ctx) -> Result<BTreeMap<String, u64>, ToolError> {
    Ok(ctx.kv_get_json(COUNTS)?.unwrap_or_default())
}

fn greet(ctx: &mut Ctx, input: GreetInput) -> Result<Greeting, ToolError> {
    let mut counts = counts(ctx)?;
    let times = counts.entry(input.name.clone()).or_insert(0);
    *times += 1;
    let times = *times;
    ctx.kv_set_json(COUNTS, &counts)?;
    ctx.info(format!("greeting {} (time {times})", input.name));
    let bang = if input.excited { "!" } else { "" };
    Ok(Greeting {
        greeting: format!("hello, {}{bang}", input.name),
        times,
    })
}

fn refuse_blank_names(_: &mut Ctx, input: &GreetInput) -> Result<(), ToolError> {
    if input.name.trim().is_empty() {
        return Err(ToolError::invalid_input("`name` is blank"));
    }
    Ok(())
}

fn refuse_long_greetings(
    ctx: &mut Ctx,
    _: &GreetInput,
    output: &Greeting,
) -> Result<(), ToolError> {
    let limit = ctx.config()["max_length"].as_u64().unwrap_or(80);
    if output.greeting.chars().count() as u64 > limit {
        return Err(ToolError::failed(format!(
            "the greeting is longer than max_length ({limit})"
        )));
    }
    Ok(())
}

fn uncount(ctx: &mut Ctx, input: &GreetInput, output: Option<&Greeting>) -> Result<(), ToolError> {
    if output.is_none() {
        return Ok(()); // the tool failed before it counted
    }
    let mut counts = counts(ctx)?;
    if let Some(times) = counts.get_mut(&input.name) {
        *times = times.saturating_sub(1);
        if *times == 0 {
            counts.remove(&input.name);
        }
    }
    ctx.kv_set_json(COUNTS, &counts)?;
    Ok(())
}

fn times(ctx: &mut Ctx, input: TimesInput) -> Result<u64, ToolError> {
    Ok(counts(ctx)?.get(&input.name).copied().unwrap_or(0))
}

sigil_pdk::plugin![
    Tool::new(
        "greet",
        "Greet someone by name, and say how often they were greeted.",
        greet
    )
    .validate_pre(refuse_blank_names)
    .validate_post(refuse_long_greetings)
    .rollback(uncount),
    Tool::new("times", "How often a name was greeted.", times),
];
