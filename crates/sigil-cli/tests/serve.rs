//! `sigil serve` as an operator runs it: the real binary on a loopback port, tokens from
//! `sigil token`, requests over real HTTP, SIGTERM to stop it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const CONFIG: &str = r#"
[defaults]
user = "local"
workspace = "default"

[workspaces.default]
allow = ["*"]

[users.local]
permissions = ["*"]

[users.bob]
permissions = ["tool.fs.*"]
"#;

const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn sigil(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGIL_LOG")
        .env_remove("SIGIL_TOKEN")
        .output()
        .unwrap()
}

fn ok(home: &std::path::Path, args: &[&str]) -> String {
    let out = sigil(home, args);
    assert!(
        out.status.success(),
        "sigil {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Daemon {
    home: tempfile::TempDir,
    child: Option<Child>,
    address: SocketAddr,
    lines: mpsc::Receiver<String>,
    agent: ureq::Agent,
}

impl Daemon {
    fn start(config: &str) -> Daemon {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("sigil.toml"), config).unwrap();
        Daemon::start_in(home)
    }

    fn start_in(home: tempfile::TempDir) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("SIGIL_HOME", home.path())
            .env_remove("SIGIL_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the daemon printed nothing within two minutes");
        let address: SocketAddr = first
            .rsplit("http://")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("no address in `{first}`: {e}"));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Daemon {
            home,
            child: Some(child),
            address,
            lines,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.get(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        read(request.call().unwrap())
    }

    fn invoke(&self, target: &str, token: &str, input: Value) -> Result<(u16, Value), ureq::Error> {
        let response = self
            .agent
            .post(self.url(&format!("/v1/tools/{target}/invoke")))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(input.to_string())?;
        Ok(read(response))
    }

    fn post(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .agent
            .post(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send("{}")
            .unwrap();
        read(response)
    }

    /// Stops the daemon with SIGTERM and starts a new one on the same data directory.
    fn restart(mut self) -> Daemon {
        self.terminate();
        let home = std::mem::replace(&mut self.home, tempfile::tempdir().unwrap());
        Daemon::start_in(home)
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns the rest of its output.
    fn terminate(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "the daemon exited with {exit}");
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        rest.join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.body_mut().read_to_string().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{status} `{content_type}`: {text}"
    );
    (status, serde_json::from_str(&text).unwrap())
}

fn token(home: &std::path::Path, user: &str) -> String {
    let out = ok(
        home,
        &["token", "create", "--user", user, "--label", "test"],
    );
    let token = out.trim().to_string();
    assert!(token.starts_with("sigil_") && token.len() == 70, "{out}");
    token
}

#[test]
fn the_daemon_authenticates_enforces_streams_events_and_shuts_down_cleanly() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("sigil.toml"), CONFIG).unwrap();
    let local = token(home.path(), "local");
    let bob = token(home.path(), "bob");
    let refused = sigil(home.path(), &["token", "create", "--user", "mallory"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no user `mallory`"));
    let listing = ok(home.path(), &["token", "list"]);
    assert!(
        listing.contains("local") && listing.contains("bob"),
        "{listing}"
    );
    assert!(!listing.contains(&local), "the list shows a secret");

    let mut daemon = Daemon::start_in(home);
    let info: Value = serde_json::from_str(
        &std::fs::read_to_string(daemon.home.path().join("daemon.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["address"], daemon.address.to_string());
    assert_eq!(info["pid"], daemon.child.as_ref().unwrap().id());

    assert_eq!(daemon.get("/health", None).0, 200);
    let (status, body) = daemon.get("/v1/tools", None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthenticated"))
    );
    let (status, body) = daemon.get("/v1/tools", Some("sigil_nope"));
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("invalid_token"))
    );

    // Events: subscribe as the operator before the calls.
    let (events_tx, events) = mpsc::channel::<(String, Value)>();
    let stream = daemon
        .agent
        .get(daemon.url("/v1/events"))
        .header("Authorization", format!("Bearer {local}"))
        .call()
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    std::thread::spawn(move || {
        let reader = BufReader::new(stream.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                let value = serde_json::from_str(v.trim()).unwrap();
                if events_tx.send((name.clone(), value)).is_err() {
                    break;
                }
            }
        }
    });
    let next = |wanted: &dyn Fn(&str, &Value) -> bool| loop {
        let (name, value) = events
            .recv_timeout(Duration::from_secs(60))
            .expect("no event within a minute");
        if wanted(&name, &value) {
            return value;
        }
    };
    next(&|name, _| name == "ready");

    // A user without the capability: 403, and the refusal is recorded as that user.
    let (status, body) = daemon
        .invoke("text/sha256", &bob, json!({ "text": "hello" }))
        .unwrap();
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    let event = next(&|name, v| name == "decision" && v["actor"]["user"] == "bob");
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["capability"], "tool.text.sha256");
    let (status, body) = daemon.get("/v1/audit?user=bob&decision=deny&plugin=text", Some(&local));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["records"][0]["actor"]["channel"], "http");

    // A permitted call returns the plugin's result; its decision reaches the stream.
    let (status, body) = daemon
        .invoke("text/sha256", &local, json!({ "text": "hello" }))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"]["sha256"], HELLO_SHA256);
    let call_id = body["call_id"].as_str().unwrap().to_string();
    let event = next(&|name, v| name == "decision" && v["call_id"] == call_id.as_str());
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["actor"]["user"], "local");

    // status and doctor find the daemon.
    let out = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["status"])
        .env("SIGIL_HOME", daemon.home.path())
        .env("SIGIL_TOKEN", &local)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("daemon: running at http://{}", daemon.address)),
        "{text}"
    );
    assert!(text.contains("plugins (live, from the daemon)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("text") && l.contains("running")),
        "{text}"
    );
    let doctor = sigil(daemon.home.path(), &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success(), "{text}");
    for check in [
        "data directory",
        "daemon",
        "database",
        "audit chain",
        "bubblewrap",
        "wasm32-wasip2",
    ] {
        assert!(
            text.contains(check),
            "doctor does not check {check}: {text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("audit chain")),
        "{text}"
    );

    // A revoked token stops working at once.
    let bob_id = ok(daemon.home.path(), &["token", "list", "--json"]);
    let tokens: Value = serde_json::from_str(&bob_id).unwrap();
    let bob_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(daemon.home.path(), &["token", "revoke", &bob_id]);
    assert_eq!(daemon.get("/v1/tools", Some(&bob)).0, 401);

    let rest = daemon.terminate();
    assert!(rest.contains("stopped; audit log closed"), "{rest}");
    assert!(!daemon.home.path().join("daemon.json").exists());
    let verify = ok(daemon.home.path(), &["audit", "verify"]);
    assert!(verify.starts_with("ok:"), "{verify}");
    let records = ok(
        daemon.home.path(),
        &["audit", "list", "--call", &call_id, "--json"],
    );
    assert_eq!(records.lines().count(), 2, "{records}");
}

#[test]
fn sigterm_during_calls_leaves_every_record_of_every_completed_call() {
    let mut daemon = Daemon::start(CONFIG);
    let local = token(daemon.home.path(), "local");
    let address = daemon.address;
    let (done_tx, done) = mpsc::channel();
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let local = local.clone();
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let mut completed = Vec::new();
                for i in 0..10_000 {
                    let sent = agent
                        .post(format!("http://{address}/v1/tools/text/sha256/invoke"))
                        .header("Authorization", format!("Bearer {local}"))
                        .header("Content-Type", "application/json")
                        .send(json!({ "text": format!("{worker}-{i}") }).to_string());
                    let Ok(response) = sent else { break };
                    let (status, body) = read(response);
                    assert_eq!(status, 200, "{body}");
                    completed.push(body["call_id"].as_str().unwrap().to_string());
                    if completed.len() == 20 {
                        let _ = done_tx.send(());
                    }
                }
                completed
            })
        })
        .collect();
    // Stop while every worker has calls behind it and more on the way.
    for _ in 0..8 {
        done.recv_timeout(Duration::from_secs(120)).unwrap();
    }
    let rest = daemon.terminate();
    assert!(rest.contains("stopped; audit log closed"), "{rest}");
    let completed: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(completed.len() >= 160);

    let log = sigil::audit::AuditLog::open(
        &daemon.home.path().join("sigil.db"),
        &sigil::audit::KeyFiles::in_dir(&daemon.home.path().join("state")),
    )
    .unwrap();
    assert!(log.verify().unwrap().is_intact());
    let all = log.query(&sigil::audit::Filter::default()).unwrap();
    for call_id in &completed {
        let records = all
            .iter()
            .filter(|r| r.record.call_id.as_deref() == Some(call_id.as_str()))
            .count();
        assert_eq!(records, 2, "call {call_id} has {records} record(s)");
    }
}

fn plugin_state(daemon: &Daemon, token: &str, id: &str) -> String {
    let (status, body) = daemon.get("/v1/plugins", Some(token));
    assert_eq!(status, 200, "{body}");
    body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no plugin {id}: {body}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_disable_survives_a_restart_of_the_daemon_until_enabled() {
    let daemon = Daemon::start(CONFIG);
    let local = token(daemon.home.path(), "local");
    let hello = || json!({ "text": "hello" });

    let (status, body) = daemon.post("/v1/plugins/text/disable", &local);
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("stopped")),
        "{body}"
    );
    // Disabled from the command line while the daemon runs: recorded for the next start, and
    // the operator is told the running daemon is unchanged.
    let out = sigil(daemon.home.path(), &["plugin", "disable", "fs"]);
    assert!(out.status.success(), "{out:?}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains(&daemon.address.to_string()) && note.contains("/v1/plugins/fs/disable"),
        "{note}"
    );
    assert_eq!(plugin_state(&daemon, &local, "fs"), "running");

    let daemon = daemon.restart();
    assert_eq!(plugin_state(&daemon, &local, "text"), "stopped");
    assert_eq!(plugin_state(&daemon, &local, "fs"), "stopped");
    let (status, body) = daemon.invoke("text/sha256", &local, hello()).unwrap();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "plugin_not_running", "{body}");
    let listing = ok(daemon.home.path(), &["plugin", "list"]);
    assert!(
        listing.contains("disabled: `sigil plugin enable text`"),
        "{listing}"
    );

    let (status, body) = daemon.post("/v1/plugins/text/enable", &local);
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let mut daemon = daemon.restart();
    assert_eq!(plugin_state(&daemon, &local, "text"), "running");
    assert_eq!(plugin_state(&daemon, &local, "fs"), "stopped");
    let (status, body) = daemon.invoke("text/sha256", &local, hello()).unwrap();
    assert_eq!(
        (status, body["output"]["sha256"].as_str()),
        (200, Some(HELLO_SHA256)),
        "{body}"
    );
    daemon.terminate();
}

#[test]
fn sigil_plugin_reload_asks_the_running_daemon_with_a_token() {
    let daemon = Daemon::start(CONFIG);
    let local = token(daemon.home.path(), "local");
    let home = daemon.home.path();

    let refused = sigil(home, &["plugin", "reload", "text"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains(&daemon.address.to_string()),
        "{stderr}"
    );

    let reloaded = ok(home, &["plugin", "reload", "text", "--token", &local]);
    assert!(
        reloaded.contains("the daemon reloaded text") && reloaded.contains("it is running"),
        "{reloaded}"
    );
    let unknown = sigil(home, &["plugin", "reload", "nope", "--token", &local]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("nope"),
        "{stderr}"
    );
    let (status, body) = daemon
        .invoke("text/sha256", &local, json!({ "text": "hello" }))
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn sigil_approvals_lists_and_approves_a_call_the_daemon_holds() {
    let config = format!(
        "{CONFIG}\n[users.ops]\npermissions = [\"approvals.decide\"]\n\n[approvals]\nrequire = [\"scope:host\"]\ntimeout_ms = 120000\n"
    );
    // Without a daemon: nothing to list, and a local call that needs approval is refused at
    // once, recorded, instead of waiting for a decision nobody can make.
    let alone = tempfile::tempdir().unwrap();
    std::fs::write(alone.path().join("sigil.toml"), &config).unwrap();
    let listed = sigil(alone.path(), &["approvals", "list"]);
    assert!(!listed.status.success());
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.contains("no daemon serves") && stderr.contains("sigil serve"),
        "{stderr}"
    );
    let started = std::time::Instant::now();
    let refused = sigil(
        alone.path(),
        &[
            "tool",
            "invoke",
            "fs/list_dir",
            "--input",
            r#"{"path": "."}"#,
        ],
    );
    assert!(!refused.status.success());
    assert!(started.elapsed() < Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("was not approved") && stderr.contains("sigil serve"),
        "{stderr}"
    );
    let audit = ok(alone.path(), &["audit", "list"]);
    assert!(audit.contains("nobody can decide it here"), "{audit}");

    let daemon = Daemon::start(&config);
    let home = daemon.home.path();
    let local = token(home, "local");
    let ops = token(home, "ops");
    let dir = home.display().to_string();
    let (agent, url) = (
        daemon.agent.clone(),
        daemon.url("/v1/tools/fs/list_dir/invoke"),
    );
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            read(
                agent
                    .post(url)
                    .header("Authorization", format!("Bearer {local}"))
                    .header("Content-Type", "application/json")
                    .send(json!({ "path": dir }).to_string())
                    .unwrap(),
            )
        });
        let refused = sigil(home, &["approvals", "list"]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("--token"), "{stderr}");
        let mut listing = String::new();
        for _ in 0..600 {
            listing = ok(home, &["approvals", "list", "--token", &ops]);
            if listing.contains("fs/list_dir") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            listing.contains("fs/list_dir")
                && listing.contains("user=local")
                && listing.contains("approvals.require[0] `scope:host`"),
            "{listing}"
        );
        let id = listing.split_whitespace().next().unwrap().to_string();
        // A unique prefix of the id is enough, as for tokens.
        let prefix: String = id.chars().take(6).collect();
        assert!(prefix.len() < id.len(), "{id}");
        let approved = ok(
            home,
            &[
                "approvals",
                "approve",
                &prefix,
                "--reason",
                "expected",
                "--token",
                &ops,
            ],
        );
        assert!(approved.contains("approved by ops: expected"), "{approved}");
        let (status, body) = call.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body["output"]["entries"].is_array(), "{body}");
        let again = sigil(home, &["approvals", "deny", &id, "--token", &ops]);
        assert!(!again.status.success());
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(
            stderr.contains("HTTP 409") && stderr.contains("already approved by ops"),
            "{stderr}"
        );
        assert_eq!(
            ok(home, &["approvals", "list", "--token", &ops]).trim(),
            "no calls are waiting for approval"
        );
    });
}

const FETCHER: &str = r#"
id = "fetcher"
name = "Fetcher"
version = "0.1.0"
description = "Fetches URLs through the host."
kinds = ["tool"]
engine = "*"

[capabilities]
request = [
    { capability = "net.connect:127.0.0.1", reason = "names the loopback address outright" },
    { capability = "net.connect:localhost", reason = "names the loopback host outright" },
]

[execution]
tier = "process"
entry = "plugin"

[execution.limits]
timeout_ms = 20000
"#;

/// `sigil plugin remove` with a daemon running: the daemon removes the plugin (its tools stop
/// answering at once); without a token the command says how to give one and changes nothing.
#[test]
fn plugin_remove_goes_through_a_running_daemon() {
    let fixtures = sigil_process_guests::build().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("sigil.toml"), CONFIG).unwrap();
    let plugin = tempfile::tempdir().unwrap();
    std::fs::copy(&fixtures.echo, plugin.path().join("plugin")).unwrap();
    std::fs::write(plugin.path().join("plugin.toml"), FETCHER).unwrap();
    ok(
        home.path(),
        &[
            "plugin",
            "install",
            plugin.path().to_str().unwrap(),
            "--yes",
        ],
    );
    let daemon = Daemon::start_in(home);
    let token = token(daemon.home.path(), "local");
    let (status, _) = daemon.get("/v1/plugins/fetcher", Some(&token));
    assert_eq!(status, 200);

    let refused = sigil(daemon.home.path(), &["plugin", "remove", "fetcher"]);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("--token"), "{error}");
    let (status, _) = daemon.get("/v1/plugins/fetcher", Some(&token));
    assert_eq!(status, 200, "nothing was removed without a token");

    let said = ok(
        daemon.home.path(),
        &["plugin", "remove", "fetcher", "--token", &token],
    );
    assert!(
        said.contains("removed fetcher") && said.contains("the daemon"),
        "{said}"
    );
    let (status, body) = daemon.get("/v1/plugins/fetcher", Some(&token));
    assert_eq!(status, 404, "{body}");
    assert!(!daemon.home.path().join("plugins/fetcher").exists());
}

#[test]
fn the_daemons_own_address_is_refused_and_audited_even_for_a_plugin_granted_it_by_name() {
    let fixtures = sigil_process_guests::build().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("sigil.toml"), CONFIG).unwrap();
    let plugin = tempfile::tempdir().unwrap();
    std::fs::copy(&fixtures.echo, plugin.path().join("plugin")).unwrap();
    std::fs::write(plugin.path().join("plugin.toml"), FETCHER).unwrap();
    ok(
        home.path(),
        &[
            "plugin",
            "install",
            plugin.path().to_str().unwrap(),
            "--yes",
        ],
    );
    // Another service on loopback, which the grant does reach.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for socket in other.incoming() {
            let Ok(mut socket) = socket else { return };
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf);
            let _ = socket.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });

    let daemon = Daemon::start_in(home);
    let token = token(daemon.home.path(), "local");
    let port = daemon.address.port();
    let (status, out) = daemon
        .invoke(
            "fetcher/fetch",
            &token,
            json!({ "url": format!("http://127.0.0.1:{other_port}/") }),
        )
        .unwrap();
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["output"]["body"], "pong", "{out}");

    for host in ["127.0.0.1", "localhost", "2130706433", "0.0.0.0"] {
        let (status, out) = daemon
            .invoke(
                "fetcher/fetch",
                &token,
                json!({ "url": format!("http://{host}:{port}/v1/plugins") }),
            )
            .unwrap();
        assert_ne!(status, 200, "{host}: {out}");
        assert!(out.to_string().contains("denied"), "{host}: {out}");
    }
    let (status, audit) = daemon.get("/v1/audit?decision=deny", Some(&token));
    assert_eq!(status, 200, "{audit}");
    // The three spellings of a granted loopback address reach the address decision and are
    // refused there; `0.0.0.0` is no grant's host, so it is refused by name before any
    // address is decided (a deny all the same, checked above).
    let refused = audit
        .to_string()
        .matches("where Sigil itself listens")
        .count();
    assert!(refused >= 3, "{audit}");
    assert!(
        audit.to_string().contains("net.connect:0.0.0.0:"),
        "the 0.0.0.0 attempt is recorded: {audit}"
    );
}

#[test]
fn an_event_stream_ends_once_sigil_token_revoke_revokes_its_token() {
    let home = tempfile::tempdir().unwrap();
    let config = format!("{CONFIG}\n[users.watcher]\npermissions = [\"admin.audit\"]\n");
    std::fs::write(home.path().join("sigil.toml"), config).unwrap();
    let local = token(home.path(), "local");
    let watcher = token(home.path(), "watcher");
    let listed: Value =
        serde_json::from_str(&ok(home.path(), &["token", "list", "--json"])).unwrap();
    let watcher_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == "watcher")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let daemon = Daemon::start_in(home);

    let (events_tx, events) = mpsc::channel::<(String, Value)>();
    let stream = daemon
        .agent
        .get(daemon.url("/v1/events"))
        .header("Authorization", format!("Bearer {watcher}"))
        .call()
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    // The sender goes when the stream ends: the channel then reports it disconnected.
    std::thread::spawn(move || {
        let reader = BufReader::new(stream.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                let value = serde_json::from_str(v.trim()).unwrap();
                if events_tx.send((name.clone(), value)).is_err() {
                    break;
                }
            }
        }
    });
    let call = || {
        let (status, body) = daemon
            .invoke("text/sha256", &local, json!({ "text": "hello" }))
            .unwrap();
        assert_eq!(status, 200, "{body}");
        body["call_id"].as_str().unwrap().to_string()
    };
    let seen = call();
    loop {
        let (name, value) = events
            .recv_timeout(Duration::from_secs(60))
            .expect("no event within a minute");
        if name == "decision" && value["call_id"] == seen.as_str() {
            break;
        }
    }

    let out = ok(daemon.home.path(), &["token", "revoke", &watcher_id]);
    assert!(out.contains("revoked token"), "{out}");
    let unseen = call();
    let mut delivered = Vec::new();
    loop {
        match events.recv_timeout(Duration::from_secs(60)) {
            Ok(event) => delivered.push(event),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "the stream is still open a minute after its token was revoked: {delivered:?}"
                )
            }
        }
    }
    assert!(
        delivered.iter().all(|(name, _)| name != "decision"),
        "delivered after the revocation: {delivered:?}"
    );
    assert!(!format!("{delivered:?}").contains(&unseen));
    let (status, body) = daemon.get("/v1/audit?user=watcher&decision=deny", Some(&local));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["records"].as_array().unwrap().iter().any(|r| r["rule"]
            == format!("event stream closed: token `{watcher_id}` was revoked").as_str()),
        "{body}"
    );
}
