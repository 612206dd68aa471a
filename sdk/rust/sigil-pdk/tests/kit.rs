//! The kit's behaviour, through the harness and through a host of the test's own: schemas,
//! input decoding, error mapping, pipeline steps and their order, host calls and their denials.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use sigil_pdk::prelude::*;
use sigil_pdk::testing::{Harness, Step, secret_placeholder};
use sigil_pdk::{CallInfo, Host, Plugin, PluginError, Steps};

/// Who to greet.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GreetIn {
    /// The name to greet.
    name: String,
    /// End with an exclamation mark.
    #[serde(default)]
    excited: bool,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
struct GreetOut {
    greeting: String,
    count: u64,
}

fn greet(ctx: &mut Ctx, input: GreetIn) -> Result<GreetOut, ToolError> {
    let count = ctx.kv_get_json::<u64>("count")?.unwrap_or(0) + 1;
    ctx.kv_set_json("count", &count)?;
    ctx.info(format!("greeting {}", input.name));
    let max = ctx.config()["max"].as_u64().unwrap_or(100);
    let mut greeting = format!(
        "hello, {}{}",
        input.name,
        if input.excited { "!" } else { "" }
    );
    greeting.truncate(usize::try_from(max).unwrap());
    Ok(GreetOut { greeting, count })
}

fn not_blank(ctx: &mut Ctx, input: &GreetIn) -> Result<(), ToolError> {
    ctx.debug("validate-pre");
    if input.name.trim().is_empty() {
        return Err(ToolError::invalid_input("`name` is blank"));
    }
    Ok(())
}

fn not_shouting(_: &mut Ctx, input: &GreetIn, output: &GreetOut) -> Result<(), ToolError> {
    if input.name == "EVE" || output.greeting.len() < 8 {
        return Err(ToolError::failed("refused after the fact"));
    }
    Ok(())
}

fn uncount(ctx: &mut Ctx, input: &GreetIn, output: Option<&GreetOut>) -> Result<(), ToolError> {
    ctx.warn(format!(
        "rolling back {} (output: {})",
        input.name,
        output.map_or("none".to_string(), |o| o.greeting.clone())
    ));
    if input.name == "mallory" {
        return Err(ToolError::failed("cannot undo"));
    }
    let count = ctx.kv_get_json::<u64>("count")?.unwrap_or(0);
    ctx.kv_set_json("count", &count.saturating_sub(1))?;
    Ok(())
}

/// Fails after writing, so rollback has something to undo.
fn greet_then_fail(ctx: &mut Ctx, input: GreetIn) -> Result<GreetOut, ToolError> {
    greet(ctx, input)?;
    Err(ToolError::failed("the greeting service is down"))
}

/// An output whose value breaks its own schema (`maximum: 10`).
#[derive(Serialize, Deserialize, JsonSchema)]
struct Small {
    #[schemars(range(max = 10))]
    n: u32,
}

fn too_big(ctx: &mut Ctx, _: GreetIn) -> Result<Small, ToolError> {
    ctx.kv_set("touched", "yes")?;
    Ok(Small { n: 11 })
}

fn untouch(ctx: &mut Ctx, _: &GreetIn, output: Option<&Small>) -> Result<(), ToolError> {
    ctx.warn(format!("undoing n = {:?}", output.map(|o| o.n)));
    Ok(ctx.kv_delete("touched")?)
}

#[derive(Deserialize, JsonSchema)]
struct SecretIn {
    secret: String,
}

fn use_secret(ctx: &mut Ctx, input: SecretIn) -> Result<String, ToolError> {
    Ok(format!("Bearer {}", ctx.secret_ref(&input.secret)?))
}

#[derive(Deserialize, JsonSchema)]
struct Empty {}

fn whoami(ctx: &mut Ctx, _: Empty) -> Result<Value, ToolError> {
    let call = ctx.call().clone();
    Ok(
        json!({"call": call.call_id, "tool": call.tool, "user": call.user, "workspace": call.workspace}),
    )
}

#[derive(Deserialize, Serialize, JsonSchema)]
struct Settings {
    units: String,
}

fn settings(ctx: &mut Ctx, _: Empty) -> Result<Settings, ToolError> {
    ctx.config_as()
}

sigil_pdk::plugin![
    Tool::new("greet", "Greets someone.", greet)
        .validate_pre(not_blank)
        .validate_post(not_shouting)
        .rollback(uncount),
    Tool::new("plain", "Greets, with no steps.", greet),
    Tool::new("flaky", "Greets, then fails.", greet_then_fail).rollback(uncount),
    Tool::new("too_big", "Returns what its schema refuses.", too_big).rollback(untouch),
    Tool::new("secret", "Uses a secret.", use_secret),
    Tool::new("whoami", "Says who is calling.", whoami),
    Tool::new("settings", "Reads the configuration.", settings),
];

fn steps(h: &Harness) -> Vec<(Step, Option<&'static str>)> {
    h.trace()
        .iter()
        .map(|(s, r)| (*s, r.as_ref().err().map(ToolError::kind)))
        .collect()
}

#[test]
fn schemas_are_derived_from_the_types() {
    let h = Harness::new(plugin());
    let greet = h.descriptor("greet").unwrap();
    assert_eq!(greet.description, "Greets someone.");
    let input = &greet.input_schema;
    assert_eq!(
        input["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(input["type"], "object");
    assert_eq!(input["description"], "Who to greet.");
    assert_eq!(input["properties"]["name"]["type"], "string");
    assert_eq!(
        input["properties"]["name"]["description"],
        "The name to greet."
    );
    assert_eq!(input["properties"]["excited"]["type"], "boolean");
    assert_eq!(input["required"], json!(["name"]));
    assert_eq!(input["additionalProperties"], false);
    let output = greet.output_schema.as_ref().unwrap();
    assert_eq!(output["properties"]["count"]["type"], "integer");
    assert_eq!(output["required"], json!(["greeting", "count"]));
    let small = h.descriptor("too_big").unwrap().output_schema.unwrap();
    assert_eq!(small["properties"]["n"]["maximum"], 10);
}

#[test]
fn steps_flags_follow_the_steps_given() {
    let h = Harness::new(plugin());
    let flags = |tool: &str| h.descriptor(tool).unwrap().steps;
    assert_eq!(
        flags("greet"),
        Steps {
            validate_pre: true,
            validate_post: true,
            rollback: true
        }
    );
    assert_eq!(flags("plain"), Steps::default());
    assert_eq!(
        flags("flaky"),
        Steps {
            validate_pre: false,
            validate_post: false,
            rollback: true
        }
    );
    let names: Vec<String> = h.descriptors().into_iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "greet", "plain", "flaky", "too_big", "secret", "whoami", "settings"
        ]
    );
}

#[test]
fn a_call_runs_every_step_in_the_hosts_order() {
    let mut h = Harness::new(plugin()).grant_kv();
    let out = h
        .invoke("greet", json!({"name": "ada", "excited": true}))
        .unwrap();
    assert_eq!(out, json!({"greeting": "hello, ada!", "count": 1}));
    assert_eq!(
        steps(&h),
        [
            (Step::InputSchema, None),
            (Step::ValidatePre, None),
            (Step::Invoke, None),
            (Step::OutputSchema, None),
            (Step::ValidatePost, None),
        ]
    );
    let out = h.invoke("greet", json!({"name": "bob"})).unwrap();
    assert_eq!(out["count"], 2);
    assert_eq!(h.kv("count"), Some(&b"2"[..]));
    assert_eq!(
        h.logs(),
        [
            (Level::Debug, "validate-pre".to_string()),
            (Level::Info, "greeting ada".to_string()),
            (Level::Debug, "validate-pre".to_string()),
            (Level::Info, "greeting bob".to_string()),
        ]
    );
}

#[test]
fn the_input_schema_refuses_before_any_step_runs() {
    let mut h = Harness::new(plugin()).grant_kv();
    let cases = [
        (
            json!({"name": 5}),
            "at `/name`: 5 is not of type \"string\"",
        ),
        (json!({}), "\"name\" is a required property"),
        (
            json!({"name": "ada", "shout": true}),
            "Additional properties are not allowed ('shout' was unexpected)",
        ),
    ];
    for (input, expected) in cases {
        let error = h.invoke("greet", input.clone()).unwrap_err();
        assert_eq!(error.kind(), "invalid-input", "{input}");
        assert!(
            error
                .message()
                .starts_with("input does not match the schema of `greet`: ")
                && error.message().contains(expected),
            "{input}: {error}"
        );
        assert_eq!(steps(&h), [(Step::InputSchema, Some("invalid-input"))]);
    }
    assert!(h.logs().is_empty() && h.kv("count").is_none());

    let error = h.invoke_json("greet", "{not json").unwrap_err();
    assert!(
        error
            .message()
            .starts_with("input of `greet` is not JSON: "),
        "{error}"
    );
}

#[test]
fn input_the_type_refuses_is_invalid_input_from_the_dispatch_itself() {
    // What a host that skipped the schema would get: the kit decodes before the tool runs.
    let mut host = Recorder::default();
    let call = CallInfo::new("c1", "plain");
    let error = plugin()
        .invoke(&mut host, &call, r#"{"excited": true}"#)
        .unwrap_err();
    assert_eq!(
        error,
        ToolError::invalid_input(
            "input of `plain` does not fit: missing field `name` at line 1 column 17"
        )
    );
    assert!(
        host.calls.is_empty(),
        "the tool never ran: {:?}",
        host.calls
    );
}

#[test]
fn validate_pre_refuses_and_the_tool_never_runs() {
    let mut h = Harness::new(plugin()).grant_kv();
    let error = h.invoke("greet", json!({"name": "  "})).unwrap_err();
    assert_eq!(error, ToolError::invalid_input("`name` is blank"));
    assert_eq!(
        steps(&h),
        [
            (Step::InputSchema, None),
            (Step::ValidatePre, Some("invalid-input"))
        ]
    );
    assert_eq!(h.kv("count"), None);
}

#[test]
fn a_failed_invocation_is_rolled_back_without_an_output() {
    let mut h = Harness::new(plugin()).kv_entry("count", "4");
    let error = h.invoke("flaky", json!({"name": "ada"})).unwrap_err();
    assert_eq!(error, ToolError::failed("the greeting service is down"));
    assert_eq!(
        steps(&h),
        [
            (Step::InputSchema, None),
            (Step::Invoke, Some("failed")),
            (Step::Rollback, None)
        ]
    );
    assert_eq!(h.kv("count"), Some(&b"4"[..]), "the write was undone");
    assert_eq!(
        h.logs().last().unwrap(),
        &(Level::Warn, "rolling back ada (output: none)".to_string())
    );
}

#[test]
fn validate_post_refuses_and_rollback_sees_the_refused_output() {
    let mut h = Harness::new(plugin()).grant_kv();
    let error = h.invoke("greet", json!({"name": "EVE"})).unwrap_err();
    assert_eq!(error, ToolError::failed("refused after the fact"));
    assert_eq!(
        steps(&h),
        [
            (Step::InputSchema, None),
            (Step::ValidatePre, None),
            (Step::Invoke, None),
            (Step::OutputSchema, None),
            (Step::ValidatePost, Some("failed")),
            (Step::Rollback, None),
        ]
    );
    assert_eq!(h.kv("count"), Some(&b"0"[..]));
    assert_eq!(
        h.logs().last().unwrap(),
        &(
            Level::Warn,
            "rolling back EVE (output: hello, EVE)".to_string()
        )
    );
}

#[test]
fn an_output_its_schema_refuses_fails_the_call_and_is_rolled_back() {
    let mut h = Harness::new(plugin()).grant_kv();
    let error = h.invoke("too_big", json!({"name": "ada"})).unwrap_err();
    assert_eq!(error.kind(), "failed");
    assert!(
        error
            .message()
            .starts_with("output does not match the output schema of `too_big`: at `/n`: 11 is greater than the maximum of 10"),
        "{error}"
    );
    assert_eq!(
        steps(&h),
        [
            (Step::InputSchema, None),
            (Step::Invoke, None),
            (Step::OutputSchema, Some("failed")),
            (Step::Rollback, None),
        ]
    );
    assert_eq!(h.kv("touched"), None, "rollback deleted it");
    assert_eq!(
        h.logs(),
        [(Level::Warn, "undoing n = Some(11)".to_string())]
    );
}

#[test]
fn a_failed_rollback_is_noted_on_the_calls_own_error() {
    let mut h = Harness::new(plugin()).grant_kv();
    let error = h.invoke("flaky", json!({"name": "mallory"})).unwrap_err();
    assert_eq!(
        error,
        ToolError::failed("the greeting service is down; rollback failed too: failed: cannot undo")
    );
    assert_eq!(steps(&h).last().unwrap(), &(Step::Rollback, Some("failed")));
}

#[test]
fn key_value_access_is_denied_unless_granted() {
    let mut h = Harness::new(plugin());
    let error = h.invoke("plain", json!({"name": "ada"})).unwrap_err();
    assert_eq!(error.kind(), "denied");
    assert_eq!(
        error.message(),
        "kv.get `count`: denied `kv.read:count`: the harness grants no key-value access \
         (use `Harness::grant_kv` or `Harness::kv_entry`)"
    );
    assert!(h.logs().is_empty());
}

#[test]
fn a_stored_value_that_is_not_the_expected_json_fails_the_tool() {
    let mut h = Harness::new(plugin()).kv_entry("count", "many");
    let error = h.invoke("plain", json!({"name": "ada"})).unwrap_err();
    assert_eq!(error.kind(), "failed");
    assert!(
        error
            .message()
            .starts_with("kv value `count` is not the JSON expected: "),
        "{error}"
    );
}

#[test]
fn secrets_are_placeholders_and_only_when_granted() {
    let mut h = Harness::new(plugin()).grant_secret("token");
    let out = h.invoke("secret", json!({"secret": "token"})).unwrap();
    assert_eq!(
        out,
        json!(format!("Bearer {}", secret_placeholder("token")))
    );
    assert_eq!(out, json!("Bearer <sigil-secret:token>"));

    let error = h.invoke("secret", json!({"secret": "other"})).unwrap_err();
    assert_eq!(
        error,
        ToolError::denied(
            "secret `other`: denied `secret.use:other`: the harness grants no such secret \
             (use `Harness::grant_secret`)"
        )
    );
}

#[test]
fn configuration_is_what_the_operator_set() {
    let mut h = Harness::new(plugin()).grant_kv().config(json!({"max": 5}));
    let out = h.invoke("plain", json!({"name": "ada"})).unwrap();
    assert_eq!(out["greeting"], "hello");

    let mut h = Harness::new(plugin()).config(json!({"units": "metric"}));
    assert_eq!(
        h.invoke("settings", json!({})).unwrap(),
        json!({"units": "metric"})
    );
    let mut h = Harness::new(plugin());
    let error = h.invoke("settings", json!({})).unwrap_err();
    assert_eq!(
        error,
        ToolError::failed("plugin configuration does not fit: missing field `units`")
    );
}

#[test]
fn the_call_names_its_id_tool_user_and_workspace() {
    let mut h = Harness::new(plugin()).user("ada").workspace("lab");
    let first = h.invoke("whoami", json!({})).unwrap();
    assert_eq!(
        first,
        json!({"call": "test-1", "tool": "whoami", "user": "ada", "workspace": "lab"})
    );
    let second = h.invoke("whoami", json!({})).unwrap();
    assert_eq!(second["call"], "test-2");
}

#[test]
fn an_unknown_tool_fails_naming_the_tools_there_are() {
    let mut h = Harness::new(plugin());
    let error = h.invoke("nope", json!({})).unwrap_err();
    assert_eq!(error.kind(), "failed");
    assert_eq!(
        error.message(),
        "no tool `nope` in this plugin (it has `greet`, `plain`, `flaky`, `too_big`, `secret`, `whoami`, `settings`)"
    );
    let direct = plugin()
        .invoke(&mut Recorder::default(), &CallInfo::new("c", "nope"), "{}")
        .unwrap_err();
    assert_eq!(direct, error);
}

#[test]
fn a_definition_the_host_would_refuse_is_reported_by_check_and_the_harness() {
    assert_eq!(plugin().check(), Ok(()));
    let bad = Plugin::new()
        .tool(Tool::new("Greet", "", greet))
        .tool(Tool::new("twice", "", greet))
        .tool(Tool::new("twice", "", greet));
    assert_eq!(
        bad.check(),
        Err(vec![
            PluginError::BadName("Greet".into()),
            PluginError::Duplicate("twice".into())
        ])
    );
    assert_eq!(Plugin::new().check(), Err(vec![PluginError::NoTools]));
    let error = Harness::new(bad)
        .grant_kv()
        .invoke("twice", json!({"name": "ada"}))
        .unwrap_err();
    assert_eq!(
        error,
        ToolError::failed(
            "the plugin would not load: tool name `Greet` is not lowercase letters, digits, `_` and `-`; two tools are named `twice`"
        )
    );
}

/// A host of the test's own: records calls; kv writes fail the way a full store does.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
}

impl Host for Recorder {
    fn log(&mut self, level: Level, message: &str) {
        self.calls.push(format!("log {level} {message}"));
    }
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.calls.push(format!("kv.get {key}"));
        Ok(None)
    }
    fn kv_set(&mut self, key: &str, _: &[u8]) -> Result<(), String> {
        self.calls.push(format!("kv.set {key}"));
        Err("value of 9 bytes is over the 8-byte limit".into())
    }
    fn kv_delete(&mut self, key: &str) -> Result<(), String> {
        self.calls.push(format!("kv.delete {key}"));
        Ok(())
    }
    fn config(&mut self) -> String {
        "{}".into()
    }
    fn secret_reference(&mut self, name: &str) -> Result<String, String> {
        Err(format!("denied `secret.use:{name}`: no grant"))
    }
}

#[test]
fn a_host_failure_that_is_not_a_denial_fails_the_tool() {
    let mut host = Recorder::default();
    let error = plugin()
        .invoke(
            &mut host,
            &CallInfo::new("c1", "plain"),
            r#"{"name":"ada"}"#,
        )
        .unwrap_err();
    assert_eq!(
        error,
        ToolError::failed("kv.set `count`: value of 9 bytes is over the 8-byte limit")
    );
    assert_eq!(host.calls, ["kv.get count", "kv.set count"]);

    let error = plugin()
        .invoke(
            &mut host,
            &CallInfo::new("c2", "secret"),
            r#"{"secret":"t"}"#,
        )
        .unwrap_err();
    assert_eq!(
        error,
        ToolError::denied("secret `t`: denied `secret.use:t`: no grant")
    );
}

#[test]
fn steps_run_directly_on_any_host_and_succeed_when_absent() {
    let p = plugin();
    let mut host = Recorder::default();
    let call = CallInfo::new("c1", "plain");
    assert_eq!(p.validate_pre(&mut host, &call, "{}"), Ok(()));
    assert_eq!(p.validate_post(&mut host, &call, "{}", "{}"), Ok(()));
    assert_eq!(p.rollback(&mut host, &call, "{}", None), Ok(()));
    let call = CallInfo::new("c2", "greet");
    assert_eq!(
        p.validate_pre(&mut host, &call, r#"{"name":""}"#),
        Err(ToolError::invalid_input("`name` is blank"))
    );
    assert_eq!(
        p.validate_post(&mut host, &call, r#"{"name":"ada"}"#, r#"{"greeting":1}"#),
        Err(ToolError::failed(
            "output of `greet` does not decode: invalid type: integer `1`, expected a string at line 1 column 13"
        ))
    );
    assert_eq!(host.calls, ["log debug validate-pre"]);
}
