//! `sigil status` and `sigil doctor`: is a daemon running, what does it serve, and is this
//! machine ready for Sigil.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::Value;
use sigil_gateway::DaemonInfo;

/// How `sigil status` reaches the daemon.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// An API token, to show the daemon's live plugin states (default: $SIGIL_TOKEN).
    #[arg(long, env = "SIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A daemon found through `daemon.json`, and whether it answers.
pub(crate) enum Daemon {
    /// No `daemon.json`.
    None,
    /// `daemon.json` names a daemon that answers `/health`.
    Running(DaemonInfo),
    /// `daemon.json` names a daemon that does not answer.
    Stale(DaemonInfo),
}

pub(crate) fn find_daemon(root: &Path) -> Result<Daemon> {
    let Some(info) = DaemonInfo::read(root)? else {
        return Ok(Daemon::None);
    };
    match get(&info, "/health", None) {
        Ok((200, _)) => Ok(Daemon::Running(info)),
        _ => Ok(Daemon::Stale(info)),
    }
}

/// POST to `path` of the daemon with a bearer token; the status and the JSON body.
pub(crate) fn post(info: &DaemonInfo, path: &str, token: &str) -> Result<(u16, Value)> {
    post_json(info, path, token, None)
}

/// POST `body` (or nothing) as JSON to `path` of the daemon with a bearer token; the status
/// and the JSON body.
pub(crate) fn post_json(
    info: &DaemonInfo,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        // A reload starts the plugin's new generation, which may take a while.
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into();
    let request = agent
        .post(format!("http://{}{path}", info.address))
        .header("Authorization", format!("Bearer {token}"));
    let mut response = match body {
        Some(body) => request
            .header("Content-Type", "application/json")
            .send(body.to_string())?,
        None => request.send_empty()?,
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Sends `method` to `path` of the daemon with a bearer token and an optional JSON body; the
/// status and the JSON body of the response.
pub(crate) fn send(
    info: &DaemonInfo,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{}{path}", info.address);
    let authorization = format!("Bearer {token}");
    let mut response = match (method, body) {
        ("GET", _) => agent
            .get(&url)
            .header("Authorization", &authorization)
            .call()?,
        ("PUT", Some(body)) => agent
            .put(&url)
            .header("Authorization", &authorization)
            .header("Content-Type", "application/json")
            .send(body.to_string())?,
        ("DELETE", None) => agent
            .delete(&url)
            .header("Authorization", &authorization)
            .call()?,
        ("POST", body) => return post_json(info, path, token, body),
        (method, _) => {
            anyhow::bail!("cannot send {method} {path}: not a request this client makes")
        }
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// GET `path` from the daemon; the status and the JSON body.
pub(crate) fn get(info: &DaemonInfo, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(format!("http://{}{path}", info.address));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

pub fn status(home: Option<&Path>, args: StatusArgs) -> Result<ExitCode> {
    let home = sigil::Home::resolve(home)?;
    let root = home.root();
    let daemon = find_daemon(root)?;
    let mut report = serde_json::json!({ "data_dir": root.display().to_string() });
    let live_plugins = match &daemon {
        Daemon::Running(info) => {
            report["daemon"] = serde_json::json!({
                "state": "running", "address": info.address.to_string(), "pid": info.pid,
                "version": info.version, "started_ms": info.started_ms,
            });
            match args.token.as_deref() {
                Some(token) => match get(info, "/v1/plugins", Some(token))? {
                    (200, body) => Some(body["plugins"].clone()),
                    (_, body) => {
                        anyhow::bail!(
                            "the daemon refused the token: {}",
                            body["error"]["message"]
                                .as_str()
                                .unwrap_or("no reason given")
                        )
                    }
                },
                None => None,
            }
        }
        Daemon::Stale(info) => {
            report["daemon"] = serde_json::json!({
                "state": "stale", "address": info.address.to_string(), "pid": info.pid,
            });
            None
        }
        Daemon::None => {
            report["daemon"] = serde_json::json!({ "state": "stopped" });
            None
        }
    };
    let (plugins, live) = match live_plugins {
        Some(plugins) => (plugins, true),
        None => {
            let sigil = sigil::open(Some(root))?;
            (serde_json::to_value(sigil.manager().list())?, false)
        }
    };
    report["plugins"] = plugins;
    report["plugin_states"] = Value::from(if live { "live" } else { "on disk" });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("data directory: {}", root.display());
    match &daemon {
        Daemon::Running(info) => println!(
            "daemon: running at http://{} (pid {}, sigil {})",
            info.address, info.pid, info.version
        ),
        Daemon::Stale(info) => println!(
            "daemon: not running; {} names pid {} at {}, which does not answer (start `sigil serve`)",
            DaemonInfo::path(root).display(),
            info.pid,
            info.address
        ),
        Daemon::None => println!("daemon: not running (start it with `sigil serve`)"),
    }
    if live {
        println!("plugins (live, from the daemon):");
    } else if matches!(daemon, Daemon::Running(_)) {
        println!(
            "plugins (as loaded from disk; pass --token or set SIGIL_TOKEN for the daemon's live states):"
        );
    } else {
        println!("plugins (as loaded from disk):");
    }
    for p in report["plugins"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {:<9} {:<9} {:<9} {}",
            p["id"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?"),
            p["tier"].as_str().unwrap_or("?"),
            p["state"].as_str().unwrap_or("?"),
            p["trust"]["level"].as_str().unwrap_or("?"),
        );
        if let Some(error) = p["error"].as_str() {
            println!("      error: {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    level: Level,
    detail: String,
}

fn check(name: &'static str, level: Level, detail: impl Into<String>) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
    }
}

pub fn doctor(home: Option<&Path>) -> Result<ExitCode> {
    let mut checks = Vec::new();
    let home = match sigil::Home::resolve(home) {
        Ok(home) => Some(home),
        Err(error) => {
            checks.push(check("data directory", Level::Fail, error.to_string()));
            None
        }
    };
    if let Some(home) = &home {
        checks.push(writable(home.root()));
        checks.push(private(home.root()));
        checks.push(match find_daemon(home.root()) {
            Ok(Daemon::Running(info)) => check(
                "daemon",
                Level::Ok,
                format!("running at http://{} (pid {})", info.address, info.pid),
            ),
            Ok(Daemon::Stale(info)) => check(
                "daemon",
                Level::Warn,
                format!(
                    "{} names pid {} at {}, which does not answer: a daemon that did not shut down cleanly; remove the file or start `sigil serve`",
                    DaemonInfo::path(home.root()).display(),
                    info.pid,
                    info.address
                ),
            ),
            Ok(Daemon::None) => check("daemon", Level::Ok, "not running (`sigil serve` starts it)"),
            Err(error) => check("daemon", Level::Warn, error.to_string()),
        });
        let config_ok = match sigil::Config::load(&home.config_path()) {
            Ok(_) => {
                checks.push(check(
                    "sigil.toml",
                    Level::Ok,
                    home.config_path().display().to_string(),
                ));
                true
            }
            Err(error) => {
                checks.push(check("sigil.toml", Level::Fail, error.to_string()));
                false
            }
        };
        match sigil::audit::AuditLog::open(&home.database_path(), &home.audit_keys()) {
            Ok(log) => {
                checks.push(check(
                    "database",
                    Level::Ok,
                    home.database_path().display().to_string(),
                ));
                checks.push(match log.verify() {
                    Ok(report) => match report.problem {
                        None => check(
                            "audit chain",
                            Level::Ok,
                            format!("{} record(s), hash chain intact", report.records),
                        ),
                        Some(problem) => check(
                            "audit chain",
                            Level::Fail,
                            format!("TAMPERED: {problem} ({} record(s) checked)", report.records),
                        ),
                    },
                    Err(error) => check("audit chain", Level::Fail, error.to_string()),
                });
                let _ = log.close();
            }
            Err(error) => checks.push(check("database", Level::Fail, error.to_string())),
        }
        if config_ok {
            checks.push(plugins(home.root()));
        }
    }
    checks.push(bubblewrap());
    checks.push(wasm_target());

    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &checks {
        let level = match c.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        println!("{level:<5} {:<width$}  {}", c.name, c.detail);
    }
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warned = checks.iter().filter(|c| c.level == Level::Warn).count();
    if failed > 0 {
        println!("{failed} check(s) failed, {warned} warning(s)");
        Ok(ExitCode::FAILURE)
    } else {
        println!("all checks passed, {warned} warning(s)");
        Ok(ExitCode::SUCCESS)
    }
}

fn writable(root: &Path) -> Check {
    use std::io::Write;
    let probe = root.join(format!(".doctor-{}", std::process::id()));
    let written = sigil::files::create_private_file(&probe)
        .and_then(|mut file| file.write_all(b"probe"))
        .and_then(|()| std::fs::remove_file(&probe));
    match written {
        Ok(()) => check(
            "data directory",
            Level::Ok,
            format!("{} is writable", root.display()),
        ),
        Err(error) => check(
            "data directory",
            Level::Fail,
            format!("{} is not writable: {error}", root.display()),
        ),
    }
}

/// Every path in the data directory, the directory itself included, that its group or others
/// may use: Sigil's state, configuration, keys and database are its user's alone.
fn private(root: &Path) -> Check {
    let mut wide = Vec::new();
    let mut unreadable = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) => {
                unreadable.push(format!("{}: {error}", path.display()));
                continue;
            }
        };
        if let Some(mode) = sigil::files::wider_than_private(&metadata) {
            wide.push(format!("{} is {mode:o}", path.display()));
        }
        if metadata.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => pending.extend(entries.flatten().map(|entry| entry.path())),
                Err(error) => unreadable.push(format!("{}: {error}", path.display())),
            }
        }
    }
    if wide.is_empty() && unreadable.is_empty() {
        return check(
            "file modes",
            Level::Ok,
            format!(
                "{} and everything in it are private to their owner",
                root.display()
            ),
        );
    }
    wide.sort();
    let mut detail = Vec::new();
    if !wide.is_empty() {
        detail.push(format!(
            "open to other users: {} (run `chmod -R go-rwx {}`)",
            wide.join(", "),
            root.display()
        ));
    }
    if !unreadable.is_empty() {
        detail.push(format!("not checked: {}", unreadable.join(", ")));
    }
    check("file modes", Level::Warn, detail.join("; "))
}

fn plugins(root: &Path) -> Check {
    match sigil::open(Some(root)) {
        Ok(sigil) => {
            let list = sigil.manager().list();
            let failures = sigil.manager().failures();
            let broken: Vec<String> = list
                .iter()
                .filter(|p| p.error.is_some())
                .map(|p| p.id.clone())
                .chain(failures.iter().map(|f| f.dir.display().to_string()))
                .collect();
            if broken.is_empty() {
                check(
                    "plugins",
                    Level::Ok,
                    format!("{} plugin(s) load", list.len()),
                )
            } else {
                check(
                    "plugins",
                    Level::Warn,
                    format!(
                        "did not load: {} (see `sigil plugin list`)",
                        broken.join(", ")
                    ),
                )
            }
        }
        Err(error) => check("plugins", Level::Fail, error.to_string()),
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn bubblewrap() -> Check {
    match on_path("bwrap") {
        Some(path) => {
            let version = std::process::Command::new(&path)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            check(
                "bubblewrap",
                Level::Ok,
                format!("{} {version}", path.display()),
            )
        }
        None => check(
            "bubblewrap",
            Level::Warn,
            "bwrap is not on PATH: process-tier plugins cannot be sandboxed; install it with `apt-get install -y bubblewrap`",
        ),
    }
}

fn wasm_target() -> Check {
    const NOTE: &str = "only needed to build Rust plugins";
    let sysroot = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match sysroot {
        None => check(
            "wasm32-wasip2",
            Level::Warn,
            format!("no Rust toolchain found; {NOTE}"),
        ),
        Some(root) if root.join("lib/rustlib/wasm32-wasip2").is_dir() => {
            check("wasm32-wasip2", Level::Ok, "the Rust target is installed")
        }
        Some(_) => check(
            "wasm32-wasip2",
            Level::Warn,
            format!(
                "the Rust target is not installed ({NOTE}; `rustup target add wasm32-wasip2` adds it)"
            ),
        ),
    }
}
