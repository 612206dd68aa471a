//! The `sigil` command line.

#![forbid(unsafe_code)]

mod approvals;
mod audit;
mod command;
mod config;
mod install;
mod mcp;
mod plugin;
mod scaffold;
mod serve;
mod status;
mod token;
mod trust;

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use sigil::Runtime;
use sigil::policy::Decision;

/// The allocator: a daemon call allocates and frees many small objects on several threads at
/// once, where glibc's allocator spent a fifth of the daemon's time (measured with `perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sigil: a secure plugin runtime for AI agents.
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about, propagate_version = true)]
struct Cli {
    /// Data directory (default: $SIGIL_HOME, else the platform data directory).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Show diagnostics on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// List, approve and deny tool calls a running daemon holds for a person's approval.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// List and call tools.
    #[command(subcommand)]
    Tool(ToolCommand),
    /// The plugin manifest format.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Ask what the policy decides.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read and check the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Serve the running plugins' tools to an MCP client on stdin/stdout.
    Mcp(mcp::McpArgs),
    /// Run the daemon: the HTTP API, events and MCP, until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Show whether a daemon runs, and the plugins and their states.
    Status(status::StatusArgs),
    /// Check this machine and data directory; exits non-zero when a check fails.
    Doctor,
    /// Manage API tokens for `sigil serve`.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage the keys whose signatures make plugins `verified`.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// A command a plugin contributes (`[[commands]]` in its manifest); see
    /// `sigil plugin commands`.
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(Debug, Subcommand)]
enum ToolCommand {
    /// List the tools of every running plugin.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a tool through the enforcer and the audit log.
    Invoke {
        /// The tool, as PLUGIN/TOOL (e.g. `text/sha256`).
        target: String,
        /// Arguments as JSON; `@FILE` reads a file, `-` reads standard input.
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ManifestCommand {
    /// Print the JSON Schema of plugin manifests (for editors).
    Schema,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Explain whether a plugin may use a capability, and which rule decides.
    Explain {
        /// The capability, e.g. `fs.read:/data/report.txt`.
        capability: String,
        /// The plugin acting.
        #[arg(long)]
        plugin: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

/// On whose behalf a command acts.
#[derive(Debug, Args)]
struct ActorArgs {
    /// User (default: `[defaults] user` in sigil.toml).
    #[arg(long)]
    user: Option<String>,
    /// Workspace (default: `[defaults] workspace` in sigil.toml).
    #[arg(long)]
    workspace: Option<String>,
}

fn main() -> ExitCode {
    // The process tier's sandboxes start this same binary as their entrypoint.
    if let Some(code) = sigil_sandbox::init::dispatch() {
        return code;
    }
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let home = cli.home.as_deref();
    match cli.command {
        Command::Plugin(command) => plugin::run(home, command, &reserved_commands()),
        Command::Approvals(command) => approvals::run(home, command),
        // Reading the log and explaining a decision start no plugin.
        Command::Audit(command) => audit::run(&sigil::open_inactive(home)?, command),
        Command::Mcp(args) => mcp::run(home, args),
        Command::Serve(args) => serve::run(home, args, reserved_commands()),
        Command::Status(args) => status::status(home, args),
        Command::Doctor => status::doctor(home),
        Command::Token(command) => token::run(home, command),
        Command::External(words) => command::run(home, words),
        Command::Trust(command) => trust::run(home, command),
        Command::Manifest(ManifestCommand::Schema) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sigil::manifest::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Explain {
            capability,
            plugin,
            actor,
        }) => {
            let sigil = sigil::open_inactive(home)?;
            let actor = sigil.local_actor(actor.user.as_deref(), actor.workspace.as_deref());
            let decision = sigil.explain(&capability, &plugin, &actor)?;
            let who = format!(
                "plugin `{plugin}` for user `{}` in workspace `{}`",
                actor.user.as_deref().unwrap_or("(none)"),
                actor.workspace.as_deref().unwrap_or("(none)")
            );
            match decision {
                Decision::Allow { rule } => {
                    println!("allow  {capability}  ({who})\nrule:  {rule}");
                    Ok(ExitCode::SUCCESS)
                }
                Decision::Deny { rule } => {
                    println!("deny   {capability}  ({who})\nrule:  {rule}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Tool(ToolCommand::List { json }) => {
            let sigil = open(home)?;
            let tools = sigil.tools();
            if json {
                println!("{}", serde_json::to_string_pretty(&tools)?);
            } else if tools.is_empty() {
                println!("no tools: no running plugin provides one (see `sigil plugin list`)");
            } else {
                let width = tools
                    .iter()
                    .map(|t| t.plugin.len() + t.tool.name.len() + 1)
                    .max()
                    .unwrap_or(0);
                for t in &tools {
                    println!(
                        "{:width$}  {}",
                        format!("{}/{}", t.plugin, t.tool.name),
                        t.tool.description
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tool(ToolCommand::Invoke {
            target,
            input,
            actor,
        }) => {
            let input = read_input(&input)?;
            let sigil = open(home)?;
            // Nobody can approve a call held by this one-off process: a call needing approval
            // is refused at once (and recorded) instead of waiting out the timeout.
            sigil.set_approval_mode(sigil::ApprovalMode::Refuse);
            let actor = sigil.local_actor(actor.user.as_deref(), actor.workspace.as_deref());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let result = runtime.block_on(sigil.invoke(&actor, &target, input));
            match result {
                Ok(invocation) => {
                    println!("{}", serde_json::to_string_pretty(&invocation.output)?);
                    eprintln!(
                        "call {} took {:.1?}",
                        invocation.call_id, invocation.duration
                    );
                    Ok(ExitCode::SUCCESS)
                }
                // The code is the one HTTP and MCP give for the same failure.
                Err(error) => bail!("{target}: {error} [{}]", error.code()),
            }
        }
    }
}

/// Subcommand names this command line uses itself, which plugins may not contribute. Derived
/// from the command definition, so a new subcommand is reserved the moment it exists.
fn reserved_commands() -> Vec<String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut names: Vec<String> = cli
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()))
        .map(str::to_string)
        .collect();
    names.push("help".to_string());
    names
}

fn open(home: Option<&std::path::Path>) -> Result<Runtime> {
    let sigil = sigil::open(home)?;
    let failures = sigil.manager().failures();
    if !failures.is_empty() {
        tracing::warn!(
            count = failures.len(),
            "some plugins did not load; see `sigil plugin list`"
        );
    }
    Ok(sigil)
}

fn read_input(input: &str) -> Result<Value> {
    let text = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading --input from standard input")?;
        text
    } else if let Some(file) = input.strip_prefix('@') {
        std::fs::read_to_string(file).with_context(|| format!("reading --input from {file}"))?
    } else {
        input.to_string()
    };
    serde_json::from_str(&text).with_context(|| format!("--input is not valid JSON: {text}"))
}
