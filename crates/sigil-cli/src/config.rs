//! `sigil plugin config` and `sigil plugin secret`: a plugin's configuration, shown with its
//! secret fields redacted and changed through the running daemon (so the change is live) or,
//! without one, in the data directory's files.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::Value;
use sigil::SecretValue;
use sigil_gateway::DaemonInfo;

use crate::status::{Daemon, find_daemon, send};

/// Shows plugin `name`'s configuration, or applies `sets` to it.
pub fn config(
    home: Option<&Path>,
    name: &str,
    sets: &[String],
    token: Option<&str>,
) -> Result<ExitCode> {
    let root = sigil::Home::resolve(home)?;
    if let Daemon::Running(info) = find_daemon(root.root())? {
        let token = need_token(&info, root.root(), name, token)?;
        let mut current = daemon_config(&info, name, token)?;
        if sets.is_empty() {
            println!("{}", serde_json::to_string_pretty(&current)?);
            return Ok(ExitCode::SUCCESS);
        }
        let secret_fields = daemon_secret_fields(&info, name, token)?;
        apply(&mut current, sets, &secret_fields, name)?;
        let (status, body) = send(
            &info,
            "PUT",
            &format!("/v1/plugins/{name}/config"),
            token,
            Some(&current),
        )?;
        if status != 200 {
            bail!(
                "the daemon refused the change (HTTP {status}): {}",
                message(&body)
            );
        }
        println!("the daemon put the new configuration of {name} in force");
        return Ok(ExitCode::SUCCESS);
    }
    let sigil = sigil::open(home)?;
    let mut current = sigil.plugin_config_redacted(name)?;
    if sets.is_empty() {
        println!("{}", serde_json::to_string_pretty(&current)?);
        return Ok(ExitCode::SUCCESS);
    }
    let secret_fields = sigil
        .manager()
        .get(name)
        .map(|e| e.manifest().secret_fields().to_vec())
        .unwrap_or_default();
    apply(&mut current, sets, &secret_fields, name)?;
    let actor = sigil.local_actor(None, None);
    sigil.update_plugin_config(name, current, &actor)?;
    println!(
        "the configuration of {name} is written to {}; no daemon runs, so its next start uses it",
        sigil.home().config_path().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a secret value from standard input and stores it as plugin `name`'s field `field`.
pub fn secret(
    home: Option<&Path>,
    name: &str,
    field: &str,
    token: Option<&str>,
) -> Result<ExitCode> {
    let root = sigil::Home::resolve(home)?;
    let daemon = match find_daemon(root.root())? {
        Daemon::Running(info) => Some((
            need_token(&info, root.root(), name, token)?.to_string(),
            info,
        )),
        _ => None,
    };
    let value = read_secret(name, field)?;
    if let Some((token, info)) = daemon {
        let mut current = daemon_config(&info, name, &token)?;
        set_path(
            &mut current,
            field,
            Value::String(value.expose().to_string()),
        );
        let (status, body) = send(
            &info,
            "PUT",
            &format!("/v1/plugins/{name}/config"),
            &token,
            Some(&current),
        )?;
        if status != 200 {
            bail!(
                "the daemon refused the secret (HTTP {status}): {}",
                message(&body)
            );
        }
        println!("the daemon stored {name}'s secret field `{field}` encrypted; it is in force");
        return Ok(ExitCode::SUCCESS);
    }
    let sigil = sigil::open(home)?;
    let actor = sigil.local_actor(None, None);
    sigil.set_plugin_secret(name, field, value, &actor)?;
    println!(
        "stored {name}'s secret field `{field}` encrypted; no daemon runs, so its next start uses it"
    );
    Ok(ExitCode::SUCCESS)
}

fn need_token<'a>(
    info: &DaemonInfo,
    root: &Path,
    name: &str,
    token: Option<&'a str>,
) -> Result<&'a str> {
    token.ok_or_else(|| {
        anyhow::anyhow!(
            "a daemon serves {} at http://{}: pass --token (or set SIGIL_TOKEN) with a token of a user allowed `admin.config` so it changes `{name}`'s configuration",
            root.display(),
            info.address
        )
    })
}

fn message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or("no message")
}

fn daemon_config(info: &DaemonInfo, name: &str, token: &str) -> Result<Value> {
    let (status, body) = send(
        info,
        "GET",
        &format!("/v1/plugins/{name}/config"),
        token,
        None,
    )?;
    if status != 200 {
        bail!(
            "the daemon did not show {name}'s configuration (HTTP {status}): {}",
            message(&body)
        );
    }
    Ok(body["config"].clone())
}

/// The fields the plugin's config schema marks secret, from the daemon's view of its manifest.
fn daemon_secret_fields(info: &DaemonInfo, name: &str, token: &str) -> Result<Vec<String>> {
    let (status, body) = send(info, "GET", &format!("/v1/plugins/{name}"), token, None)?;
    if status != 200 {
        bail!(
            "the daemon did not show plugin {name} (HTTP {status}): {}",
            message(&body)
        );
    }
    let mut fields = Vec::new();
    collect_secret_fields(&body["manifest"]["config"]["schema"], "", &mut fields);
    Ok(fields)
}

fn collect_secret_fields(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let full = format!("{prefix}{name}");
        if property["secret"] == Value::Bool(true) {
            out.push(full.clone());
        }
        collect_secret_fields(property, &format!("{full}."), out);
    }
}

/// Applies `key=value` settings; a secret field is refused, since its value would be on the
/// command line.
fn apply(config: &mut Value, sets: &[String], secret_fields: &[String], name: &str) -> Result<()> {
    for set in sets {
        let Some((key, raw)) = set.split_once('=') else {
            bail!("--set `{set}`: write it as KEY=VALUE");
        };
        if key.is_empty() {
            bail!("--set `{set}`: the key is empty");
        }
        if secret_fields.iter().any(|f| f == key) {
            bail!(
                "`{key}` is a secret field of {name}: store it with `sigil plugin secret {name} {key}`, which reads the value from standard input"
            );
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        set_path(config, key, value);
    }
    Ok(())
}

fn set_path(config: &mut Value, key: &str, value: Value) {
    let mut at = config;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
        let Some(object) = at.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            object.insert(part.to_string(), value);
            return;
        }
        at = object
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// The value from standard input: one line at a terminal (with a prompt on stderr), else all
/// of it, without the trailing newline.
fn read_secret(name: &str, field: &str) -> Result<SecretValue> {
    let stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("value of {name}'s secret field `{field}`, then Enter: ");
        std::io::stderr().flush()?;
        stdin.read_line(&mut value)?;
    } else {
        stdin.lock().read_to_string(&mut value)?;
    }
    let value = value.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        bail!("no value on standard input for {name}'s secret field `{field}`");
    }
    Ok(SecretValue::new(value))
}
