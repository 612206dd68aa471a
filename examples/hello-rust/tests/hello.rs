//! hello-rust's tools, run natively against the kit's harness: no component is built.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use sigil_pdk::testing::{Harness, Step};
use sigil_pdk::{Level, Steps, ToolError};

fn counts(h: &Harness) -> Value {
    h.kv(hello_rust::COUNTS)
        .map_or(json!({}), |bytes| serde_json::from_slice(bytes).unwrap())
}

fn steps(h: &Harness) -> Vec<Step> {
    h.trace().iter().map(|(step, _)| *step).collect()
}

#[test]
fn greet_counts_per_name() {
    let mut h = Harness::new(hello_rust::plugin()).grant_kv();
    assert_eq!(
        h.invoke("greet", json!({"name": "ada"})).unwrap(),
        json!({"greeting": "hello, ada", "times": 1})
    );
    assert_eq!(
        h.invoke("greet", json!({"name": "ada", "excited": true}))
            .unwrap(),
        json!({"greeting": "hello, ada!", "times": 2})
    );
    assert_eq!(
        h.invoke("greet", json!({"name": "bob"})).unwrap()["times"],
        1
    );
    assert_eq!(counts(&h), json!({"ada": 2, "bob": 1}));
    assert_eq!(
        steps(&h),
        [
            Step::InputSchema,
            Step::ValidatePre,
            Step::Invoke,
            Step::OutputSchema,
            Step::ValidatePost
        ]
    );
    assert_eq!(
        h.logs(),
        [
            (Level::Info, "greeting ada (time 1)".to_string()),
            (Level::Info, "greeting ada (time 2)".to_string()),
            (Level::Info, "greeting bob (time 1)".to_string()),
        ]
    );
    assert_eq!(h.invoke("times", json!({"name": "ada"})).unwrap(), 2);
    assert_eq!(h.invoke("times", json!({"name": "eve"})).unwrap(), 0);
}

#[test]
fn a_blank_name_is_refused_before_anything_is_counted() {
    let mut h = Harness::new(hello_rust::plugin()).grant_kv();
    let error = h.invoke("greet", json!({"name": " "})).unwrap_err();
    assert_eq!(error, ToolError::invalid_input("`name` is blank"));
    assert_eq!(steps(&h), [Step::InputSchema, Step::ValidatePre]);
    assert_eq!(counts(&h), json!({}));
}

#[test]
fn a_too_long_greeting_is_refused_and_its_count_rolled_back() {
    let mut h = Harness::new(hello_rust::plugin())
        .kv_entry(hello_rust::COUNTS, r#"{"ada lovelace": 1}"#)
        .config(json!({"max_length": 10}));
    let error = h
        .invoke("greet", json!({"name": "ada lovelace"}))
        .unwrap_err();
    assert_eq!(
        error,
        ToolError::failed("the greeting is longer than max_length (10)")
    );
    assert_eq!(
        steps(&h),
        [
            Step::InputSchema,
            Step::ValidatePre,
            Step::Invoke,
            Step::OutputSchema,
            Step::ValidatePost,
            Step::Rollback
        ]
    );
    assert_eq!(
        counts(&h),
        json!({"ada lovelace": 1}),
        "back to where it was"
    );
}

#[test]
fn unknown_properties_are_refused_by_the_schema() {
    let mut h = Harness::new(hello_rust::plugin()).grant_kv();
    let error = h
        .invoke("greet", json!({"name": "ada", "shout": true}))
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input");
    assert!(
        error.message().contains("'shout' was unexpected"),
        "{error}"
    );
    assert_eq!(counts(&h), json!({}));
}

#[test]
fn without_the_kv_grant_the_call_is_denied() {
    let mut h = Harness::new(hello_rust::plugin());
    let error = h.invoke("greet", json!({"name": "ada"})).unwrap_err();
    assert_eq!(error.kind(), "denied");
    assert!(
        error.message().starts_with("kv.get `greetings`: denied"),
        "{error}"
    );
    assert!(h.logs().is_empty());
}

#[test]
fn schemas_and_steps_are_what_the_host_will_see() {
    let plugin = hello_rust::plugin();
    assert_eq!(plugin.check(), Ok(()));
    let h = Harness::new(plugin);
    let greet = h.descriptor("greet").unwrap();
    assert_eq!(greet.input_schema["required"], json!(["name"]));
    assert_eq!(greet.input_schema["additionalProperties"], false);
    assert_eq!(
        greet.input_schema["properties"]["name"]["description"],
        "Who to greet."
    );
    assert_eq!(
        greet.output_schema.unwrap()["required"],
        json!(["greeting", "times"])
    );
    assert_eq!(
        greet.steps,
        Steps {
            validate_pre: true,
            validate_post: true,
            rollback: true
        }
    );
    let times = h.descriptor("times").unwrap();
    assert_eq!(times.steps, Steps::default());
    assert_eq!(times.output_schema.unwrap()["type"], "integer");
}

/// Every tool has an `[actions.<tool>]` entry in plugin.toml, and nothing else does.
#[test]
fn the_manifest_describes_each_tool() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/plugin.toml")).unwrap();
    let actions: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("[actions.")?.strip_suffix(']'))
        .collect();
    let tools: Vec<String> = hello_rust::plugin()
        .descriptors()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(actions, tools);
}
