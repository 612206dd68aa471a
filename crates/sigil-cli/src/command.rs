//! `sigil NAME ARGS...` for a command a plugin contributes.
//!
//! Clap matches Sigil's own subcommands first, so a plugin can never shadow one; only an
//! unknown name reaches here. The arguments are checked and cleaned
//! ([`sigil::clean_command_args`]) before the plugin sees them. The caller is authenticated
//! by `SIGIL_TOKEN` when set (the plugin's own arguments follow the name, so no flag can
//! carry it), else it is the local default user, which is never an authenticated one.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sigil::{CommandCaller, clean_command_args};

pub fn run(home: Option<&Path>, mut words: Vec<OsString>) -> Result<ExitCode> {
    if words.is_empty() {
        bail!("no command given; see `sigil --help`");
    }
    let name = words.remove(0);
    let Some(name) = name.to_str().map(str::to_string) else {
        bail!("the command name is not valid UTF-8 text; see `sigil --help`");
    };
    let args = clean_command_args(&name, &words)?;
    let sigil = sigil::open(home)?;
    // Nobody can reach this one-off process to approve a call: one that needs a person's
    // approval is refused at once (and recorded) rather than left waiting for its timeout.
    sigil.set_approval_mode(sigil::ApprovalMode::Refuse);
    let token = std::env::var("SIGIL_TOKEN").ok().filter(|t| !t.is_empty());
    let actor = match &token {
        Some(secret) => {
            let store = sigil_gateway::TokenStore::open(&sigil.home().database_path())?;
            let info = store
                .authenticate(secret.trim())
                .context("checking SIGIL_TOKEN")?
                .ok_or_else(|| {
                    anyhow::anyhow!("SIGIL_TOKEN is unknown or revoked; see `sigil token list`")
                })?;
            if !sigil.config().users().contains_key(&info.user) {
                bail!(
                    "SIGIL_TOKEN acts as user `{}`, who is no longer in sigil.toml",
                    info.user
                );
            }
            sigil.local_actor(Some(&info.user), None)
        }
        None => sigil.local_actor(None, None),
    };
    let caller = CommandCaller {
        actor: &actor,
        authenticated: token.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let invocation = runtime.block_on(sigil.run_command(caller, &name, args))?;
    match &invocation.output {
        Value::String(text) => print!("{}", printable(text)),
        other => println!("{}", serde_json::to_string_pretty(other)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// A plugin's text with control characters other than newline and tab removed, so it cannot
/// drive the terminal (escape sequences, carriage-return overwrites).
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn terminal_escapes_are_removed_from_plugin_text() {
        assert_eq!(
            printable("ok\x1b[2J\rdone\n\tnext\x07"),
            "ok[2Jdone\n\tnext"
        );
    }
}
