//! `sigil audit …`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sigil::Runtime;
use sigil::audit::{AuditLog, Checkpoint, Filter, Record, Verdict};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List records, oldest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Export records as JSON lines.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check the keyed chain, its head and every stored checkpoint; names the first record
    /// edited, deleted or reordered.
    Verify {
        /// Also check against this exported checkpoint (kept elsewhere): the chain up to its
        /// record must still yield its signed head.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain head now (see `checkpoint export` to keep one elsewhere).
    Checkpoint {
        #[command(subcommand)]
        action: Option<CheckpointCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Write a signed checkpoint with its public key as JSON, to keep somewhere the database's
    /// attacker cannot write. Signs one of the head now unless `--seq` picks a stored one.
    Export {
        /// Write to this file instead of standard output.
        file: Option<PathBuf>,
        /// Export the stored checkpoint at this record.
        #[arg(long)]
        seq: Option<u64>,
    },
    /// List the stored checkpoints.
    List,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this plugin.
    #[arg(long)]
    plugin: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only `allow` or `deny` decisions.
    #[arg(long)]
    decision: Option<Verdict>,
    /// Only since this time: RFC 3339 (`2026-11-23T10:00:00Z`) or an age (`15m`, `2h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Only records of this call.
    #[arg(long)]
    call: Option<String>,
}

impl FilterArgs {
    fn filter(&self, limit: Option<usize>) -> Result<Filter> {
        Ok(Filter {
            plugin: self.plugin.clone(),
            user: self.user.clone(),
            decision: self.decision,
            kind: None,
            since: self
                .since
                .as_deref()
                .map(sigil::audit::parse_since)
                .transpose()?,
            call_id: self.call.clone(),
            limit,
        })
    }
}

pub fn run(sigil: &Runtime, command: AuditCommand) -> Result<ExitCode> {
    let log = sigil.audit();
    match command {
        AuditCommand::List {
            filter,
            limit,
            json,
        } => {
            let records = log.query(&filter.filter(Some(limit))?)?;
            for r in &records {
                if json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    println!("{}", line(r));
                }
            }
            if !json && records.is_empty() {
                println!("no records match");
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { filter, output } => {
            let filter = filter.filter(None)?;
            let count = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    let count = log.export(&filter, &mut out)?;
                    std::io::Write::flush(&mut out)?;
                    count
                }
                None => log.export(&filter, &mut std::io::stdout().lock())?,
            };
            eprintln!("exported {count} record(s)");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { checkpoint } => verify(log, checkpoint),
        AuditCommand::Checkpoint { action } => checkpoint(log, action),
    }
}

fn verify(log: &AuditLog, checkpoint: Option<PathBuf>) -> Result<ExitCode> {
    let kept = checkpoint
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading checkpoint {}", path.display()))?;
            let parsed = Checkpoint::from_json(&text)
                .with_context(|| format!("checkpoint {}", path.display()))?;
            Ok::<_, anyhow::Error>((path, parsed))
        })
        .transpose()?;
    let report = match &kept {
        Some((path, kept)) => log
            .verify_checkpoint(kept)
            .with_context(|| format!("checkpoint {}", path.display()))?,
        None => log.verify()?,
    };
    match report.problem {
        None => {
            println!(
                "ok: {} record(s), hash chain intact ({})",
                report.records,
                log.path().display()
            );
            if let Some((path, kept)) = &kept {
                println!(
                    "ok: matches the checkpoint at record {} ({})",
                    kept.seq,
                    path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            println!(
                "TAMPERED: {problem} ({} record(s) checked, {})",
                report.records,
                log.path().display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn checkpoint(log: &AuditLog, action: Option<CheckpointCommand>) -> Result<ExitCode> {
    match action {
        None => {
            let checkpoint = log.checkpoint()?;
            println!(
                "checkpoint at record {}: head {}\nsigned {} by {}",
                checkpoint.seq,
                checkpoint.head,
                time(checkpoint.time_ms),
                checkpoint.public_key
            );
        }
        Some(CheckpointCommand::List) => {
            let stored = log.checkpoints()?;
            for checkpoint in &stored {
                println!(
                    "{:>8} {} {}",
                    checkpoint.seq,
                    time(checkpoint.time_ms),
                    checkpoint.head
                );
            }
            if stored.is_empty() {
                println!("no checkpoints");
            }
        }
        Some(CheckpointCommand::Export { file, seq }) => {
            let checkpoint = match seq {
                None => log.checkpoint()?,
                Some(seq) => log
                    .checkpoints()?
                    .into_iter()
                    .find(|c| c.seq == seq)
                    .with_context(|| {
                        format!("no stored checkpoint at record {seq}; see `sigil audit checkpoint list`")
                    })?,
            };
            let json = checkpoint.to_json();
            match file {
                Some(path) => {
                    std::fs::write(&path, json)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "exported the checkpoint at record {} to {}",
                        checkpoint.seq,
                        path.display()
                    );
                }
                None => print!("{json}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn time(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

fn line(r: &Record) -> String {
    let time = time(r.time_ms);
    let d = &r.record;
    let verdict = match (d.decision, &d.outcome) {
        (Some(v), _) => v.to_string(),
        (None, Some(o)) if o == "ok" => "ok".into(),
        (None, Some(_)) => "error".into(),
        (None, None) => d.kind.to_string(),
    };
    let mut text = format!(
        "{:>6} {time} {verdict:<5} {} {} user={} ws={}",
        r.seq,
        d.plugin.as_deref().unwrap_or("-"),
        d.capability.as_deref().unwrap_or("-"),
        d.actor.user.as_deref().unwrap_or("-"),
        d.actor.workspace.as_deref().unwrap_or("-"),
    );
    if let Some(us) = d.duration_us {
        text.push_str(&format!(" {:.1}ms", us as f64 / 1000.0));
    }
    text.push_str(&format!("\n       {}", d.rule));
    if !d.steps.is_empty() {
        let steps: Vec<String> = d.steps.iter().map(ToString::to_string).collect();
        text.push_str(&format!("\n       steps: {}", steps.join("; ")));
    }
    if let Some(outcome) = d.outcome.as_deref().filter(|o| *o != "ok") {
        text.push_str(&format!("\n       {outcome}"));
    }
    text
}
