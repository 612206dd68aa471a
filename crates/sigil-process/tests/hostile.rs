//! A hostile process plugin, one test per attempt. Each attempt is contained (denied and
//! audited where the host sees it), the host survives, and the next call to the same plugin
//! works, after a restart where the attempt cost the plugin its process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use serde_json::{Value, json};
use sigil_audit::{Filter, RecordKind, Verdict};
use sigil_process::RestartPolicy;
use sigil_runtime::State;

use common::{SECRET, Setup, World};

const LIMITS: &str = "timeout_ms = 3000\noutput_bytes = 4096\nmemory_mib = 256\nprocesses = 32";

fn still_works(w: &World) {
    assert_eq!(w.ok("echo", json!({ "ping": 1 })), json!({ "ping": 1 }));
}

/// The hostile plugin, granted `<root>/granted/**` read-only and `<root>/writable/**`
/// read-write, with `extra` requests and consent.
fn hostile_with(extra: &[&str], user_deny: &[&str], env: &str) -> World {
    let binaries = common::binaries();
    let dir = common::world_dir();
    let root = dir.path().canonicalize().unwrap();
    let granted = root.join("granted");
    let writable = root.join("writable");
    std::fs::create_dir_all(granted.join("sub")).unwrap();
    std::fs::create_dir_all(&writable).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(granted.join("note.txt"), "granted note").unwrap();
    std::fs::write(granted.join("sub/inner.txt"), "inner").unwrap();
    std::fs::write(root.join("outside/secret.txt"), "outside secret").unwrap();
    let read = format!("fs.read:{}/**", granted.display());
    let write = format!("fs.write:{}/**", writable.display());
    let mut requests = vec![
        format!(r#"{{ capability = "{read}", reason = "reads its data" }}"#),
        format!(r#"{{ capability = "{write}", reason = "writes its output" }}"#),
    ];
    requests.extend(
        extra
            .iter()
            .map(|c| format!(r#"{{ capability = "{c}", reason = "test" }}"#)),
    );
    let mut consent = vec![read.clone(), write.clone()];
    consent.extend(extra.iter().map(|c| c.to_string()));
    let requests: Vec<&str> = requests.iter().map(String::as_str).collect();
    let consent: Vec<&str> = consent.iter().map(String::as_str).collect();
    let deny: Vec<String> = user_deny
        .iter()
        .map(|d| d.replace("<root>", &root.display().to_string()))
        .collect();
    let deny: Vec<&str> = deny.iter().map(String::as_str).collect();
    let mut setup = Setup::new("hostile", &binaries.hostile);
    setup.requests = &requests;
    setup.consent = &consent;
    setup.limits = LIMITS;
    setup.env = env;
    setup.user_deny = &deny;
    common::open_in(dir, &setup)
}

fn hostile() -> World {
    hostile_with(&[], &[], r#"PLUGIN_MODE = "test""#)
}

#[test]
fn garbage_on_stdout_is_only_logged_never_read_as_protocol() {
    // The garbage includes an HTTP/2 preface; stdout is never parsed, so calls go on.
    let w = hostile();
    for _ in 0..3 {
        assert_eq!(w.ok("garbage", json!({})), json!({ "wrote": "garbage" }));
    }
    still_works(&w);
}

#[test]
fn exiting_mid_call_ends_that_call_clearly_and_the_plugin_restarts() {
    let w = hostile();
    let error = w.error_of("exit", json!({}));
    assert!(
        error.contains("the plugin process exited with status 3 during the call"),
        "{error}"
    );
    let (_, outcome) = w.last_outcome();
    assert!(outcome.contains("exited with status 3"), "{outcome}");
    still_works(&w);
}

#[test]
fn hanging_mid_call_ends_at_the_deadline_and_the_plugin_restarts() {
    let w = hostile();
    let error = w.error_of("hang", json!({}));
    assert!(error.contains("deadline of 3000 ms exceeded"), "{error}");
    assert!(
        w.last_outcome().1.contains("deadline"),
        "{:?}",
        w.last_outcome()
    );
    still_works(&w);
}

#[test]
fn signals_from_inside_never_reach_the_host() {
    let w = hostile();
    // A process of the host's user, outside the sandbox, that kill(-1) would reach if it
    // could.
    let mut bystander = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let _ = w.call("kill_parent", json!({}));
    let _ = w.call("kill_all", json!({}));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a process outside the sandbox was killed"
    );
    // This test process is alive (it is running this line), and so is the plugin or its
    // replacement.
    still_works(&w);
    bystander.kill().unwrap();
    let _ = bystander.wait();
}

#[test]
fn a_direct_tcp_connection_fails() {
    let w = hostile();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let error = w.error_of("connect", json!({ "target": target }));
    assert!(error.contains(&format!("connect {target}")), "{error}");
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's listener"
    );
    still_works(&w);
}

#[test]
fn a_host_not_granted_is_denied_by_the_egress_proxy_and_audited() {
    let w = hostile_with(
        &["net.connect:granted.invalid:80"],
        &[],
        r#"PLUGIN_MODE = "test""#,
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    w.assert_running();
    let out = w.ok(
        "proxy_get",
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
    );
    let reply = out["reply"].as_str().unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(
        w.denials()
            .contains(&format!("net.connect:127.0.0.1:{port}")),
        "{:?}",
        w.denials()
    );
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's listener"
    );
    still_works(&w);
}

#[test]
fn an_egress_attempt_outside_any_call_is_denied_and_audited() {
    // Granted and consented: inside a call this destination would be allowed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let w = hostile_with(
        &[&format!("net.connect:127.0.0.1:{port}")],
        &[],
        r#"PLUGIN_MODE = "test""#,
    );
    let capability = format!("net.connect:127.0.0.1:{port}");
    w.ok(
        "proxy_get_later",
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
    );
    // The attempt comes after the call has ended: no call, no actor to act for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let record = loop {
        let found = w
            .records(Filter {
                decision: Some(Verdict::Deny),
                ..Filter::default()
            })
            .into_iter()
            .find(|r| r.record.capability.as_deref() == Some(capability.as_str()));
        if let Some(record) = found {
            break record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no deny record for {capability}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(record.record.call_id, None, "{record:?}");
    assert_eq!(record.record.plugin.as_deref(), Some(w.id.as_str()));
    assert_eq!(record.record.actor.channel.as_deref(), Some("egress"));
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's listener"
    );
    still_works(&w);
}

#[test]
fn the_host_environment_never_reaches_the_plugin() {
    let w = hostile();
    let out = w.ok("env", json!({}));
    let vars: Vec<String> = serde_json::from_value(out["env"].clone()).unwrap();
    assert!(vars.contains(&"PLUGIN_MODE=test".to_string()), "{vars:?}");
    assert!(vars.contains(&"HOME=/tmp".to_string()), "{vars:?}");
    for (name, value) in std::env::vars() {
        if name == "LANG" || name == "PATH" || name == "HOME" {
            continue;
        }
        assert!(
            !vars.contains(&format!("{name}={value}")),
            "the host's {name} reached the plugin"
        );
    }
    assert!(!vars.iter().any(|v| v.contains(SECRET)));
    still_works(&w);
}

#[test]
fn files_outside_the_grants_cannot_be_read() {
    let w = hostile();
    let granted = w.root.join("granted/note.txt");
    assert_eq!(
        w.ok("read_file", json!({ "path": granted }))["contents"],
        "granted note"
    );
    for path in [
        PathBuf::from("/etc/shadow"),
        w.root.join("outside/secret.txt"),
        w.root.join("granted/../outside/secret.txt"),
        w.root.join("home/sigil.toml"),
        w.root.join("home/sigil.db"),
    ] {
        let error = w.error_of("read_file", json!({ "path": path }));
        assert!(
            error.contains("invoke failed"),
            "{}: {error}",
            path.display()
        );
        assert!(
            !error.contains("outside secret") && !error.contains(SECRET),
            "{error}"
        );
    }
    still_works(&w);
}

#[test]
fn the_hosts_home_is_not_there() {
    let w = hostile();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mine: Vec<String> = std::fs::read_dir(&home)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    match w.call("list_dir", json!({ "path": home })) {
        Err(error) => assert!(error.to_string().contains("invoke failed"), "{error}"),
        Ok(out) => {
            let seen: Vec<String> = serde_json::from_value(out["entries"].clone()).unwrap();
            assert!(
                seen.iter().all(|e| !mine.contains(e)) || mine.is_empty(),
                "the plugin saw the host's home: {seen:?}"
            );
        }
    }
    still_works(&w);
}

#[test]
fn writing_outside_the_write_grant_fails() {
    let w = hostile();
    let ok = w.root.join("writable/out.txt");
    w.ok("write_file", json!({ "path": ok, "text": "fine" }));
    assert_eq!(std::fs::read_to_string(&ok).unwrap(), "fine");
    for path in [
        w.root.join("granted/new.txt"),
        w.root.join("outside/new.txt"),
        PathBuf::from("/etc/sigil-was-here"),
    ] {
        let error = w.error_of("write_file", json!({ "path": path, "text": "x" }));
        assert!(error.contains("invoke failed"), "{error}");
        assert!(!path.exists(), "{} was written", path.display());
    }
    still_works(&w);
}

/// A plugin that can write a mounted directory acts without asking the host, so nothing but the
/// order of events shows whether its call was recorded first: the file it writes must never be
/// seen before the decision that let the call run is durable.
#[test]
fn a_write_to_a_mounted_directory_is_never_seen_before_the_calls_decision_is_durable() {
    let w = hostile();
    let target = w.root.join("writable/early.txt");
    let decisions = || {
        w.records(Filter {
            kind: Some(RecordKind::Decision),
            ..Filter::default()
        })
        .into_iter()
        .filter(|r| r.record.capability.as_deref() == Some("tool.hostile.write_then_wait"))
        .count()
    };
    let actor = w.sigil.local_actor(None, None);
    let (ended, seen) = w.rt.block_on(async {
        let call = w.sigil.invoke(
            &actor,
            "hostile/write_then_wait",
            json!({ "path": target, "ms": 1500 }),
        );
        let watch = async {
            // Looks at the log the moment the file shows up, while the call still runs.
            while !target.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            decisions()
        };
        tokio::join!(call, watch)
    });
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(
        seen, 1,
        "the file existed before the call's decision was in the log"
    );
}

#[test]
fn a_deny_reaching_inside_a_bound_directory_refuses_the_call() {
    let w = hostile_with(&[], &["fs.read:<root>/granted/sub/**"], "");
    let error = w.error_of("echo", json!({}));
    assert!(error.contains("denied"), "{error}");
    let granted = format!("fs.read:{}", w.root.join("granted").display());
    assert!(error.contains(&granted), "{error}");
}

/// Replaces the directory `<root>/name` by a symbolic link to `<root>/outside`, keeping the
/// directory as `<root>/name.old`.
fn swap_for_link_outside(w: &World, name: &str) {
    std::fs::rename(w.root.join(name), w.root.join(format!("{name}.old"))).unwrap();
    std::os::unix::fs::symlink(w.root.join("outside"), w.root.join(name)).unwrap();
}

/// The deny records whose rule says `needle`, as (capability, rule).
fn denials_saying(w: &World, needle: &str) -> Vec<(String, String)> {
    w.records(Filter {
        decision: Some(Verdict::Deny),
        ..Filter::default()
    })
    .into_iter()
    .filter(|r| r.record.rule.contains(needle))
    .map(|r| (r.record.capability.unwrap_or_default(), r.record.rule))
    .collect()
}

/// Waits (boundedly) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Swaps `<root>/name` for a link outside while a call is inside the plugin (past its checks,
/// `capability` among them), then lets that call overrun its deadline: the process is ended
/// and the supervisor starts it again, as a plugin can force whenever it likes.
fn swap_then_force_a_restart(w: &World, name: &str, capability: &str) {
    let allowed = || w.allowed().into_iter().filter(|c| c == capability).count();
    let before = allowed();
    std::thread::scope(|scope| {
        let hung = scope.spawn(|| w.error_of("hang", json!({})));
        wait_until("the hanging call passed its checks", || allowed() > before);
        swap_for_link_outside(w, name);
        let error = hung.join().unwrap();
        assert!(error.contains("deadline of 3000 ms exceeded"), "{error}");
    });
}

/// After a forced restart: the plugin is refused, on the record, and listed as failed.
fn assert_refused_at_restart(w: &World, capability: &str) {
    let outside = w.root.join("outside").display().to_string();
    let says = format!("now resolves to {outside}");
    let at_start = || {
        w.records(Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .into_iter()
        .any(|r| {
            r.record.call_id.is_none()
                && r.record.capability.as_deref() == Some(capability)
                && r.record.rule.contains(&says)
                && r.record.rule.contains("refused, not followed")
        })
    };
    wait_until("the restart was refused and recorded", at_start);
    let summary = w
        .sigil
        .manager()
        .list()
        .into_iter()
        .find(|p| p.id == "hostile")
        .unwrap();
    assert_eq!(summary.state, State::Error, "{summary:?}");
    let error = summary.error.unwrap();
    assert!(error.starts_with("refused to start"), "{error}");
    assert!(error.contains(&says), "{error}");
}

#[test]
fn a_read_grant_swapped_for_a_link_is_not_followed_at_a_restart() {
    let w = hostile_with(&[], &["fs.read:<root>/outside/**"], "");
    let note = w.root.join("granted/note.txt");
    assert_eq!(
        w.ok("read_file", json!({ "path": note }))["contents"],
        "granted note"
    );
    let granted = format!("fs.read:{}", w.root.join("granted").display());
    swap_then_force_a_restart(&w, "granted", &granted);
    for path in [
        w.root.join("outside/secret.txt"),
        w.root.join("granted/secret.txt"),
    ] {
        let error = w.error_of("read_file", json!({ "path": path }));
        assert!(!error.contains("outside secret"), "{error}");
    }
    assert_refused_at_restart(&w, &granted);
}

#[test]
fn a_write_grant_swapped_for_a_link_is_not_followed_at_a_restart() {
    let w = hostile_with(&[], &["fs.write:<root>/outside/**"], "");
    let fine = w.root.join("writable/fine.txt");
    w.ok("write_file", json!({ "path": fine, "text": "fine" }));
    let writable = format!("fs.write:{}", w.root.join("writable").display());
    swap_then_force_a_restart(&w, "writable", &writable);
    for path in [
        w.root.join("outside/planted.txt"),
        w.root.join("writable/planted.txt"),
    ] {
        let _ = w.error_of("write_file", json!({ "path": path, "text": "x" }));
    }
    assert!(
        !w.root.join("outside/planted.txt").exists(),
        "a file was written outside the grant"
    );
    assert_refused_at_restart(&w, &writable);
}

#[test]
fn a_grant_swapped_for_a_link_while_the_plugin_runs_refuses_the_call_and_is_audited() {
    let w = hostile_with(&[], &["fs.read:<root>/outside/**"], "");
    swap_for_link_outside(&w, "granted");
    let error = w.error_of("echo", json!({}));
    let granted = format!("fs.read:{}", w.root.join("granted").display());
    assert!(error.contains(&format!("denied `{granted}`")), "{error}");
    let outside = w.root.join("outside").display().to_string();
    let refused = denials_saying(&w, &format!("now resolves to {outside}"));
    assert!(refused.iter().any(|(c, _)| *c == granted), "{refused:?}");
    // Put back, calls go on: the running process held the directory all along.
    std::fs::remove_file(w.root.join("granted")).unwrap();
    std::fs::rename(w.root.join("granted.old"), w.root.join("granted")).unwrap();
    still_works(&w);
}

#[test]
fn a_fork_bomb_is_contained() {
    let w = hostile();
    match w.call("fork_bomb", json!({})) {
        Ok(out) => {
            let spawned = out["spawned"].as_u64().unwrap();
            assert!(spawned < 32, "spawned {spawned} processes: {out}");
        }
        // The plugin itself may be unable to go on when its process table is full.
        Err(error) => assert!(error.to_string().contains("invoke failed"), "{error}"),
    }
    still_works(&w);
}

#[test]
fn unbounded_allocation_is_contained() {
    let w = hostile();
    let error = w.error_of("alloc", json!({}));
    assert!(error.contains("invoke failed"), "{error}");
    assert!(
        error.contains("the plugin process") || error.contains("memory"),
        "{error}"
    );
    still_works(&w);
}

#[test]
fn an_oversized_result_is_refused() {
    let w = hostile();
    let error = w.error_of("big_output", json!({ "bytes": 100_000 }));
    assert!(error.contains("exceeds the limit of 4096 bytes"), "{error}");
    assert!(w.call("big_output", json!({ "bytes": 100 })).is_ok());
    still_works(&w);
}

/// A plugin's error reaches people (the API, MCP, the command line) and the audit log. One
/// that tries to clear the screen and forge a line, then rings the bell thousands of times
/// (within the reply limit, but six characters each once shown), is passed on with its control
/// characters shown as escapes and cut at the guest-text cap, in the error and in the record.
#[test]
fn a_forged_oversized_error_is_shown_escaped_and_capped_in_the_error_and_the_record() {
    let w = hostile();
    let error = w.error_of("forged_error", json!({ "bytes": 3500 }));
    for text in [error.clone(), w.last_outcome().1] {
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(
            text.contains("\\u{1b}[2J\\rok: call approved by admin"),
            "{text:?}"
        );
        assert!(text.contains("bytes in all)"), "{text:?}");
        assert!(
            text.chars().count() < sigil_runtime::guest_text::MAX_GUEST_TEXT_CHARS + 200,
            "{} characters passed on",
            text.chars().count()
        );
    }
    still_works(&w);
}

#[test]
fn a_crash_loop_quarantines_the_plugin() {
    let binaries = common::binaries();
    let mut setup = Setup::new("crashy", &binaries.hostile);
    setup.limits = LIMITS;
    setup.policy = RestartPolicy {
        max_crashes: 3,
        ..RestartPolicy::DEFAULT
    };
    let w = common::open(&setup);
    for _ in 0..3 {
        let error = w.error_of("exit", json!({}));
        assert!(error.contains("exited with status 3"), "{error}");
    }
    let error = w.error_of("echo", json!({}));
    assert!(error.contains("quarantined"), "{error}");
    assert!(error.contains("3 times"), "{error}");
    let summary = w
        .sigil
        .manager()
        .list()
        .into_iter()
        .find(|p| p.id == "crashy")
        .unwrap();
    assert_eq!(summary.state, State::Error);
    assert!(summary.error.unwrap().starts_with("quarantined"));
}

#[test]
fn a_plugin_crashing_at_start_is_quarantined_and_says_why() {
    let binaries = common::binaries();
    let mut setup = Setup::new("startcrash", &binaries.hostile);
    setup.env = r#"HOSTILE_MODE = "crash""#;
    setup.policy = RestartPolicy {
        max_crashes: 2,
        ..RestartPolicy::DEFAULT
    };
    let w = common::open(&setup);
    let entry = w.sigil.manager().get("startcrash").unwrap();
    assert_eq!(entry.lifecycle().state(), State::Error);
    let error = entry.lifecycle().error().unwrap();
    assert!(error.contains("quarantined"), "{error}");
    assert!(error.contains("exited with status 7"), "{error}");
    assert!(error.contains("crashing at start, as told"), "{error}");
}

/// Every process descending from this test process, by pid.
fn descendants() -> Vec<u32> {
    let mut parents = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_string()) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        // A zombie has ended; only its exit status is left for its parent to collect.
        if fields.next().unwrap_or("Z") == "Z" {
            continue;
        }
        if let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) {
            parents.insert(pid, ppid);
        }
    }
    let me = std::process::id();
    parents
        .keys()
        .copied()
        .filter(|&pid| {
            let mut at = pid;
            for _ in 0..64 {
                match parents.get(&at) {
                    Some(&ppid) if ppid == me => return true,
                    Some(&ppid) if ppid > 1 => at = ppid,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

#[test]
fn dropping_the_runtime_leaves_no_process_behind() {
    let w = hostile();
    // Children that only sleep, to be left behind if anything could be.
    let _ = w.call("fork_bomb", json!({}));
    still_works(&w);
    assert!(!descendants().is_empty(), "the plugin runs as a descendant");
    drop(w);
    // Bounded wait for the kill to land; the assertion is on the outcome, not the time.
    let mut left = descendants();
    for _ in 0..200 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = descendants();
    }
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// Serves HTTP on loopback until the test ends, answering `pong` and sending each request's
/// head back.
fn pong_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).to_string());
            let _ = socket.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    (port, rx)
}

/// An audit record's verdict, call id, user and channel.
type Decided = (Verdict, Option<String>, Option<String>, Option<String>);

#[test]
fn with_several_calls_in_flight_egress_is_decided_for_the_call_the_plugin_names() {
    let (port, heads) = pong_server();
    let capability = format!("net.connect:127.0.0.1:{port}");
    let binaries = common::binaries();
    let request = format!(r#"{{ capability = "{capability}", reason = "fetches" }}"#);
    let requests = [request.as_str()];
    let consent = [capability.as_str()];
    // alice may reach the server; bob may call the plugin but not reach the server for it.
    let bob = format!("[users.bob]\npermissions = [\"*\"]\ndeny = [\"{capability}\"]\n");
    let mut setup = Setup::new("egress", &binaries.hostile);
    setup.requests = &requests;
    setup.consent = &consent;
    setup.limits = "timeout_ms = 30000";
    setup.config = &bob;
    let w = common::open(&setup);
    w.assert_running();
    let url = format!("http://127.0.0.1:{port}/");
    let finished = w.ok("call_id", json!({}))["call_id"]
        .as_str()
        .unwrap()
        .to_string();

    // alice's call stays in flight while bob's makes one request per token. One process
    // serves both calls, so it may name either: the token says which call a connection is
    // for, as a host request's call id does, and the decision is that call's.
    let alice = w.sigil.local_actor(Some("alice"), None);
    let bob = w.sigil.local_actor(Some("bob"), None);
    let tokens = json!(["held", "self", "made-up-call", finished, null]);
    let (held, calls) = w.rt.block_on(async {
        tokio::join!(
            w.sigil.invoke(&alice, "egress/hold", json!({})),
            w.sigil.invoke(
                &bob,
                "egress/proxy_calls",
                json!({ "url": url, "tokens": tokens })
            ),
        )
    });
    let held = held.unwrap().output["call_id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls = calls.unwrap().output;
    let own = calls["self"].as_str().unwrap().to_string();
    assert_eq!(calls["held"], Value::from(held.clone()));
    assert_ne!(held, own);
    let replies: Vec<&str> = calls["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let table: [(&str, &str, &str); 5] = [
        ("alice's call, named", "HTTP/1.1 200", "pong"),
        ("bob's call, named", "HTTP/1.1 403", "denied"),
        (
            "a made-up call",
            "HTTP/1.1 403",
            "no call `made-up-call` is in flight",
        ),
        ("a finished call", "HTTP/1.1 403", "is in flight"),
        (
            "no call named",
            "HTTP/1.1 403",
            "several calls are in flight",
        ),
    ];
    assert_eq!(replies.len(), table.len(), "{replies:?}");
    for ((case, status, says), reply) in table.iter().zip(&replies) {
        assert!(
            reply.starts_with(status) && reply.contains(says),
            "{case}: {reply}"
        );
    }
    assert!(
        replies[3].contains(&format!("no call `{finished}`")),
        "{}",
        replies[3]
    );

    // Only the request named for alice's call reached the server, without the call token.
    let reached: Vec<String> = heads.try_iter().collect();
    assert_eq!(reached.len(), 1, "{reached:?}");
    assert!(
        !reached[0].to_lowercase().contains("proxy-authorization"),
        "{}",
        reached[0]
    );

    // Each attempt has its record: decided for the call named (an allowed one twice: the host
    // as named, then the address connected to), or refused for no call. A call's deny waits
    // in its journal until the call ends, so the order across calls is not the attempts'.
    let mut decisions: Vec<Decided> = w
        .records(Filter::default())
        .into_iter()
        .filter(|r| r.record.capability.as_deref() == Some(capability.as_str()))
        .map(|r| {
            (
                r.record.decision.unwrap(),
                r.record.call_id,
                r.record.actor.user,
                r.record.actor.channel,
            )
        })
        .collect();
    let egress = Some("egress".to_string());
    let cli = Some("cli".to_string());
    let mut expected = vec![
        (
            Verdict::Allow,
            Some(held.clone()),
            Some("alice".into()),
            cli.clone(),
        ),
        (
            Verdict::Allow,
            Some(held),
            Some("alice".into()),
            cli.clone(),
        ),
        (Verdict::Deny, Some(own), Some("bob".into()), cli),
        (Verdict::Deny, None, None, egress.clone()),
        (Verdict::Deny, None, None, egress.clone()),
        (Verdict::Deny, None, None, egress),
    ];
    let key = |d: &Decided| format!("{d:?}");
    decisions.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(decisions, expected);

    // With one call in flight, a request naming none is that call's.
    let reply = w.ok("proxy_get", json!({ "url": url }));
    let reply = reply["reply"].as_str().unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("pong"),
        "{reply}"
    );
    still_works(&w);
}

/// Every spelling of a loopback, unspecified or link-local destination a plugin can write.
const RESTRICTED_SPELLINGS: [&str; 15] = [
    "127.0.0.1",
    "2130706433",
    "127.1",
    "0x7f.0.0.1",
    "127.000.000.001",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::1]",
    "0",
    "0.0.0.0",
    "localhost",
    "localhost.",
    "LOCALHOST",
    "169.254.169.254",
];

fn deny_records(w: &World) -> Vec<sigil_audit::Record> {
    w.records(Filter {
        decision: Some(Verdict::Deny),
        ..Filter::default()
    })
}

/// Makes `attempt` and checks it added a deny record for a `net.connect` on `port` whose rule
/// satisfies `rule_ok`.
fn assert_refused_and_audited(
    w: &World,
    what: &str,
    port: u16,
    rule_ok: impl Fn(&str) -> bool,
    attempt: impl FnOnce() -> String,
) {
    let before = deny_records(w).len();
    let outcome = attempt();
    let denied = deny_records(w);
    assert!(denied.len() > before, "{what}: no deny record ({outcome})");
    let record = &denied.last().unwrap().record;
    assert!(
        record
            .capability
            .as_deref()
            .is_some_and(|c| c.starts_with("net.connect:") && c.ends_with(&format!(":{port}"))),
        "{what}: {record:?}"
    );
    assert!(rule_ok(&record.rule), "{what}: {}", record.rule);
}

/// Every outbound path of a process plugin: the host's HTTP call, and the egress proxy as a
/// plain request and as a tunnel.
fn attack_every_path(w: &World, spelling: &str, port: u16, rule_ok: &dyn Fn(&str) -> bool) {
    let authority = format!("{spelling}:{port}");
    assert_refused_and_audited(w, &format!("HttpSend {authority}"), port, rule_ok, || {
        let error = w.error_of("host_get", json!({ "url": format!("http://{authority}/") }));
        assert!(error.contains("denied"), "HttpSend {authority}: {error}");
        error
    });
    assert_refused_and_audited(w, &format!("proxy GET {authority}"), port, rule_ok, || {
        let out = w.ok(
            "proxy_get",
            json!({ "url": format!("http://{authority}/") }),
        );
        let reply = out["reply"].as_str().unwrap().to_string();
        assert!(
            reply.starts_with("HTTP/1.1 403"),
            "GET {authority}: {reply}"
        );
        reply
    });
    assert_refused_and_audited(w, &format!("CONNECT {authority}"), port, rule_ok, || {
        let out = w.ok("proxy_connect", json!({ "target": authority }));
        let reply = out["reply"].as_str().unwrap().to_string();
        assert!(
            reply.starts_with("HTTP/1.1 403"),
            "CONNECT {authority}: {reply}"
        );
        reply
    });
}

#[test]
fn restricted_addresses_in_every_spelling_are_refused_and_audited_on_every_path() {
    // What an outside attacker had: everything granted, the loopback address denied, and a
    // service listening there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let w = hostile_with(
        &["net.connect:*"],
        &["net.connect:127.0.0.1"],
        r#"PLUGIN_MODE = "test""#,
    );
    w.assert_running();
    let rule_ok = |rule: &str| {
        rule.contains("`net.connect:127.0.0.1`")
            || rule.contains("reachable only through a grant naming it")
    };
    for spelling in RESTRICTED_SPELLINGS {
        attack_every_path(&w, spelling, port, &rule_ok);
    }
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's listener"
    );
    still_works(&w);
}

#[test]
fn a_grant_naming_a_loopback_address_reaches_it_on_every_path() {
    let (port, heads) = pong_server();
    let w = hostile_with(
        &[&format!("net.connect:127.0.0.1:{port}")],
        &[],
        r#"PLUGIN_MODE = "test""#,
    );
    let out = w.ok(
        "host_get",
        json!({ "url": format!("http://127.0.0.1:{port}/host") }),
    );
    assert_eq!(out["status"], 200, "{out}");
    let out = w.ok(
        "proxy_get",
        json!({ "url": format!("http://127.0.0.1:{port}/proxy") }),
    );
    let reply = out["reply"].as_str().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let out = w.ok(
        "proxy_connect",
        json!({ "target": format!("127.0.0.1:{port}") }),
    );
    let reply = out["reply"].as_str().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let seen: Vec<String> = (0..2)
        .map(|_| {
            heads
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap()
        })
        .collect();
    assert!(seen[0].starts_with("GET /host "), "{seen:?}");
    assert!(seen[1].starts_with("GET /proxy "), "{seen:?}");
    assert!(
        w.allowed()
            .iter()
            .filter(|c| **c == format!("net.connect:127.0.0.1:{port}"))
            .count()
            >= 6,
        "host and address decided on each path: {:?}",
        w.allowed()
    );
}

#[test]
fn sigils_own_listener_is_refused_and_audited_on_every_path_even_when_explicitly_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let port = address.port();
    let _protected = sigil_egress::protect_listener(address);
    let w = hostile_with(
        &[
            &format!("net.connect:127.0.0.1:{port}"),
            &format!("net.connect:localhost:{port}"),
            &format!("net.connect:0.0.0.0:{port}"),
        ],
        &[],
        r#"PLUGIN_MODE = "test""#,
    );
    let rule_ok = |rule: &str| rule.contains("where Sigil itself listens");
    for spelling in [
        "127.0.0.1",
        "2130706433",
        "localhost",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
    ] {
        attack_every_path(&w, spelling, port, &rule_ok);
    }
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's listener"
    );
    still_works(&w);
}
