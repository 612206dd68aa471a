//! Plugin commands: `sigil NAME ARGS...` subcommands a plugin contributes in its manifest's
//! `[[commands]]`, each run by one of its tools.
//!
//! The arguments are untrusted text headed for a plugin: their total size is limited to
//! [`MAX_COMMAND_ARGS_BYTES`] and control characters are stripped before the plugin sees them.
//! A command marked `require_auth` runs only for an authenticated user who holds the declared
//! capability; that check, like the tool call itself, is decided by the enforcer and recorded.
//! Names Sigil uses itself are reserved at install; a front end dispatches a plugin command
//! only for a name it does not know itself, so no plugin can shadow a built-in command.

use serde::Serialize;
use serde_json::json;
use sigil_audit::{Actor, AuditSink, NewRecord, RecordKind, Verdict};
use sigil_manifest::CommandSpec;
use sigil_policy::{Capability, Decision};

use super::{Invocation, InvokeError, Origin, Runtime};
use crate::enforcer::{Check, Subject};

/// The most argument text a plugin command takes, in bytes, summed over its arguments as
/// given (before control characters are stripped).
pub const MAX_COMMAND_ARGS_BYTES: usize = 4096;

/// A command some plugin contributes.
#[derive(Debug, Clone, Serialize)]
pub struct PluginCommand {
    /// The plugin contributing it.
    pub plugin: String,
    /// The command as its manifest declares it.
    #[serde(flatten)]
    pub spec: CommandSpec,
}

/// Who runs a command.
#[derive(Debug, Clone, Copy)]
pub struct CommandCaller<'a> {
    /// On whose behalf.
    pub actor: &'a Actor,
    /// Whether the actor's identity was proven (a valid API token), rather than assumed
    /// (the local command line's default user).
    pub authenticated: bool,
}

/// Why a plugin command did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No plugin contributes the command.
    #[error("`{name}` is not a sigil command{}", available_hint(available))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every plugin command there is.
        available: Vec<String>,
    },
    /// Several plugins contribute the command, so none of them is run.
    #[error(
        "command `{name}` is contributed by several plugins ({}); disable all but one with `sigil plugin disable`",
        plugins.join(", ")
    )]
    Ambiguous {
        /// The command.
        name: String,
        /// The plugins contributing it.
        plugins: Vec<String>,
    },
    /// An argument is not text.
    #[error("argument {index} of `sigil {name}` is not valid UTF-8 text")]
    NotText {
        /// The command.
        name: String,
        /// Which argument, from 1.
        index: usize,
    },
    /// The arguments are too long.
    #[error(
        "the arguments of `sigil {name}` are {bytes} bytes; a plugin command takes at most {MAX_COMMAND_ARGS_BYTES}"
    )]
    TooLong {
        /// The command.
        name: String,
        /// Their size.
        bytes: usize,
    },
    /// The command needs an authenticated user and the caller is not one. Recorded.
    #[error(
        "command `{name}` of plugin `{plugin}` runs only for an authenticated user: set SIGIL_TOKEN to a token from `sigil token create`"
    )]
    Unauthenticated {
        /// The command.
        name: String,
        /// The plugin.
        plugin: String,
    },
    /// The command's declared capability cannot be checked: it is a pattern, not one
    /// capability.
    #[error(
        "command `{name}` of plugin `{plugin}` requires `{capability}`, which is a pattern; a command must name one capability"
    )]
    BadCapability {
        /// The command.
        name: String,
        /// The plugin.
        plugin: String,
        /// The declared capability.
        capability: String,
    },
    /// The caller lacks the command's capability. Recorded by the enforcer.
    #[error("command `{name}` denied: {rule}")]
    Denied {
        /// The command.
        name: String,
        /// The rule that decided.
        rule: String,
    },
    /// The tool running the command failed, or the call was refused.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// A refusal could not be recorded.
    #[error("the refusal could not be recorded in the audit log: {0}")]
    Audit(String),
}

fn available_hint(available: &[String]) -> String {
    if available.is_empty() {
        "; see `sigil --help`".to_string()
    } else {
        format!(
            "; plugin commands: {} (see `sigil --help` for sigil's own)",
            available.join(", ")
        )
    }
}

/// Checks a command's arguments and cleans them: rejects non-text and oversized arguments,
/// and strips every control character (terminal escapes, newlines, NUL) from what remains.
///
/// # Errors
/// [`CommandError::NotText`] or [`CommandError::TooLong`].
pub fn clean_command_args(
    name: &str,
    args: &[std::ffi::OsString],
) -> Result<Vec<String>, CommandError> {
    let bytes: usize = args.iter().map(|a| a.len()).sum();
    if bytes > MAX_COMMAND_ARGS_BYTES {
        return Err(CommandError::TooLong {
            name: name.to_string(),
            bytes,
        });
    }
    args.iter()
        .enumerate()
        .map(|(i, arg)| {
            let text = arg.to_str().ok_or_else(|| CommandError::NotText {
                name: name.to_string(),
                index: i + 1,
            })?;
            Ok(text.chars().filter(|c| !c.is_control()).collect())
        })
        .collect()
}

impl Runtime {
    /// Every command the discovered plugins contribute, whatever their state, sorted by name.
    pub fn commands(&self) -> Vec<PluginCommand> {
        let mut commands: Vec<PluginCommand> = self
            .manager
            .entries()
            .iter()
            .flat_map(|entry| {
                let plugin = entry.manifest().id().to_string();
                entry
                    .manifest()
                    .commands()
                    .iter()
                    .map(move |spec| PluginCommand {
                        plugin: plugin.clone(),
                        spec: spec.clone(),
                    })
            })
            .collect();
        commands.sort_by(|a, b| (&a.spec.name, &a.plugin).cmp(&(&b.spec.name, &b.plugin)));
        commands
    }

    /// Runs plugin command `name` for `caller`: its tool is called with
    /// `{"args": [...]}` through the whole dispatch path ([`Runtime::invoke`]).
    ///
    /// `args` must already be cleaned by [`clean_command_args`].
    ///
    /// # Errors
    /// [`CommandError`]: an unknown or ambiguous name, a caller who is not authenticated or
    /// lacks the declared capability (both recorded), or the tool call's own error.
    pub async fn run_command(
        &self,
        caller: CommandCaller<'_>,
        name: &str,
        args: Vec<String>,
    ) -> Result<Invocation, CommandError> {
        let commands = self.commands();
        let matching: Vec<&PluginCommand> =
            commands.iter().filter(|c| c.spec.name == name).collect();
        let command = match matching.as_slice() {
            [] => {
                let mut available: Vec<String> =
                    commands.iter().map(|c| c.spec.name.clone()).collect();
                available.dedup();
                return Err(CommandError::Unknown {
                    name: name.to_string(),
                    available,
                });
            }
            [one] => *one,
            several => {
                return Err(CommandError::Ambiguous {
                    name: name.to_string(),
                    plugins: several.iter().map(|c| c.plugin.clone()).collect(),
                });
            }
        };
        if command.spec.require_auth {
            self.authorise_command(caller, command).await?;
        }
        let target = format!("{}/{}", command.plugin, command.spec.tool);
        let origin = if command.spec.require_auth {
            Origin::Command
        } else {
            Origin::Direct
        };
        Ok(self
            .invoke_as(caller.actor, &target, json!({ "args": args }), origin)
            .await?)
    }

    /// The `require_auth` check: an authenticated caller holding the declared capability.
    async fn authorise_command(
        &self,
        caller: CommandCaller<'_>,
        command: &PluginCommand,
    ) -> Result<(), CommandError> {
        let name = &command.spec.name;
        let declared = command
            .spec
            .capability
            .as_ref()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let capability = Capability::parse(&declared).map_err(|_| CommandError::BadCapability {
            name: name.clone(),
            plugin: command.plugin.clone(),
            capability: declared.clone(),
        })?;
        if !caller.authenticated {
            let record = NewRecord {
                kind: RecordKind::Decision,
                actor: caller.actor.clone(),
                plugin: Some(command.plugin.clone()),
                plugin_version: None,
                capability: Some(capability.to_string()),
                decision: Some(Verdict::Deny),
                rule: format!("command `{name}` requires an authenticated user"),
                call_id: None,
                duration_us: None,
                outcome: None,
                steps: Vec::new(),
            };
            self.audit
                .submit(record)
                .await
                .map_err(|e| CommandError::Audit(e.to_string()))?;
            return Err(CommandError::Unauthenticated {
                name: name.clone(),
                plugin: command.plugin.clone(),
            });
        }
        let check = Check {
            subject: Subject::CallInto(&command.plugin),
            capability: &capability,
            actor: caller.actor,
            call_id: None,
        };
        match self.enforcer.check(&check).await {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { rule } => Err(CommandError::Denied {
                name: name.clone(),
                rule: rule.to_string(),
            }),
        }
    }
}
