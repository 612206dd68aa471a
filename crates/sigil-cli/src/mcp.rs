//! `sigil mcp`: the MCP server on standard input and output, for an MCP client that starts
//! Sigil as a subprocess. Standard output carries the protocol only; diagnostics go to
//! standard error.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

/// Who the MCP client acts as.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// User every call runs as (default: `[defaults] user` in sigil.toml).
    #[arg(long)]
    user: Option<String>,
    /// Workspace every call runs in (default: `[defaults] workspace` in sigil.toml).
    #[arg(long)]
    workspace: Option<String>,
}

pub fn run(home: Option<&Path>, args: McpArgs) -> Result<ExitCode> {
    let sigil = Arc::new(crate::open(home)?);
    // Nobody can reach this process to approve a held call: refuse such calls at once,
    // recorded, rather than wait out the timeout. `sigil serve` (MCP at /mcp) holds them.
    sigil.set_approval_mode(sigil::ApprovalMode::Refuse);
    let mut actor = sigil.local_actor(args.user.as_deref(), args.workspace.as_deref());
    actor.channel = Some(sigil_mcp::CHANNEL.to_string());
    tracing::info!(
        user = ?actor.user,
        workspace = ?actor.workspace,
        tools = sigil.tools().len(),
        "serving mcp on stdio"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Every request would be refused: say so once, recorded, instead of serving refusals.
    if let Err(rule) = runtime.block_on(sigil.enforcer().check_membership(&actor)) {
        anyhow::bail!("cannot serve mcp: {rule}");
    }
    runtime.block_on(sigil_mcp::serve_stdio(sigil, actor))?;
    Ok(ExitCode::SUCCESS)
}
