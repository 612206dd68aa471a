//! `sigil approvals`: the calls a running daemon holds for a person's approval
//! (`[approvals]` in sigil.toml), listed and decided through its API. Pending approvals live in
//! the daemon that holds the calls, so these commands need it running and a token.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use sigil_gateway::DaemonInfo;

use crate::status::Daemon;

/// `sigil approvals ...`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List the calls waiting for a decision (all of them for a user holding
    /// `approvals.decide`, else the user's own).
    List {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting call: it goes on. Recorded in the audit log.
    Approve {
        /// The approval id, from `sigil approvals list`, or a unique prefix of it (at least 4
        /// characters).
        id: String,
        /// Why, recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Deny a waiting call: it fails without running. Recorded in the audit log.
    Deny {
        /// The approval id, from `sigil approvals list`, or a unique prefix of it (at least 4
        /// characters).
        id: String,
        /// Why, recorded with the decision and told to the caller.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

/// How to reach the daemon.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// An API token; deciding needs a user allowed `approvals.decide` (default: $SIGIL_TOKEN).
    #[arg(long, env = "SIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub fn run(home: Option<&Path>, command: ApprovalsCommand) -> Result<ExitCode> {
    let home = sigil::Home::resolve(home)?;
    match command {
        ApprovalsCommand::List { daemon, json } => {
            let (info, token) = daemon_and_token(home.root(), daemon)?;
            let (status, body) = crate::status::get(&info, "/v1/approvals", Some(&token))?;
            if status != 200 {
                bail!(
                    "the daemon did not list approvals (HTTP {status}): {}",
                    message(&body)
                );
            }
            let approvals = body["approvals"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&approvals)?);
            } else if approvals.is_empty() {
                println!("no calls are waiting for approval");
            } else {
                let now = now_ms();
                for a in &approvals {
                    print_pending(a, now);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve { id, reason, daemon } => {
            decide(home.root(), daemon, &id, "approve", reason)
        }
        ApprovalsCommand::Deny { id, reason, daemon } => {
            decide(home.root(), daemon, &id, "deny", reason)
        }
    }
}

fn decide(
    root: &Path,
    daemon: DaemonArgs,
    id: &str,
    action: &str,
    reason: Option<String>,
) -> Result<ExitCode> {
    let (info, token) = daemon_and_token(root, daemon)?;
    let id = &resolve_id(&info, &token, id)?;
    let body = reason.map(|reason| serde_json::json!({ "reason": reason }));
    let (status, answer) = crate::status::post_json(
        &info,
        &format!("/v1/approvals/{id}/{action}"),
        &token,
        body.as_ref(),
    )?;
    if status != 200 {
        bail!(
            "the daemon did not {action} `{id}` (HTTP {status}): {}",
            message(&answer)
        );
    }
    let effect = if action == "approve" {
        "goes on"
    } else {
        "fails without running"
    };
    println!(
        "{}: call {} {effect}",
        answer["rule"].as_str().unwrap_or(action),
        answer["call_id"].as_str().unwrap_or("?"),
    );
    Ok(ExitCode::SUCCESS)
}

/// The waiting approval `id` names: itself, or the one pending approval whose id starts with
/// it (at least 4 characters). An id that names none is sent as given, so the daemon says what
/// became of it (decided already, timed out, never there).
fn resolve_id(info: &DaemonInfo, token: &str, id: &str) -> Result<String> {
    if id.chars().count() < 4 {
        return Ok(id.to_string());
    }
    let Ok((200, body)) = crate::status::get(info, "/v1/approvals", Some(token)) else {
        return Ok(id.to_string());
    };
    let pending: Vec<&str> = body["approvals"]
        .as_array()
        .map(|all| all.iter().filter_map(|a| a["id"].as_str()).collect())
        .unwrap_or_default();
    if pending.contains(&id) {
        return Ok(id.to_string());
    }
    let matching: Vec<&str> = pending
        .into_iter()
        .filter(|pending| pending.starts_with(id))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Ok(id.to_string()),
        several => bail!(
            "`{id}` is the start of {} waiting approvals ({}); give more of the id",
            several.len(),
            several.join(", ")
        ),
    }
}

fn daemon_and_token(root: &Path, args: DaemonArgs) -> Result<(DaemonInfo, String)> {
    let info = match crate::status::find_daemon(root)? {
        Daemon::Running(info) => info,
        Daemon::Stale(info) => bail!(
            "no daemon answers at {} (pid {} in {} is gone): pending approvals live in the daemon holding the calls; start it with `sigil serve`",
            info.address,
            info.pid,
            DaemonInfo::path(root).display()
        ),
        Daemon::None => bail!(
            "no daemon serves {}: pending approvals live in the daemon holding the calls; start it with `sigil serve`",
            root.display()
        ),
    };
    let Some(token) = args.token else {
        bail!(
            "a daemon serves {} at http://{}: pass --token (or set SIGIL_TOKEN) with a token of a user allowed `approvals.decide` (`sigil token create --user NAME`)",
            root.display(),
            info.address
        );
    };
    Ok((info, token))
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("no message")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn print_pending(a: &Value, now: i64) {
    let seconds = |ms: i64| (ms.max(0) + 999) / 1000;
    println!(
        "{}  {}/{}  user={} ws={}  waiting {}s, denied in {}s unless decided",
        a["id"].as_str().unwrap_or("?"),
        a["plugin"].as_str().unwrap_or("?"),
        a["tool"].as_str().unwrap_or("?"),
        a["actor"]["user"].as_str().unwrap_or("-"),
        a["actor"]["workspace"].as_str().unwrap_or("-"),
        (now - a["created_ms"].as_i64().unwrap_or(now)).max(0) / 1000,
        seconds(a["deadline_ms"].as_i64().unwrap_or(now) - now),
    );
    // Control characters could forge or hide lines of what the approver reads.
    let reason: String = a["reason"]
        .as_str()
        .unwrap_or("-")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    println!("    why:   {reason}");
    println!("    call:  {}", a["call_id"].as_str().unwrap_or("-"));
    println!("    input: {}", a["input"]);
}
