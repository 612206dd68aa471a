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
    /// Create a new plugin that builds and passes its own test out of the box.
    New {
        /// The plugin id (kebab-case); also the directory created.
        name: String,
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
            kind,
            tier,
            lang,
            dir,
        } => {
            if kind != "tool" {
                bail!("only `--kind tool` plugins can be scaffolded in this version, not `{kind}`");
            }
            crate::scaffold::new(&dir, &name, tier, lang)
        }
        PluginCommand::Build { dir } => crate::scaffold::build(&dir),
        PluginCommand::Install { dir, yes, force } => {
            crate::install::install(home, &dir, yes, force, reserved)
        }
        PluginCommand::List { json } => {
            let sigil = sigil::open(home)?;
            let plugins = sigil.manager().list();
            let failures = sigil.manager().failures();
            if json {
                let value = serde_json::json!({ "plugins": plugins, "failed": failures });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<16} {:<9} {:<9} {:<9} SOURCE",
                "ID", "VERSION", "TIER", "STATE"
            );
            for p in &plugins {
                let source = match &p.source {
                    sigil::Source::Builtin => "builtin".to_string(),
                    sigil::Source::Directory(dir) => dir.display().to_string(),
                };
                println!(
                    "{:<16} {:<9} {:<9} {:<9} {source}",
                    p.id,
                    p.version,
                    p.tier,
                    p.state.to_string()
                );
                if let Some(error) = &p.error {
                    println!("    error: {error}");
                }
            }
            for f in &failures {
                println!(
                    "{:<16} {:<9} {:<9} {:<9} {}",
                    "?",
                    "?",
                    "?",
                    "invalid",
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
            let tools: Vec<_> = entry.tools().cloned().collect();
            let value = serde_json::json!({
                "summary": summary,
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
            println!("  tier {}, state {}", m.execution().tier, summary.state);
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
                println!("    {}  {}", t.name, t.description);
            }
            Ok(ExitCode::SUCCESS)
        }
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
