//! `sigil plugin …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List plugins: compiled-in and discovered, with their state.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin: manifest, capabilities with reasons, tools, state.
    Inspect {
        /// The plugin id.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the commands plugins contribute (`sigil NAME ARGS...`).
    Commands {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop serving a plugin's tools; it stays stopped across restarts until enabled.
    Disable {
        /// The plugin id.
        name: String,
    },
    /// Serve a disabled plugin's tools again.
    Enable {
        /// The plugin id.
        name: String,
    },
    /// Load a plugin again from its directory. With a daemon running, the daemon reloads it
    /// (its calls in flight finish on the old generation); without one, this checks that the
    /// plugin's files load as they are now.
    Reload {
        /// The plugin id.
        name: String,
        /// An API token with `admin.plugins`, for a running daemon (default: $SIGIL_TOKEN).
        #[arg(long, env = "SIGIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Take an installed plugin out: it stops serving, its consent leaves sigil.toml and its
    /// installed copy is deleted (a plugin loaded from a configured directory keeps its files).
    /// With a daemon running, the daemon removes it.
    Remove {
        /// The plugin id.
        name: String,
        /// An API token with `admin.plugins`, for a running daemon (default: $SIGIL_TOKEN).
        #[arg(long, env = "SIGIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Show a plugin's configuration (secret fields as `<secret>`), or change it with `--set`.
    /// Every change is validated against the plugin's config schema first: an invalid one
    /// changes nothing. With a daemon running, the daemon applies it and the plugin's next
    /// call sees it; without one, sigil.toml is edited (comments kept).
    Config {
        /// The plugin id.
        name: String,
        /// Set a field: `key=value`, the value as JSON (`port=8080`, `tags=["a"]`) or else as a
        /// string; `a.b=1` sets a nested field. Repeatable. Secret fields are refused here:
        /// use `sigil plugin secret`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// An API token with `admin.config`, for a running daemon (default: $SIGIL_TOKEN).
        #[arg(long, env = "SIGIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Store a secret field of a plugin's configuration (one its config schema marks
    /// `secret: true`), encrypted in the database. The value is read from standard input, never
    /// from the command line.
    Secret {
        /// The plugin id.
        name: String,
        /// The field, as its config schema names it (`a.b` for a nested one).
        field: String,
        /// An API token with `admin.config`, for a running daemon (default: $SIGIL_TOKEN).
        #[arg(long, env = "SIGIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Approve a plugin's tools as they are defined now, releasing tools held because a
    /// bridged MCP server changed them since they were approved (`sigil plugin list` shows
    /// what changed). The approval is recorded in the audit log.
    Approve {
        /// The plugin id.
        name: String,
    },
    /// Create a new plugin that builds and passes its own test out of the box.
    New {
        /// The plugin id (kebab-case); also the directory created.
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// List the kinds, tiers and languages that can be scaffolded, and create nothing.
        #[arg(long)]
        list: bool,
        /// What the plugin provides.
        #[arg(long, default_value = "tool")]
        kind: String,
        /// How it is isolated.
        #[arg(long, value_enum, default_value = "wasm")]
        tier: crate::scaffold::Tier,
        /// Its source language.
        #[arg(long, value_enum, default_value = "python")]
        lang: crate::scaffold::Lang,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin directory into the component or executable its manifest names.
    Build {
        /// The plugin directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Install a plugin from a directory: validate it, show what it asks for, record consent.
    Install {
        /// The plugin directory (built: its `execution.entry` must exist).
        dir: PathBuf,
        /// Consent to every capability it requests without asking.
        #[arg(long)]
        yes: bool,
        /// Replace an installed plugin with the same id.
        #[arg(long)]
        force: bool,
    },
    /// Sign a plugin directory: write SIGIL-DIGESTS (every file's SHA-256) and its minisign
    /// signature SIGIL-DIGESTS.minisig.
    Sign {
        /// The plugin directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The minisign secret key (`sigil trust keygen` or `minisign -G`).
        #[arg(long, value_name = "SECRET_KEY_FILE")]
        key: PathBuf,
        /// The environment variable holding an encrypted key's password.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Check a plugin directory's signature against the trust store and its files against the
    /// signed digests; succeeds only when it would load as `verified`.
    Verify {
        /// The plugin directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Validate a plugin directory's manifest, reporting every problem at once.
    Lint {
        /// The plugin directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Print JSON diagnostics.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(home: Option<&Path>, command: PluginCommand, reserved: &[String]) -> Result<ExitCode> {
    match command {
        PluginCommand::Lint { dir, json } => lint(&dir, json, reserved),
        PluginCommand::New {
            name,
            list,
            kind,
            tier,
            lang,
            dir,
        } => {
            let Some(name) = name.filter(|_| !list) else {
                return Ok(crate::scaffold::list());
            };
            if kind != "tool" {
                bail!("only `--kind tool` plugins can be scaffolded in this version, not `{kind}`");
            }
            crate::scaffold::new(&dir, &name, tier, lang)
        }
        PluginCommand::Build { dir } => crate::scaffold::build(&dir),
        PluginCommand::Sign {
            dir,
            key,
            password_env,
        } => crate::trust::sign(&dir, &key, password_env.as_deref()),
        PluginCommand::Verify { dir } => crate::trust::verify(home, &dir),
        PluginCommand::Install { dir, yes, force } => {
            crate::install::install(home, &dir, yes, force, reserved)
        }
        PluginCommand::Disable { name } => {
            let sigil = sigil::open(home)?;
            let summary = sigil.disable(&name)?;
            println!(
                "{name} is {}; it stays so across restarts until `sigil plugin enable {name}`",
                summary.state
            );
            note_running_daemon(sigil.home().root(), &name, "disable");
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Enable { name } => {
            let sigil = sigil::open(home)?;
            let summary = sigil.enable(&name)?;
            println!("{name} is {}", summary.state);
            note_running_daemon(sigil.home().root(), &name, "enable");
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Commands { json } => commands(home, json),
        PluginCommand::Reload { name, token } => reload(home, &name, token.as_deref()),
        PluginCommand::Remove { name, token } => remove(home, &name, token.as_deref()),
        PluginCommand::Config { name, set, token } => {
            crate::config::config(home, &name, &set, token.as_deref())
        }
        PluginCommand::Secret { name, field, token } => {
            crate::config::secret(home, &name, &field, token.as_deref())
        }
        PluginCommand::Approve { name } => {
            let sigil = sigil::open(home)?;
            let held = sigil
                .manager()
                .get(&name)
                .map(|e| e.held())
                .unwrap_or_default();
            for h in &held {
                println!("{name}/{}: {}", h.tool, h.reason);
            }
            let actor = sigil.local_actor(None, None);
            let approval = sigil.approve_tools(&name, &actor)?;
            if approval.approved.is_empty() {
                println!("nothing of {name} was held; its approval is unchanged");
            } else {
                println!(
                    "approved the current definitions of {name}: {}",
                    approval.approved.join(", ")
                );
                note_running_daemon(sigil.home().root(), &name, "approve");
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::List { json } => {
            let sigil = sigil::open(home)?;
            let plugins = sigil.manager().list();
            let failures = sigil.manager().failures();
            let disabled = sigil.disabled();
            if json {
                let plugins = plugins
                    .iter()
                    .map(|p| {
                        let mut value = serde_json::to_value(p)?;
                        value["disabled"] = disabled.contains(&p.id).into();
                        Ok(value)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let value = serde_json::json!({ "plugins": plugins, "failed": failures });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<16} {:<9} {:<9} {:<9} {:<9} SOURCE",
                "ID", "VERSION", "TIER", "STATE", "TRUST"
            );
            for p in &plugins {
                let source = match &p.source {
                    sigil::Source::Builtin => "builtin".to_string(),
                    sigil::Source::Directory(dir) => dir.display().to_string(),
                };
                println!(
                    "{:<16} {:<9} {:<9} {:<9} {:<9} {source}",
                    p.id,
                    p.version,
                    p.tier,
                    p.state.to_string(),
                    p.trust.level()
                );
                if let sigil::Trust::Verified { key, key_id } = &p.trust {
                    println!("    signed by trusted key `{key}` ({key_id})");
                }
                if let Some(error) = &p.error {
                    println!("    error: {error}");
                }
                if disabled.contains(&p.id) {
                    println!(
                        "    disabled: `sigil plugin enable {}` serves it again",
                        p.id
                    );
                }
                for h in &p.held {
                    println!(
                        "    held: {} ({}); `sigil plugin approve {}` releases it",
                        h.tool, h.reason, p.id
                    );
                }
            }
            for f in &failures {
                println!(
                    "{:<16} {:<9} {:<9} {:<9} {:<9} {}",
                    "?",
                    "?",
                    "?",
                    "invalid",
                    "?",
                    f.dir.display()
                );
                for d in &f.diagnostics {
                    println!("    {d}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { name, json } => {
            let sigil = sigil::open(home)?;
            let Some(entry) = sigil.manager().get(&name) else {
                let known: Vec<String> = sigil.manager().list().into_iter().map(|p| p.id).collect();
                bail!("no plugin `{name}`; installed: {}", known.join(", "));
            };
            let summary = entry.summary();
            let disabled = sigil.disabled().contains(&name);
            let tools: Vec<_> = entry.tools().cloned().collect();
            let value = serde_json::json!({
                "summary": summary,
                "disabled": disabled,
                "manifest": entry.manifest(),
                "tools": tools,
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            let m = entry.manifest();
            println!("{} {} ({})", m.id(), m.version(), m.name());
            println!("  {}", m.description());
            println!(
                "  tier {}, state {}{}",
                m.execution().tier,
                summary.state,
                if disabled { " (disabled)" } else { "" }
            );
            println!("  trust {}", summary.trust);
            if let Some(error) = &summary.error {
                println!("  error: {error}");
            }
            println!("  requests:");
            for c in m.requested() {
                println!("    {}  — {}", c.pattern, c.reason);
            }
            if m.requested().is_empty() {
                println!("    nothing");
            }
            for c in m.denied() {
                println!("  denies itself {}  — {}", c.pattern, c.reason);
            }
            println!("  tools:");
            for t in &tools {
                let held = summary.held.iter().find(|h| h.tool == t.name);
                if let Some(h) = held {
                    println!("    {}  HELD ({})  {}", t.name, h.reason, t.description);
                    continue;
                }
                println!("    {}  {}", t.name, t.description);
            }
            if !m.hooks().is_empty() {
                println!("  hooks (lower priority runs first):");
            }
            for h in m.hooks() {
                let timeout = h
                    .timeout_ms
                    .unwrap_or(sigil::DEFAULT_HOOK_TIMEOUT.as_millis() as u64);
                println!(
                    "    {}  priority {}, timeout {timeout} ms",
                    h.event, h.priority
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// This command changed the data directory, not a daemon serving it: says so when one runs.
fn reload(home: Option<&Path>, name: &str, token: Option<&str>) -> Result<ExitCode> {
    let root = sigil::Home::resolve(home)?;
    if let crate::status::Daemon::Running(info) = crate::status::find_daemon(root.root())? {
        let Some(token) = token else {
            bail!(
                "a daemon serves {} at http://{}: pass --token (or set SIGIL_TOKEN) with a token of a user allowed `admin.plugins` so it reloads `{name}`",
                root.root().display(),
                info.address
            );
        };
        let (status, body) =
            crate::status::post(&info, &format!("/v1/plugins/{name}/reload"), token)?;
        if status == 200 {
            println!(
                "the daemon reloaded {name} {}: it is {}",
                body["version"].as_str().unwrap_or("?"),
                body["state"].as_str().unwrap_or("?")
            );
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "the daemon did not reload {name} (HTTP {status}): {}",
            body["message"].as_str().unwrap_or("no message")
        );
    }
    let sigil = sigil::open(home)?;
    let summary = sigil.reload(name)?;
    println!(
        "{name} {} loads from its files and is {}; no daemon runs, so the next start serves it",
        summary.version, summary.state
    );
    Ok(ExitCode::SUCCESS)
}

/// `sigil plugin remove`: through the daemon when one serves the data directory, else on the
/// directory itself (starting no plugin), saying which.
fn remove(home: Option<&Path>, name: &str, token: Option<&str>) -> Result<ExitCode> {
    let root = sigil::Home::resolve(home)?;
    if let crate::status::Daemon::Running(info) = crate::status::find_daemon(root.root())? {
        let Some(token) = token else {
            bail!(
                "a daemon serves {} at http://{}: pass --token (or set SIGIL_TOKEN) with a token of a user allowed `admin.plugins` so it removes `{name}`",
                root.root().display(),
                info.address
            );
        };
        let (status, body) =
            crate::status::send(&info, "DELETE", &format!("/v1/plugins/{name}"), token, None)?;
        if status == 200 {
            println!(
                "{}",
                removed_line(name, body["files_deleted"] == true, "the daemon")
            );
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "the daemon did not remove {name} (HTTP {status}): {}",
            body["message"].as_str().unwrap_or("no message")
        );
    }
    let sigil = sigil::open_inactive(home)?;
    let source = sigil.remove(name)?;
    let deleted = match source {
        sigil::Source::Directory(dir) => {
            sigil_gateway::install::uninstall(sigil.home(), name, &dir)?
        }
        sigil::Source::Builtin => false,
    };
    println!(
        "{}",
        removed_line(
            name,
            deleted,
            "no daemon runs; removed from the data directory"
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn removed_line(name: &str, deleted: bool, by: &str) -> String {
    let files = if deleted {
        "its installed copy deleted"
    } else {
        "its files left where they are (not an installed copy)"
    };
    format!("removed {name}: consent withdrawn, {files} ({by})")
}

fn note_running_daemon(root: &Path, name: &str, action: &str) {
    if let Ok(crate::status::Daemon::Running(info)) = crate::status::find_daemon(root) {
        eprintln!(
            "note: the daemon at {} (pid {}) applies this when it restarts; \
             `POST /v1/plugins/{name}/{action}` applies it now",
            info.address, info.pid
        );
    }
}

fn lint(dir: &Path, json: bool, reserved: &[String]) -> Result<ExitCode> {
    let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let rules = sigil::manifest::Rules {
        reserved_commands: &reserved,
    };
    match sigil::manifest::load_dir_with(dir, &rules) {
        Ok(manifest) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": true, "id": manifest.id().as_str(), "diagnostics": [] })
                );
            } else {
                println!(
                    "{}: ok ({} {})",
                    manifest.file(),
                    manifest.id(),
                    manifest.version()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            if json {
                let diagnostics: Vec<_> = errors.iter().map(|d| serde_json::json!({
                    "file": d.file, "line": d.line, "column": d.column, "pointer": d.pointer,
                    "message": d.message, "value": d.value,
                })).collect();
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "diagnostics": diagnostics })
                );
            } else {
                for d in errors.iter() {
                    eprintln!("{d}");
                }
                eprintln!("{} problem(s) found", errors.len());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn commands(home: Option<&Path>, json: bool) -> Result<ExitCode> {
    let sigil = sigil::open(home)?;
    let commands = sigil.commands();
    if json {
        println!("{}", serde_json::to_string_pretty(&commands)?);
    } else if commands.is_empty() {
        println!("no plugin contributes a command");
    } else {
        for c in &commands {
            let auth = match (&c.spec.require_auth, &c.spec.capability) {
                (true, Some(capability)) => format!("  (authenticated, needs {capability})"),
                _ => String::new(),
            };
            println!(
                "sigil {:<16} {}  [{}/{}]{auth}",
                c.spec.name, c.spec.description, c.plugin, c.spec.tool
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
