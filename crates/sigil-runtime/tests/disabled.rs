//! The operator's disables outlive the runtime: recorded in `state/disabled.json`, applied when
//! the data directory is opened again, cleared by enable, reload and remove; a damaged record
//! never stops the runtime from opening.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use sigil_manifest::Tier;
use sigil_runtime::{
    ControlError, Home, InvokeError, LoadRequest, Runtime, State, TierLoader, ToolPlugin,
};

fn open_probe(dir: &Path) -> Runtime {
    let (probe, _) = common::probe();
    common::open(dir, common::CONFIG, vec![probe])
}

fn state(sigil: &Runtime, id: &str) -> State {
    sigil.manager().get(id).unwrap().lifecycle().state()
}

/// The ids recorded in the state file, read as JSON.
fn recorded(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("state").join("disabled.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(value["disabled"].clone()).unwrap()
}

fn echo(sigil: &Runtime) -> Result<sigil_runtime::Invocation, InvokeError> {
    let actor = sigil.local_actor(None, None);
    common::rt().block_on(sigil.invoke(&actor, "probe/echo", json!({ "message": "hi" })))
}

#[test]
fn a_disabled_plugin_stays_stopped_across_a_restart_until_it_is_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let sigil = open_probe(dir.path());
    assert!(sigil.disabled().is_empty());
    assert!(
        !dir.path().join("state/disabled.json").exists(),
        "nothing recorded yet"
    );

    // A reload of a running plugin stops and starts it; it records nothing.
    assert_eq!(sigil.reload("probe").unwrap().state, State::Running);
    assert!(sigil.disabled().is_empty());

    assert_eq!(sigil.disable("probe").unwrap().state, State::Stopped);
    assert_eq!(recorded(dir.path()), ["probe"]);
    sigil.close().unwrap();

    let sigil = open_probe(dir.path());
    assert_eq!(state(&sigil, "probe"), State::Stopped);
    assert_eq!(sigil.manager().get("probe").unwrap().summary().error, None);
    assert!(sigil.disabled().contains("probe"));
    let refused = echo(&sigil);
    assert!(
        matches!(
            refused,
            Err(InvokeError::NotRunning {
                state: State::Stopped,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        sigil.tools().iter().all(|t| t.plugin != "probe"),
        "a disabled plugin lists no tools"
    );
    // Already stopped: a second disable is refused and the record stays.
    assert!(matches!(
        sigil.disable("probe"),
        Err(ControlError::WrongState {
            state: State::Stopped,
            ..
        })
    ));
    assert_eq!(recorded(dir.path()), ["probe"]);

    assert_eq!(sigil.enable("probe").unwrap().state, State::Running);
    assert!(recorded(dir.path()).is_empty());
    sigil.close().unwrap();

    let sigil = open_probe(dir.path());
    assert_eq!(state(&sigil, "probe"), State::Running);
    assert!(echo(&sigil).is_ok());
}

#[test]
fn a_reload_of_a_disabled_plugin_serves_it_again_and_clears_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let sigil = open_probe(dir.path());
    sigil.disable("probe").unwrap();
    sigil.close().unwrap();

    let sigil = open_probe(dir.path());
    assert_eq!(state(&sigil, "probe"), State::Stopped);
    assert_eq!(sigil.reload("probe").unwrap().state, State::Running);
    assert!(recorded(dir.path()).is_empty());
    sigil.close().unwrap();
    assert_eq!(state(&open_probe(dir.path()), "probe"), State::Running);
}

#[test]
fn a_damaged_state_file_is_treated_as_empty_and_replaced_by_the_next_change() {
    for damage in ["{not json", r#"{"disabled": "probe"}"#, "[\"probe\"]", ""] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/disabled.json"), damage).unwrap();

        let sigil = open_probe(dir.path());
        assert_eq!(state(&sigil, "probe"), State::Running, "{damage:?}");
        assert!(sigil.disabled().is_empty(), "{damage:?}");
        assert!(echo(&sigil).is_ok(), "{damage:?}");

        sigil.disable("probe").unwrap();
        assert_eq!(recorded(dir.path()), ["probe"], "{damage:?}");
    }
}

#[test]
fn a_disable_that_cannot_be_recorded_leaves_the_plugin_running() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: it cannot be read, so no change may write over it.
    std::fs::create_dir_all(dir.path().join("state/disabled.json")).unwrap();
    let sigil = open_probe(dir.path());
    assert_eq!(state(&sigil, "probe"), State::Running);

    let error = sigil.disable("probe").unwrap_err();
    let ControlError::StateFile { path, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(path.ends_with("state/disabled.json"), "{error}");
    assert!(error.to_string().contains("disabled.json"), "{error}");
    assert_eq!(state(&sigil, "probe"), State::Running);
    assert!(echo(&sigil).is_ok());
    // The audit log's keys live in `state/` too.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| {
            name != sigil_audit::CHAIN_KEY_FILE && name != sigil_audit::CHECKPOINT_KEY_FILE
        })
        .collect();
    assert_eq!(leftovers, ["disabled.json"], "no temporary file is left");
}

/// A tier that loads every plugin as a probe.
#[derive(Debug)]
struct ProbeTier;

impl TierLoader for ProbeTier {
    fn load(&self, _request: &LoadRequest<'_>) -> Result<Arc<dyn ToolPlugin>, String> {
        Ok(Arc::new(common::Probe::default()))
    }
}

const WEATHER: &str = r#"
id = "weather"
name = "Weather"
version = "1.0.0"
description = "Forecasts."
kinds = ["tool"]
engine = "*"

[execution]
tier = "wasm"
entry = "weather.wasm"
"#;

fn open_weather(dir: &Path) -> Runtime {
    let home: Home = common::home(dir, common::CONFIG);
    Runtime::open_with(home, Vec::new(), vec![(Tier::Wasm, Arc::new(ProbeTier))]).unwrap()
}

#[test]
fn install_over_a_disabled_plugin_keeps_it_disabled_and_remove_clears_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugins").join("weather");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(plugin.join("plugin.toml"), WEATHER).unwrap();

    let sigil = open_weather(dir.path());
    assert_eq!(state(&sigil, "weather"), State::Running);
    sigil.disable("weather").unwrap();
    sigil.close().unwrap();

    let sigil = open_weather(dir.path());
    assert_eq!(state(&sigil, "weather"), State::Stopped);
    // A new generation installed over it is loaded, then stopped, as a restart would do.
    assert_eq!(sigil.add_directory(&plugin).unwrap().state, State::Stopped);
    assert_eq!(recorded(dir.path()), ["weather"]);

    sigil.remove("weather").unwrap();
    assert!(recorded(dir.path()).is_empty());
    assert!(sigil.disabled().is_empty());
    sigil.close().unwrap();

    // The files were left in place: the plugin is discovered again, and runs.
    let sigil = open_weather(dir.path());
    assert_eq!(state(&sigil, "weather"), State::Running);
}

#[test]
fn a_record_for_a_plugin_that_is_not_installed_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/disabled.json"),
        r#"{"disabled": ["weather"]}"#,
    )
    .unwrap();
    let sigil = open_probe(dir.path());
    assert_eq!(state(&sigil, "probe"), State::Running);
    assert!(sigil.disabled().contains("weather"));
    sigil.close().unwrap();

    let plugin = dir.path().join("plugins").join("weather");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(plugin.join("plugin.toml"), WEATHER).unwrap();
    let sigil = open_weather(dir.path());
    assert_eq!(state(&sigil, "weather"), State::Stopped);
}
