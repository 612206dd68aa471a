//! Unit tests for {{name}}, run natively by `cargo test`: no component is built.

use serde_json::json;
use sigil_pdk::Level;
use sigil_pdk::testing::Harness;

#[test]
fn greet() {
    let mut h = Harness::new({{crate}}::plugin());
    assert_eq!(
        h.invoke("greet", json!({"name": "ada"})),
        Ok(json!({"greeting": "hello, ada"}))
    );
    assert_eq!(
        h.invoke("greet", json!({"name": "ada", "excited": true})),
        Ok(json!({"greeting": "hello, ada!"}))
    );
    assert_eq!(
        h.logs(),
        [
            (Level::Info, "greeting ada".to_string()),
            (Level::Info, "greeting ada".to_string())
        ]
    );
}

#[test]
fn greet_refuses_a_blank_name() {
    let error = Harness::new({{crate}}::plugin())
        .invoke("greet", json!({"name": "  "}))
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input");
    assert_eq!(error.message(), "`name` is blank");
}

#[test]
fn input_is_checked_against_the_schema() {
    let error = Harness::new({{crate}}::plugin())
        .invoke("greet", json!({"name": "ada", "shout": true}))
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input");
    assert!(error.message().contains("'shout' was unexpected"), "{error}");
}

#[test]
fn the_plugin_would_load() {
    assert_eq!({{crate}}::plugin().check(), Ok(()));
}
