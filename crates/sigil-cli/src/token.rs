//! `sigil token …`: API tokens for `sigil serve`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sigil_gateway::TokenStore;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token acting as a user of sigil.toml. It is printed once and stored only as a
    /// hash.
    Create {
        /// The user of sigil.toml the token acts as.
        #[arg(long)]
        user: String,
        /// A note to recognise it by in `sigil token list`.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (or a unique prefix of it, at least 4 digits).
    Revoke {
        /// The token id from `sigil token list`.
        id: String,
    },
}

pub fn run(home: Option<&Path>, command: TokenCommand) -> Result<ExitCode> {
    let home = sigil::Home::resolve(home)?;
    let store = TokenStore::open(&home.database_path())?;
    match command {
        TokenCommand::Create { user, label } => {
            let config = sigil::Config::load(&home.config_path())?;
            if !config.users().contains_key(&user) {
                let known: Vec<&str> = config.users().keys().map(String::as_str).collect();
                bail!(
                    "no user `{user}` in {}; users: {}. Add a [users.{user}] table first",
                    home.config_path().display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            let token = store
                .create(&user, label.as_deref())
                .context("creating the token")?;
            println!("{}", token.secret);
            eprintln!(
                "token {} for user `{user}`: store it now, it is not shown again.\n\
                 Send it as `Authorization: Bearer <token>`; revoke it with `sigil token revoke {}`.",
                token.info.id, token.info.id
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { json } => {
            let tokens = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(ExitCode::SUCCESS);
            }
            if tokens.is_empty() {
                println!("no tokens; create one with `sigil token create --user NAME`");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<13} {:<16} {:<25} {:<8} LABEL",
                "ID", "USER", "CREATED", "STATE"
            );
            for t in &tokens {
                let created = std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(t.created_ms.max(0) as u64);
                println!(
                    "{:<13} {:<16} {:<25} {:<8} {}",
                    t.id,
                    t.user,
                    humantime::format_rfc3339_seconds(created).to_string(),
                    if t.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    t.label.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { id } => match store.revoke(&id)? {
            Some(token) => {
                println!("revoked token {} of user `{}`", token.id, token.user);
                Ok(ExitCode::SUCCESS)
            }
            None => bail!(
                "no active token matches `{id}` (or the prefix matches several); see `sigil token list`"
            ),
        },
    }
}
