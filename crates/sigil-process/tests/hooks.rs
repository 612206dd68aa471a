//! Hooks end to end: hook plugins (`sigil-hook-plugin`) and the tool plugin they watch
//! (`sigil-echo-plugin`) each run in the real sandbox, and every call goes through
//! `Runtime::invoke`. Each test checks the call's result, what the tool did (its kv side
//! effects), and the audit records of each hook's decision.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sigil_audit::{Filter, Record, RecordKind, Verdict};
use sigil_process::RestartPolicy;
use sigil_runtime::{Invocation, InvokeError, KvStore, State};

use common::World;

/// One plugin to install beside the others.
struct Install<'a> {
    id: &'a str,
    binary: &'a Path,
    /// The manifest's `kinds`, and anything after `[execution]` (the `[[hooks]]` tables).
    kinds: &'a str,
    hooks: &'a str,
    /// A Python program (with the Sigil Python kit) to run instead of `binary`.
    python: Option<&'a str>,
}

/// A hook plugin named `id` (its `HOOK_NAME` too) subscribing with the given `[[hooks]]`.
fn hook<'a>(binary: &'a Path, id: &'a str, hooks: &'a str) -> Install<'a> {
    Install {
        id,
        binary,
        kinds: r#"["hook"]"#,
        hooks,
        python: None,
    }
}

/// The echo plugin (tools `echo`, `kv`, `stage`) and the given hook plugins, opened with the
/// process tier. `World::call` calls the echo plugin's tools.
fn world(hooks: &[Install<'_>], policy: RestartPolicy) -> World {
    let binaries = common::binaries();
    let dir = common::world_dir();
    let root = dir.path().canonicalize().unwrap();
    let echo = Install {
        id: "echo",
        binary: &binaries.echo,
        kinds: r#"["tool"]"#,
        hooks: "",
        python: None,
    };
    let mut consent = String::new();
    for plugin in std::iter::once(&echo).chain(hooks) {
        let plugin_dir = root.join("home/plugins").join(plugin.id);
        std::fs::create_dir_all(&plugin_dir).unwrap();
        let execution = match plugin.python {
            Some(program) => {
                std::fs::write(plugin_dir.join("main.py"), program).unwrap();
                "entry = \"main.py\"\ninterpreter = \"python3\"\n\n[execution.limits]\nmemory_mib = 256\nprocesses = 64\n"
            }
            None => {
                if std::fs::hard_link(plugin.binary, plugin_dir.join("plugin")).is_err() {
                    std::fs::copy(plugin.binary, plugin_dir.join("plugin")).unwrap();
                }
                "entry = \"plugin\"\n"
            }
        };
        std::fs::write(
            plugin_dir.join("plugin.toml"),
            format!(
                r#"
id = "{id}"
name = "Fixture {id}"
version = "0.1.0"
description = "A hook test fixture."
kinds = {kinds}
engine = "*"

[capabilities]
request = [{{ capability = "kv.*", reason = "keeps state" }}]

[execution]
tier = "process"
env = {{ HOOK_NAME = "{id}" }}
{execution}
{hooks}
"#,
                id = plugin.id,
                kinds = plugin.kinds,
                hooks = plugin.hooks,
            ),
        )
        .unwrap();
        consent.push_str(&format!(
            "[plugins.{}]\nconsent = [\"kv.*\", \"hook.*\"]\n",
            plugin.id
        ));
    }
    std::fs::write(
        root.join("home/sigil.toml"),
        format!(
            r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

{consent}
"#
        ),
    )
    .unwrap();
    let w = common::open_home(dir, root, "echo", policy);
    for plugin in std::iter::once("echo").chain(hooks.iter().map(|h| h.id)) {
        let entry = w.sigil.manager().get(plugin).unwrap();
        assert_eq!(
            entry.lifecycle().state(),
            State::Running,
            "{plugin}: {:?}",
            entry.lifecycle().error()
        );
    }
    w
}

fn invoke(w: &World, tool: &str, input: Value) -> Result<Invocation, InvokeError> {
    let actor = w.sigil.local_actor(None, None);
    w.rt.block_on(w.sigil.invoke(&actor, &format!("echo/{tool}"), input))
}

/// The value the echo plugin's `kv` tool reads for `key`: proof of whether a call ran.
fn stored(w: &World, key: &str) -> Value {
    w.ok("kv", json!({ "key": key }))["value"].clone()
}

/// Every record a hook plugin has written, oldest first.
fn hook_records(w: &World, plugin: &str) -> Vec<Record> {
    w.records(Filter {
        plugin: Some(plugin.to_string()),
        ..Filter::default()
    })
    .into_iter()
    .filter(|r| {
        r.record
            .capability
            .as_deref()
            .is_some_and(|c| c.starts_with("hook."))
    })
    .collect()
}

/// (capability, decision, rule) of every hook record of one call, in the order written.
fn hook_decisions_of(w: &World, call_id: &str) -> Vec<(String, String, Option<Verdict>, String)> {
    w.records(Filter {
        call_id: Some(call_id.to_string()),
        ..Filter::default()
    })
    .into_iter()
    .filter(|r| {
        r.record
            .capability
            .as_deref()
            .is_some_and(|c| c.starts_with("hook."))
    })
    .map(|r| {
        (
            r.record.plugin.clone().unwrap_or_default(),
            r.record.capability.clone().unwrap_or_default(),
            r.record.decision,
            r.record.rule.clone(),
        )
    })
    .collect()
}

/// The call id of the last outcome record of the echo plugin, and its outcome.
fn last_echo_outcome(w: &World) -> (String, String, String) {
    let records = w.records(Filter {
        plugin: Some("echo".into()),
        kind: Some(RecordKind::Outcome),
        ..Filter::default()
    });
    let last = records.last().unwrap();
    (
        last.record.call_id.clone().unwrap_or_default(),
        common::steps_text(&last.record),
        last.record.outcome.clone().unwrap_or_default(),
    )
}

/// Calls `echo/echo` until it succeeds (a hook plugin restarting denies meanwhile), at most
/// 15 s, and returns the output.
fn once_serving(w: &World, input: Value) -> Value {
    let started = Instant::now();
    loop {
        match w.call("echo", input.clone()) {
            Ok(output) => return output,
            Err(error) if started.elapsed() < Duration::from_secs(15) => {
                assert!(
                    matches!(error, InvokeError::HookDenied { .. }),
                    "unexpected: {error}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("the hook did not serve again within 15 s: {error}"),
        }
    }
}

const BEFORE: &str = r#"
[[hooks]]
event = "before_tool_execute"
"#;

#[test]
fn a_before_hook_veto_stops_the_call_before_the_tool_runs() {
    let binaries = common::binaries();
    let w = world(
        &[hook(&binaries.hook, "guard", BEFORE)],
        RestartPolicy::DEFAULT,
    );
    // A hook plugin with no tools loads, and adds nothing to the tool list.
    assert!(w.sigil.tools().iter().all(|t| t.plugin == "echo"));

    let error = w
        .call(
            "kv",
            json!({ "key": "vetoed", "value": "x", "deny": "guard" }),
        )
        .unwrap_err();
    assert_eq!(
        error,
        InvokeError::HookDenied {
            hook: "guard".into(),
            reason: r#"guard refuses "kv""#.into(),
        }
    );
    let (call_id, steps, outcome) = last_echo_outcome(&w);
    assert!(
        steps.starts_with("before-hooks failed: hook `guard` stopped the call"),
        "{steps}"
    );
    assert!(
        outcome.contains("hook `guard` stopped the call"),
        "{outcome}"
    );
    assert_eq!(
        hook_decisions_of(&w, &call_id),
        vec![(
            "guard".to_string(),
            "hook.before_tool_execute".to_string(),
            Some(Verdict::Deny),
            r#"hook guard: deny: guard refuses "kv""#.to_string()
        )]
    );
    // The tool never ran: the key it would have stored is not there.
    assert_eq!(stored(&w, "vetoed"), Value::Null);

    // Asking for approval makes the call wait for a person; where nobody can decide (a
    // one-off command line), it is refused at once, and the tool does not run.
    w.sigil
        .set_approval_mode(sigil_runtime::ApprovalMode::Refuse);
    let error = w
        .call(
            "kv",
            json!({ "key": "asked", "value": "x", "ask": "guard" }),
        )
        .unwrap_err();
    assert!(
        matches!(
            &error,
            InvokeError::ApprovalDenied { plugin, tool, approval: None, .. }
                if plugin == "echo" && tool == "kv"
        ),
        "{error:?}"
    );
    w.sigil.set_approval_mode(sigil_runtime::ApprovalMode::Wait);
    let (call_id, _, _) = last_echo_outcome(&w);
    let decisions = hook_decisions_of(&w, &call_id);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].2, Some(Verdict::Allow));
    assert_eq!(
        decisions[0].3,
        "hook guard: asks for a person's approval: guard wants a human to look"
    );
    assert_eq!(stored(&w, "asked"), Value::Null);

    // Input the hook does not object to passes, and the allow is recorded once.
    let done = invoke(&w, "kv", json!({ "key": "fine", "value": "yes" })).unwrap();
    assert_eq!(done.output, json!({ "set": "fine" }));
    assert_eq!(
        hook_decisions_of(&w, &done.call_id),
        vec![(
            "guard".to_string(),
            "hook.before_tool_execute".to_string(),
            Some(Verdict::Allow),
            "hook guard: allow".to_string()
        )]
    );
    assert_eq!(stored(&w, "fine"), "yes");

    // A reloaded hook plugin keeps its place: the new generation decides the next call.
    w.sigil.reload("guard").unwrap();
    let error = w
        .call(
            "kv",
            json!({ "key": "reloaded", "value": "x", "deny": "guard" }),
        )
        .unwrap_err();
    assert!(
        matches!(&error, InvokeError::HookDenied { hook, .. } if hook == "guard"),
        "{error}"
    );
    assert_eq!(stored(&w, "reloaded"), Value::Null);
}

#[test]
fn a_patch_reaches_the_tool_and_a_patch_breaking_the_schema_is_rejected() {
    let binaries = common::binaries();
    let w = world(
        &[hook(&binaries.hook, "patcher", BEFORE)],
        RestartPolicy::DEFAULT,
    );
    // The echo tool returns what it received: the patched input.
    let done = invoke(&w, "echo", json!({ "trail": [], "n": 1 })).unwrap();
    assert_eq!(done.output, json!({ "trail": ["patcher"], "n": 1 }));
    let decisions = hook_decisions_of(&w, &done.call_id);
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].2, Some(Verdict::Allow));
    assert_eq!(decisions[0].3, "hook patcher: patched the input");

    // `stage` requires `fail` to be one of its values; the hook patches it to another.
    let error = w
        .call(
            "stage",
            json!({ "key": "broken", "fail": "none", "break": "patcher" }),
        )
        .unwrap_err();
    let InvokeError::HookDenied { hook, reason } = &error else {
        panic!("expected a hook denial, got {error}");
    };
    assert_eq!(hook, "patcher");
    assert!(
        reason.starts_with(
            "its patch was rejected: the patched input does not match the input schema of `echo/stage`"
        ) && reason.contains("/fail"),
        "{reason}"
    );
    let (call_id, steps, _) = last_echo_outcome(&w);
    assert!(
        steps.starts_with("before-hooks failed: hook `patcher` stopped the call"),
        "{steps}"
    );
    let decisions = hook_decisions_of(&w, &call_id);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].2, Some(Verdict::Deny));
    assert!(
        decisions[0].3.starts_with("hook patcher: patch rejected: "),
        "{}",
        decisions[0].3
    );
    // `stage` stores its key when it runs: it did not.
    assert_eq!(stored(&w, "broken"), Value::Null);
    // Unpatched, the same tool runs.
    assert_eq!(
        w.ok("stage", json!({ "key": "whole", "fail": "none" })),
        json!({ "stored": "whole" })
    );
}

#[test]
fn hooks_run_in_priority_order_whatever_the_load_order() {
    let binaries = common::binaries();
    // Loaded in directory order (alpha, beta, gamma); run lower priority first, ties by id.
    let w = world(
        &[
            hook(
                &binaries.hook,
                "alpha",
                "[[hooks]]\nevent = \"before_tool_execute\"\npriority = 10\n",
            ),
            hook(
                &binaries.hook,
                "beta",
                "[[hooks]]\nevent = \"before_tool_execute\"\npriority = -5\n",
            ),
            hook(
                &binaries.hook,
                "gamma",
                "[[hooks]]\nevent = \"before_tool_execute\"\npriority = 10\n",
            ),
        ],
        RestartPolicy::DEFAULT,
    );
    let done = invoke(&w, "echo", json!({ "trail": [] })).unwrap();
    // Each hook saw its predecessor's patch and appended to it.
    assert_eq!(done.output, json!({ "trail": ["beta", "alpha", "gamma"] }));
    let order: Vec<String> = hook_decisions_of(&w, &done.call_id)
        .into_iter()
        .map(|(plugin, _, verdict, rule)| {
            assert_eq!(verdict, Some(Verdict::Allow));
            assert_eq!(rule, format!("hook {plugin}: patched the input"));
            plugin
        })
        .collect();
    assert_eq!(order, ["beta", "alpha", "gamma"]);

    // A denial early in the order ends it: later hooks are not asked.
    let error = w
        .call("echo", json!({ "trail": [], "deny": "beta" }))
        .unwrap_err();
    assert!(
        matches!(&error, InvokeError::HookDenied { hook, .. } if hook == "beta"),
        "{error}"
    );
    let (call_id, _, _) = last_echo_outcome(&w);
    let asked: Vec<String> = hook_decisions_of(&w, &call_id)
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(asked, ["beta"]);
}

#[test]
fn a_slow_before_hook_denies_at_its_timeout_and_a_slow_after_hook_changes_nothing() {
    let binaries = common::binaries();
    let w = world(
        &[hook(
            &binaries.hook,
            "slow",
            r#"
[[hooks]]
event = "before_tool_execute"
timeout_ms = 1500

[[hooks]]
event = "after_tool_execute"
timeout_ms = 1500
"#,
        )],
        RestartPolicy::DEFAULT,
    );
    let started = Instant::now();
    let error = w
        .call(
            "kv",
            json!({ "key": "late", "value": "x", "sleep": "slow", "sleep_ms": 8000 }),
        )
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        error,
        InvokeError::HookDenied {
            hook: "slow".into(),
            reason: "timed out after 1500 ms (hooks.timeout_ms)".into(),
        }
    );
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    let (call_id, _, _) = last_echo_outcome(&w);
    assert_eq!(
        hook_decisions_of(&w, &call_id),
        vec![(
            "slow".to_string(),
            "hook.before_tool_execute".to_string(),
            Some(Verdict::Deny),
            "hook slow: timed out after 1500 ms (hooks.timeout_ms)".to_string()
        )]
    );
    assert_eq!(stored(&w, "late").clone(), Value::Null);

    // The hung hook process was ended; once restarted, calls pass again, and the after-hook
    // observed the output (it stores what it saw through its own host call).
    assert_eq!(once_serving(&w, json!({ "n": 1 })), json!({ "n": 1 }));
    let kv = KvStore::open(&w.sigil.home().database_path()).unwrap();
    let seen: Value =
        serde_json::from_slice(&kv.get("slow", "seen").unwrap().expect("the hook stored it"))
            .unwrap();
    assert_eq!(seen["output"], json!({ "n": 1 }));

    // A slow after-hook: the result stands, the hook's failure is recorded.
    let started = Instant::now();
    let done = invoke(&w, "echo", json!({ "sleep_after": "slow", "n": 2 })).unwrap();
    assert_eq!(done.output, json!({ "sleep_after": "slow", "n": 2 }));
    assert!(started.elapsed() < Duration::from_secs(6));
    let records: Vec<Record> = hook_records(&w, "slow")
        .into_iter()
        .filter(|r| r.record.call_id.as_deref() == Some(done.call_id.as_str()))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].record.rule, "hook slow: allow");
    let after = &records[1].record;
    assert_eq!(after.kind, RecordKind::Outcome);
    assert_eq!(after.capability.as_deref(), Some("hook.after_tool_execute"));
    assert_eq!(after.rule, "hook slow: observed after_tool_execute");
    assert_eq!(
        after.outcome.as_deref(),
        Some("error: timed out after 1500 ms (hooks.timeout_ms)")
    );
}

#[test]
fn a_crashing_hook_denies_the_call_restarts_and_is_quarantined() {
    let binaries = common::binaries();
    let policy = RestartPolicy {
        max_crashes: 2,
        window: Duration::from_secs(60),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(50),
    };
    let w = world(&[hook(&binaries.hook, "crashy", BEFORE)], policy);
    let error = w
        .call(
            "kv",
            json!({ "key": "crash1", "value": "x", "crash": "crashy" }),
        )
        .unwrap_err();
    let InvokeError::HookDenied { hook, reason } = &error else {
        panic!("expected a hook denial, got {error}");
    };
    assert_eq!(hook, "crashy");
    assert!(reason.contains("exited with status 3"), "{reason}");
    let (call_id, _, _) = last_echo_outcome(&w);
    let decisions = hook_decisions_of(&w, &call_id);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].2, Some(Verdict::Deny));
    assert!(
        decisions[0].3.starts_with("hook crashy: failed: ")
            && decisions[0].3.contains("exited with status 3"),
        "{}",
        decisions[0].3
    );
    assert_eq!(stored(&w, "crash1"), Value::Null);

    // The host kept serving, and the hook was restarted: calls pass again.
    assert_eq!(once_serving(&w, json!({ "n": 1 })), json!({ "n": 1 }));

    // A second crash within the window quarantines it; a quarantined before-hook denies
    // (fail closed), naming why.
    let error = w
        .call(
            "kv",
            json!({ "key": "crash2", "value": "x", "crash": "crashy" }),
        )
        .unwrap_err();
    assert!(
        matches!(&error, InvokeError::HookDenied { hook, .. } if hook == "crashy"),
        "{error}"
    );
    let error = w.call("echo", json!({ "n": 2 })).unwrap_err();
    let InvokeError::HookDenied { reason, .. } = &error else {
        panic!("expected a hook denial, got {error}");
    };
    assert!(reason.contains("quarantined"), "{reason}");
    let summary = w.sigil.manager().get("crashy").unwrap().summary();
    assert_eq!(summary.state, State::Error);

    // Disabling the hook plugin takes it out of the order; calls pass without it.
    w.sigil.disable("crashy").unwrap();
    let done = invoke(&w, "kv", json!({ "key": "after", "value": "ok" })).unwrap();
    assert_eq!(done.output, json!({ "set": "after" }));
    assert!(hook_decisions_of(&w, &done.call_id).is_empty());
    assert_eq!(stored(&w, "after"), "ok");
}

#[test]
fn observe_only_events_reach_their_subscribers_and_before_events_cannot_be_emitted() {
    let binaries = common::binaries();
    let w = world(
        &[hook(
            &binaries.hook,
            "watcher",
            "[[hooks]]\nevent = \"gateway_start\"\n",
        )],
        RestartPolicy::DEFAULT,
    );
    let actor = w.sigil.local_actor(None, None);
    let emit = |event, payload| w.rt.block_on(w.sigil.emit(event, &actor, payload));

    let error = emit(sigil_runtime::HookEvent::BeforeToolExecute, json!({})).unwrap_err();
    assert_eq!(
        error,
        sigil_runtime::EmitError::BeforeEvent(sigil_runtime::HookEvent::BeforeToolExecute)
    );

    let id = emit(
        sigil_runtime::HookEvent::GatewayStart,
        json!({ "listen": "x" }),
    )
    .unwrap();
    let records = w.records(Filter {
        call_id: Some(id),
        ..Filter::default()
    });
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0].record;
    assert_eq!(record.plugin.as_deref(), Some("watcher"));
    assert_eq!(record.capability.as_deref(), Some("hook.gateway_start"));
    assert_eq!(record.outcome.as_deref(), Some("ok"));

    // An event nobody subscribes to records nothing.
    let id = emit(sigil_runtime::HookEvent::GatewayShutdown, json!({})).unwrap();
    assert!(
        w.records(Filter {
            call_id: Some(id),
            ..Filter::default()
        })
        .is_empty()
    );
    // Tool calls are not hooked by a plugin that subscribes only to `gateway_start`.
    let done = invoke(&w, "echo", json!({ "n": 1 })).unwrap();
    assert!(hook_decisions_of(&w, &done.call_id).is_empty());
}

const PYTHON_GUARD: &str = r#"
from sigil_plugin import Plugin, Verdict

plugin = Plugin()


@plugin.hook
def guard(event, payload, call):
    text = str(payload["input"].get("text", ""))
    if "forbidden" in text:
        return Verdict.deny(f"the python guard refuses {payload['tool']}")
    if text == "shout":
        payload["input"]["text"] = "SHOUT"
        return Verdict.patch(payload)
    return Verdict.allow()


if __name__ == "__main__":
    plugin.serve()
"#;

#[test]
fn a_python_hook_plugin_vetoes_and_patches_from_its_sandbox() {
    let binaries = common::binaries();
    let w = world(
        &[Install {
            python: Some(PYTHON_GUARD),
            ..hook(&binaries.hook, "pyguard", BEFORE)
        }],
        RestartPolicy::DEFAULT,
    );
    let error = w
        .call(
            "kv",
            json!({ "key": "py", "value": "x", "text": "a forbidden word" }),
        )
        .unwrap_err();
    assert_eq!(
        error,
        InvokeError::HookDenied {
            hook: "pyguard".into(),
            reason: "the python guard refuses kv".into(),
        }
    );
    let (call_id, _, _) = last_echo_outcome(&w);
    assert_eq!(
        hook_decisions_of(&w, &call_id),
        vec![(
            "pyguard".to_string(),
            "hook.before_tool_execute".to_string(),
            Some(Verdict::Deny),
            "hook pyguard: deny: the python guard refuses kv".to_string()
        )]
    );
    assert_eq!(stored(&w, "py"), Value::Null);
    assert_eq!(
        w.ok("echo", json!({ "text": "shout" })),
        json!({ "text": "SHOUT" })
    );
}

#[test]
fn a_hook_runs_only_with_the_operators_consent_to_its_event() {
    let binaries = common::binaries();
    let w = world(
        &[hook(&binaries.hook, "guard", BEFORE)],
        RestartPolicy::DEFAULT,
    );
    let vetoed = json!({ "key": "unconsented", "value": "x", "deny": "guard" });
    assert!(matches!(
        w.call("kv", vetoed.clone()),
        Err(InvokeError::HookDenied { .. })
    ));

    // The operator withdraws the consent to `hook.*`: the guard no longer sees calls, so it
    // neither vetoes this one nor records anything for it.
    let config = w.root.join("home/sigil.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[plugins.guard]\nconsent = [\"kv.*\", \"hook.*\"]",
        "[plugins.guard]\nconsent = [\"kv.*\"]",
    );
    std::fs::write(&config, text).unwrap();
    let operator = w.sigil.local_actor(None, None);
    w.sigil.reload_config(&operator).unwrap();
    let done = invoke(&w, "kv", vetoed).unwrap();
    assert_eq!(done.output, json!({ "set": "unconsented" }));
    assert!(hook_decisions_of(&w, &done.call_id).is_empty());
    assert_eq!(stored(&w, "unconsented"), json!("x"));
}
