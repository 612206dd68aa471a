//! Reloading a process plugin while it is called: the new generation takes new calls, the old
//! one finishes the calls it has (within its drain timeout) and stops, and a new generation
//! that cannot start leaves the old one serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sigil_runtime::{ControlError, State};

use common::{Setup, World};

fn echo_world(drain_ms: u64) -> World {
    let binaries = common::binaries();
    let lifecycle = format!("[lifecycle]\ndrain_timeout_ms = {drain_ms}\n");
    common::open(&Setup {
        manifest: &lifecycle,
        ..Setup::new("reloading", &binaries.hostile)
    })
}

fn instance(w: &World) -> String {
    w.ok("instance", json!({}))["instance"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn ten_reloads_under_load_fail_no_call_and_calls_in_flight_finish_on_the_old_generation() {
    let w = Arc::new(echo_world(10_000));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let caller = {
        let (w, stop, calls, failures) = (w.clone(), stop.clone(), calls.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                match w.call("echo", json!({ "n": n })) {
                    Ok(out) if out == json!({ "n": n }) => {}
                    Ok(out) => failures.lock().unwrap().push(format!("call {n}: {out}")),
                    Err(error) => failures.lock().unwrap().push(format!("call {n}: {error}")),
                }
                calls.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    let mut generations = vec![instance(&w)];
    for round in 0..10 {
        // A call that is inside the current generation when it is replaced.
        let before = generations.last().unwrap().clone();
        let slow = {
            let w = w.clone();
            std::thread::spawn(move || w.call("slow_instance", json!({ "ms": 400 })))
        };
        std::thread::sleep(Duration::from_millis(100));
        let summary = w.sigil.reload(&w.id).unwrap();
        assert_eq!(summary.state, State::Running, "round {round}");
        let finished: Value = slow.join().unwrap().unwrap();
        assert_eq!(
            finished["instance"], before,
            "round {round}: the call in flight moved generations"
        );
        let now = instance(&w);
        assert!(
            !generations.contains(&now),
            "round {round}: no new generation"
        );
        generations.push(now);
    }
    stop.store(true, Ordering::SeqCst);
    caller.join().unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(calls.load(Ordering::SeqCst) > 10, "the caller hardly ran");
    assert_eq!(generations.len(), 11);
}

#[test]
fn a_call_outliving_the_drain_timeout_ends_and_the_new_generation_serves() {
    let w = Arc::new(echo_world(300));
    let before = instance(&w);
    let slow = {
        let w = w.clone();
        std::thread::spawn(move || w.call("slow_instance", json!({ "ms": 20_000 })))
    };
    std::thread::sleep(Duration::from_millis(200));
    w.sigil.reload(&w.id).unwrap();
    let error = slow.join().unwrap().unwrap_err().to_string();
    assert!(
        error.contains("replaced and its drain timeout passed"),
        "{error}"
    );
    let after = instance(&w);
    assert_ne!(after, before);
}

#[test]
fn a_new_generation_that_cannot_start_leaves_the_old_one_serving() {
    let w = echo_world(1000);
    let before = instance(&w);
    let dir = w.root.join("home/plugins").join(&w.id);

    // A binary that exits at once.
    let binary = dir.join("plugin");
    let original = std::fs::read(&binary).unwrap();
    std::fs::remove_file(&binary).unwrap();
    std::fs::write(&binary, "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Err(ControlError::LoadFailed { problems, .. }) = w.sigil.reload(&w.id) else {
        panic!("a crashing binary loaded");
    };
    assert!(
        problems.join(" ").contains("exited with status 3"),
        "{problems:?}"
    );
    assert_eq!(instance(&w), before);

    // A manifest that does not validate.
    std::fs::write(&binary, &original).unwrap();
    let manifest = dir.join("plugin.toml");
    let good = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        good.replace("tier = \"process\"", "tier = \"vm\""),
    )
    .unwrap();
    let Err(ControlError::LoadFailed { problems, .. }) = w.sigil.reload(&w.id) else {
        panic!("an invalid manifest loaded");
    };
    assert!(
        problems.join(" ").contains("execution.tier"),
        "{problems:?}"
    );
    assert_eq!(instance(&w), before);
    assert_eq!(
        w.sigil.manager().get(&w.id).unwrap().lifecycle().state(),
        State::Running
    );
}
