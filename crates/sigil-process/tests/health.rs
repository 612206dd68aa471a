//! Health checks: a plugin whose check fails (it answers not serving, or never answers) is
//! ended, the reason is logged and shown, it is restarted, and the next call works.
//!
//! The host checks every `HEALTH_INTERVAL` (5 s) and waits `CONTROL_TIMEOUT` (5 s) for an
//! answer, so each test waits up to about ten seconds for the check to come round; the waits
//! below are bounds against a hang, not assertions on time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sigil_process::RestartPolicy;
use sigil_runtime::State;
use tracing::field::{Field, Visit};
use tracing::span;

use common::{Setup, World};

/// How long to wait for a health check to fail and be acted on before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The fields of every warning or error logged in this process.
#[derive(Default)]
struct Logs {
    events: Mutex<Vec<BTreeMap<String, String>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        if let Ok(mut events) = self.events.lock() {
            events.push(fields);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// The log of this process, captured from the first call on.
fn logs() -> &'static Logs {
    static LOGS: OnceLock<&'static Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Logs = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Forward(logs)).unwrap();
        logs
    })
}

/// A subscriber handing everything to the captured log.
struct Forward(&'static Logs);

impl tracing::Subscriber for Forward {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }
    fn new_span(&self, attributes: &span::Attributes<'_>) -> span::Id {
        self.0.new_span(attributes)
    }
    fn record(&self, id: &span::Id, record: &span::Record<'_>) {
        self.0.record(id, record);
    }
    fn record_follows_from(&self, span: &span::Id, follows: &span::Id) {
        self.0.record_follows_from(span, follows);
    }
    fn event(&self, event: &tracing::Event<'_>) {
        self.0.event(event);
    }
    fn enter(&self, id: &span::Id) {
        self.0.enter(id);
    }
    fn exit(&self, id: &span::Id) {
        self.0.exit(id);
    }
}

/// Waits for the supervisor's warning that `plugin`'s process ended and is being restarted;
/// returns the reason it logged. By then the ended process takes no more calls.
fn restart_logged(plugin: &str) -> String {
    let started = Instant::now();
    loop {
        let found = logs().events.lock().unwrap().iter().find_map(|event| {
            (event.get("message").map(String::as_str) == Some("plugin process ended; restarting")
                && event.get("plugin").map(String::as_str) == Some(plugin))
            .then(|| event.get("reason").cloned().unwrap_or_default())
        });
        if let Some(reason) = found {
            return reason;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no restart of `{plugin}` was logged; logged: {:?}",
            logs().events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hostile(id: &str, policy: RestartPolicy) -> World {
    logs();
    let binaries = common::binaries();
    let mut setup = Setup::new(id, &binaries.hostile);
    setup.policy = policy;
    let w = common::open(&setup);
    w.assert_running();
    w
}

fn instance(w: &World) -> (String, String) {
    let out = w.ok("instance", json!({}));
    let name = |key: &str| out[key].as_str().unwrap_or_default().to_string();
    (name("instance"), name("health"))
}

/// Makes the plugin's health check fail `how`, then checks that it is ended for `reason`,
/// restarted, and serving again.
fn ended_and_restarted(id: &str, how: &str, reason: &str) {
    let w = hostile(id, RestartPolicy::DEFAULT);
    let (before, health) = instance(&w);
    assert_eq!(health, "serving");
    assert!(!before.is_empty());
    let out = w.ok("become_unhealthy", json!({ "how": how }));
    assert_eq!(out["instance"], Value::from(before.clone()));

    let logged = restart_logged(id);
    assert!(logged.contains(reason), "{logged}");

    let (after, health) = instance(&w);
    assert_ne!(after, before, "the unhealthy process is still serving");
    assert_eq!(health, "serving", "the new process starts healthy");
    assert_eq!(w.ok("echo", json!({ "ping": 1 })), json!({ "ping": 1 }));
    let entry = w.sigil.manager().get(id).unwrap();
    assert_eq!(entry.lifecycle().state(), State::Running);
}

#[test]
fn a_plugin_reporting_not_serving_is_ended_and_restarted() {
    ended_and_restarted(
        "notserving",
        "not_serving",
        "reported it is not serving: told to be unhealthy",
    );
}

#[test]
fn a_plugin_whose_health_check_never_answers_is_ended_and_restarted() {
    ended_and_restarted(
        "silent",
        "hang",
        "did not answer its health check within 5 s",
    );
}

#[test]
fn a_plugin_failing_its_health_check_too_often_is_quarantined_and_says_why() {
    let w = hostile(
        "sickly",
        RestartPolicy {
            max_crashes: 1,
            ..RestartPolicy::DEFAULT
        },
    );
    w.ok("become_unhealthy", json!({ "how": "not_serving" }));
    let started = Instant::now();
    let error = loop {
        let summary = w
            .sigil
            .manager()
            .list()
            .into_iter()
            .find(|p| p.id == "sickly")
            .unwrap();
        if let Some(error) = summary.error {
            assert_eq!(summary.state, State::Error);
            break error;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the plugin was never quarantined"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(error.starts_with("quarantined"), "{error}");
    assert!(
        error.contains("reported it is not serving: told to be unhealthy"),
        "{error}"
    );
    let refused = w.error_of("echo", json!({}));
    assert!(refused.contains("quarantined"), "{refused}");
    assert!(refused.contains("told to be unhealthy"), "{refused}");
}
