//! Live configuration: a valid change to `sigil.toml` (by a reload, an update through the
//! runtime, or an edit the file watch sees) reaches a plugin on its next call without reopening
//! the runtime; an invalid one is rejected with the rule it breaks and the old configuration
//! stays; secret fields are stored encrypted and their values appear nowhere but in the
//! plugin's own configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sigil_audit::{Filter, Verdict};
use sigil_runtime::{
    Actor, Builtin, Call, ConfigUpdateError, Event, Home, Runtime, SecretValue, Steps,
    ToolDescriptor, ToolError, ToolPlugin, async_trait,
};

const MANIFEST: &str = r#"
id = "configured"
name = "Configured"
version = "0.1.0"
description = "Returns the configuration it is called with."
kinds = ["tool"]
engine = "*"

[execution]
tier = "builtin"

[config.schema]
type = "object"
additionalProperties = false
required = ["greeting"]

[config.schema.properties.greeting]
type = "string"
minLength = 1

[config.schema.properties.api_key]
type = "string"
pattern = "^sk-"
secret = true
"#;

const CONFIG: &str = r#"
[defaults]
user = "admin"
workspace = "main"

[workspaces.main]
allow = ["*"]

[users.admin]
permissions = ["*"]

# The plugin under test; this comment must survive edits.
[plugins.configured.config]
greeting = "hello"
"#;

const SECRET: &str = "sk-Zq8vTopSecretValue4417";

/// Returns `call.config()`.
#[derive(Debug)]
struct Show;

#[async_trait]
impl ToolPlugin for Show {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![ToolDescriptor {
            name: "show".into(),
            description: "Returns the plugin's configuration.".into(),
            input_schema: json!({ "type": "object" }),
            output_schema: None,
            steps: Steps::default(),
        }]
    }

    async fn invoke(&self, call: &Call, _input: Value) -> Result<Value, ToolError> {
        Ok(call.config())
    }
}

fn open(dir: &Path) -> Runtime {
    let home = Home::resolve(Some(dir)).unwrap();
    Runtime::open(
        home,
        vec![Builtin {
            manifest: MANIFEST,
            plugin: Arc::new(Show),
        }],
    )
    .unwrap()
}

fn setup(config: &str) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sigil.toml"), config).unwrap();
    let sigil = open(dir.path());
    (dir, sigil)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn seen(sigil: &Runtime) -> Value {
    let actor = sigil.local_actor(None, None);
    rt().block_on(sigil.invoke(&actor, "configured/show", json!({})))
        .unwrap()
        .output
}

fn operator() -> Actor {
    Actor {
        user: Some("admin".into()),
        workspace: Some("main".into()),
        session: None,
        channel: Some("test".into()),
    }
}

fn config_records(sigil: &Runtime) -> Vec<(Verdict, String)> {
    sigil
        .audit()
        .query(&Filter::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.record.capability.as_deref() == Some("admin.config"))
        .map(|r| (r.record.decision.unwrap(), r.record.rule))
        .collect()
}

fn drain(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        if !matches!(event, Event::Decision { .. }) {
            out.push(event);
        }
    }
    out
}

#[test]
fn a_valid_change_reaches_the_plugin_on_its_next_call() {
    let (dir, sigil) = setup(CONFIG);
    assert_eq!(seen(&sigil), json!({ "greeting": "hello" }));
    let mut events = sigil.events().subscribe();

    std::fs::write(
        dir.path().join("sigil.toml"),
        CONFIG.replace("\"hello\"", "\"ahoy\""),
    )
    .unwrap();
    let change = sigil.reload_config(&operator()).unwrap();
    assert_eq!(change.plugins, vec!["configured".to_string()]);
    assert!(change.file_changed);
    assert_eq!(seen(&sigil), json!({ "greeting": "ahoy" }));
    assert_eq!(
        drain(&mut events),
        vec![Event::ConfigChanged {
            plugins: vec!["configured".into()]
        }]
    );
    let records = config_records(&sigil);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, Verdict::Allow);
    assert!(
        records[0]
            .1
            .contains("changed the configuration of: configured"),
        "{records:?}"
    );

    // Reading the same file again changes nothing and records nothing.
    let change = sigil.reload_config(&operator()).unwrap();
    assert!(change.plugins.is_empty() && !change.file_changed);
    assert_eq!(config_records(&sigil).len(), 1);
    assert!(drain(&mut events).is_empty());
}

#[test]
fn a_compiled_in_plugin_does_not_start_on_a_configuration_it_does_not_accept() {
    let (_dir, sigil) = setup(&CONFIG.replace("greeting = \"hello\"", "greeting = 7"));
    let entry = sigil.manager().get("configured").unwrap();
    assert_eq!(entry.lifecycle().state(), sigil_runtime::State::Error);
    let error = entry.lifecycle().error().unwrap_or_default();
    assert!(error.contains("/properties/greeting/type"), "{error}");

    // Once its configuration fits, it is loaded again and serves.
    let change = sigil
        .update_plugin_config("configured", json!({ "greeting": "fixed" }), &operator())
        .unwrap();
    assert_eq!(change.plugins, vec!["configured".to_string()]);
    let entry = sigil.manager().get("configured").unwrap();
    assert_eq!(entry.lifecycle().state(), sigil_runtime::State::Running);
    assert_eq!(seen(&sigil), json!({ "greeting": "fixed" }));
}

#[test]
fn a_policy_change_is_in_force_after_a_reload() {
    let (dir, sigil) = setup(CONFIG);
    let actor = sigil.local_actor(None, None);
    assert!(seen(&sigil).is_object());
    std::fs::write(
        dir.path().join("sigil.toml"),
        CONFIG.replace(
            "permissions = [\"*\"]",
            "permissions = [\"*\"]\ndeny = [\"tool.configured.show\"]",
        ),
    )
    .unwrap();
    let change = sigil.reload_config(&operator()).unwrap();
    assert!(change.file_changed && change.plugins.is_empty());
    let denied = rt().block_on(sigil.invoke(&actor, "configured/show", json!({})));
    assert!(
        matches!(denied, Err(sigil_runtime::InvokeError::Denied { .. })),
        "{denied:?}"
    );
}

#[test]
fn an_invalid_change_is_rejected_and_the_old_configuration_stays() {
    let cases: &[(&str, &[&str])] = &[
        (
            "greeting = \"\"",
            &[
                "plugin `configured`",
                "at `/greeting`: breaks the schema's `/properties/greeting/minLength`",
            ],
        ),
        (
            "greeting = \"hi\"\nextra = 1",
            &["at `/`: breaks the schema's `/additionalProperties`"],
        ),
        ("greeting = 3", &["/properties/greeting/type"]),
        ("greeting = \"unterminated", &["line 14, column"]),
        ("[broken", &["sigil.toml: line"]),
    ];
    let (dir, sigil) = setup(CONFIG);
    let mut events = sigil.events().subscribe();
    for (i, (replacement, expected)) in cases.iter().enumerate() {
        std::fs::write(
            dir.path().join("sigil.toml"),
            CONFIG.replace("greeting = \"hello\"", replacement),
        )
        .unwrap();
        let error = sigil.reload_config(&operator()).unwrap_err().to_string();
        assert!(error.contains("sigil.toml"), "{error}");
        for fragment in *expected {
            assert!(
                error.contains(fragment),
                "case {i}: `{fragment}` missing from: {error}"
            );
        }
        assert_eq!(seen(&sigil), json!({ "greeting": "hello" }), "case {i}");
        assert_eq!(
            drain(&mut events),
            vec![Event::ConfigRejected {
                error: error.clone()
            }],
            "case {i}"
        );
        let records = config_records(&sigil);
        assert_eq!(records.len(), i + 1);
        assert_eq!(records[i].0, Verdict::Deny);
        assert!(
            records[i].1.contains("configuration change rejected"),
            "{records:?}"
        );
    }
}

#[test]
fn an_update_is_validated_first_then_written_keeping_comments() {
    let (dir, sigil) = setup(CONFIG);
    let error = sigil
        .update_plugin_config("configured", json!({ "greeting": "" }), &operator())
        .unwrap_err();
    assert!(
        matches!(error, ConfigUpdateError::Invalid { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("/properties/greeting/minLength"),
        "{error}"
    );
    let text = std::fs::read_to_string(dir.path().join("sigil.toml")).unwrap();
    assert_eq!(text, CONFIG, "a refused update wrote the file");
    let records = config_records(&sigil);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, Verdict::Deny);
    assert!(
        records[0].1.contains("/properties/greeting/minLength"),
        "{records:?}"
    );
    assert_eq!(seen(&sigil), json!({ "greeting": "hello" }));

    let change = sigil
        .update_plugin_config("configured", json!({ "greeting": "salut" }), &operator())
        .unwrap();
    assert_eq!(change.plugins, vec!["configured".to_string()]);
    assert_eq!(seen(&sigil), json!({ "greeting": "salut" }));
    let text = std::fs::read_to_string(dir.path().join("sigil.toml")).unwrap();
    assert!(
        text.contains("# The plugin under test; this comment must survive edits."),
        "{text}"
    );
    assert!(text.contains("greeting = \"salut\""), "{text}");
    assert!(text.contains("[users.admin]"), "{text}");
    // What was written is what a fresh start reads.
    drop(sigil);
    assert_eq!(seen(&open(dir.path())), json!({ "greeting": "salut" }));

    let unknown = open(dir.path())
        .update_plugin_config("nope", json!({}), &operator())
        .unwrap_err();
    assert!(
        matches!(unknown, ConfigUpdateError::UnknownPlugin(_)),
        "{unknown}"
    );
}

/// Collects every tracing event of the process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn a_secret_field_reaches_the_plugin_and_appears_nowhere_else() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let (dir, sigil) = setup(CONFIG);
    let root = dir.path();
    let mut leaks: Vec<String> = Vec::new();

    // Not a secret field: refused, naming the ones there are.
    let error = sigil
        .set_plugin_secret(
            "configured",
            "greeting",
            SecretValue::new(SECRET.into()),
            &operator(),
        )
        .unwrap_err();
    assert!(
        matches!(error, ConfigUpdateError::NotSecret { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("api_key"), "{error}");

    // A value the schema refuses is not stored; the error names the rule, not the value.
    let bad = "nope-Zq8vTopSecretBad";
    let error = sigil
        .set_plugin_secret(
            "configured",
            "api_key",
            SecretValue::new(bad.into()),
            &operator(),
        )
        .unwrap_err();
    assert!(
        error.to_string().contains("/properties/api_key/pattern"),
        "{error}"
    );
    assert!(!error.to_string().contains(bad), "{error}");
    assert!(
        !root.join("state/secret.key").exists(),
        "nothing was stored, so no key is needed"
    );

    let change = sigil
        .set_plugin_secret(
            "configured",
            "api_key",
            SecretValue::new(SECRET.into()),
            &operator(),
        )
        .unwrap();
    assert_eq!(change.plugins, vec!["configured".to_string()]);
    assert_eq!(
        seen(&sigil),
        json!({ "greeting": "hello", "api_key": SECRET })
    );
    assert_eq!(
        sigil.plugin_config_redacted("configured").unwrap(),
        json!({ "greeting": "hello", "api_key": "<secret>" })
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("state/secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // An update that sends the marker back keeps the stored value.
    sigil
        .update_plugin_config(
            "configured",
            json!({ "greeting": "hey", "api_key": "<secret>" }),
            &operator(),
        )
        .unwrap();
    assert_eq!(
        seen(&sigil),
        json!({ "greeting": "hey", "api_key": SECRET })
    );

    // A secret written in clear into sigil.toml is refused, without echoing it.
    let clear = "sk-ClearTextInTheFile9";
    let text = std::fs::read_to_string(root.join("sigil.toml")).unwrap();
    std::fs::write(
        root.join("sigil.toml"),
        text.replace(
            "greeting = \"hey\"",
            &format!("greeting = \"hey\"\napi_key = \"{clear}\""),
        ),
    )
    .unwrap();
    let error = sigil.reload_config(&operator()).unwrap_err().to_string();
    assert!(error.contains("sigil plugin secret configured"), "{error}");
    assert!(!error.contains(clear) && !error.contains(SECRET), "{error}");
    assert_eq!(
        seen(&sigil),
        json!({ "greeting": "hey", "api_key": SECRET })
    );
    std::fs::write(root.join("sigil.toml"), &text).unwrap();

    // A change that breaks the schema while the secret is set: the error holds no value.
    std::fs::write(
        root.join("sigil.toml"),
        text.replace("greeting = \"hey\"", "greeting = \"\""),
    )
    .unwrap();
    let error = sigil.reload_config(&operator()).unwrap_err().to_string();
    leaks.extend(contains(error.as_bytes(), SECRET).then(|| format!("reload error: {error}")));
    std::fs::write(root.join("sigil.toml"), &text).unwrap();

    // The value survives a restart: decrypted from the database with the key file.
    let debug = format!("{:?} {:?}", sigil.config(), sigil);
    leaks.extend(contains(debug.as_bytes(), SECRET).then(|| "Debug output".to_string()));
    drop(sigil);
    let sigil = open(root);
    assert_eq!(
        seen(&sigil),
        json!({ "greeting": "hey", "api_key": SECRET })
    );

    let mut export = Vec::new();
    sigil
        .audit()
        .export(&Filter::default(), &mut export)
        .unwrap();
    assert!(
        contains(&export, "admin.config"),
        "the changes were not audited"
    );
    for (what, bytes) in [
        ("audit export", export),
        (
            "sigil.toml",
            std::fs::read(root.join("sigil.toml")).unwrap(),
        ),
        ("sigil.db", std::fs::read(root.join("sigil.db")).unwrap()),
        (
            "sigil.db-wal",
            std::fs::read(root.join("sigil.db-wal")).unwrap_or_default(),
        ),
        ("logs", logs.0.lock().unwrap().clone()),
    ] {
        if contains(&bytes, SECRET) || contains(&bytes, bad) {
            leaks.push(what.to_string());
        }
    }
    assert!(
        contains(&logs.0.lock().unwrap(), "configuration reloaded"),
        "the capture saw no log lines"
    );
    assert!(leaks.is_empty(), "the secret value leaked into: {leaks:?}");
}

#[test]
fn the_file_watch_puts_an_edit_in_force_without_a_restart() {
    let (dir, sigil) = setup(CONFIG);
    let sigil = Arc::new(sigil);
    let _watch = Runtime::watch_config(&sigil).unwrap();
    let mut events = sigil.events().subscribe();
    // Written the way editors do: a new file renamed over the old one.
    let staged = dir.path().join("sigil.toml.new");
    std::fs::write(&staged, CONFIG.replace("\"hello\"", "\"from the editor\"")).unwrap();
    std::fs::rename(&staged, dir.path().join("sigil.toml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen(&sigil) != json!({ "greeting": "from the editor" }) {
        assert!(
            Instant::now() < deadline,
            "the edit never reached the plugin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A broken edit is rejected by the watch too; the plugin keeps the last good one.
    std::fs::write(
        dir.path().join("sigil.toml"),
        CONFIG.replace("\"hello\"", "\"\""),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if drain(&mut events)
            .iter()
            .any(|e| matches!(e, Event::ConfigRejected { error } if error.contains("minLength")))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken edit was never rejected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen(&sigil), json!({ "greeting": "from the editor" }));
    let watched = config_records(&sigil);
    assert_eq!(watched.len(), 2, "{watched:?}");
}
