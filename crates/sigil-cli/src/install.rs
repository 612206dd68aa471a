//! `sigil plugin install DIR`: validate, check the signature, ask for consent, record the
//! consent in the audit log, copy atomically, record consent in sigil.toml.
//! The checks and the copy are `sigil_gateway::install`'s, shared with `POST /v1/plugins`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use sigil::manifest::ValidatedManifest;
use sigil_gateway::install::{self, InstallError};

pub fn install(
    home: Option<&Path>,
    source: &Path,
    yes: bool,
    force: bool,
    reserved: &[String],
) -> Result<ExitCode> {
    let builtins: Vec<String> = sigil::builtins()
        .iter()
        .filter_map(|b| {
            sigil::manifest::parse_str(b.manifest, sigil::manifest::Format::Toml, "builtin")
                .ok()
                .map(|m| m.id().to_string())
        })
        .collect();
    let manifest = match install::validate_dir(source, reserved, &builtins) {
        Ok(manifest) => manifest,
        Err(InstallError::Invalid { problems, .. }) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            bail!(
                "{} is not a valid plugin ({} problem(s)); nothing was installed",
                source.display(),
                problems.len()
            );
        }
        Err(error) => bail!("{error}; nothing was installed"),
    };
    let sigil_home = sigil::Home::resolve(home)?;
    let id = manifest.id().to_string();
    if let Some(target) = install::installed_at(&sigil_home, &manifest)
        && !force
    {
        bail!(
            "plugin `{id}` is already installed at {}; pass --force to replace it",
            target.display()
        );
    }

    let trust = install::check_trust(&sigil_home, source, &manifest)
        .map_err(|e| anyhow::anyhow!("{e}; nothing was installed"))?;
    show_request(&manifest);
    match &trust {
        sigil::Trust::Verified { key, key_id } => println!(
            "trust: verified, signed by trusted key `{key}` ({key_id}); its files match their signed digests"
        ),
        _ => {
            println!("trust: sandboxed (not signed by a key in the trust store; see `sigil trust`)")
        }
    }
    let asks_anything = !manifest.requested().is_empty() || !manifest.hooks().is_empty();
    if asks_anything && !yes && !confirm(&format!("grant plugin `{id}` these capabilities?"))? {
        eprintln!("not installed: consent refused");
        return Ok(ExitCode::FAILURE);
    }

    record_consent(&sigil_home, &manifest, &trust)?;
    let installed = install::install_validated(&sigil_home, source, &manifest, force, trust)?;
    println!(
        "installed {id} {} into {}",
        installed.version,
        installed.dir.display()
    );

    let sigil = sigil::open(home)?;
    match sigil.manager().get(&id) {
        Some(entry) => {
            let summary = entry.summary();
            match summary.error {
                None => {
                    println!(
                        "{id} is {}; tools: {}",
                        summary.state,
                        summary.tools.join(", ")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(error) => {
                    eprintln!("{id} is installed but did not load: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        None => bail!("{id} was installed but not found on reload; see `sigil plugin list`"),
    }
}

/// Writes the consent's audit record, as the operator the command line acts for, before
/// anything is installed: a consent the log does not hold never takes effect.
fn record_consent(
    home: &sigil::Home,
    manifest: &ValidatedManifest,
    trust: &sigil::Trust,
) -> Result<()> {
    let config = sigil::Config::load(&home.config_path())?;
    let actor = sigil::Actor {
        user: config.default_user().map(str::to_string),
        workspace: config.default_workspace().map(str::to_string),
        session: None,
        channel: Some("cli".to_string()),
    };
    let record = sigil::consent_record(&actor, manifest, &install::consent_to(manifest), trust);
    let log = sigil::audit::AuditLog::open_with(
        &home.database_path(),
        &home.audit_keys(),
        config.audit_durability(),
    )?;
    let appended = log.append(record);
    log.close()?;
    appended.map(drop).map_err(|e| {
        anyhow::anyhow!(
            "the consent could not be recorded in the audit log, so nothing was installed: {e}"
        )
    })
}

fn show_request(manifest: &ValidatedManifest) {
    println!(
        "{} {} ({}) asks for:",
        manifest.id(),
        manifest.version(),
        manifest.execution().tier
    );
    if manifest.requested().is_empty() && manifest.hooks().is_empty() {
        println!("  nothing");
    }
    for request in manifest.requested() {
        println!("  {:<40} {}", request.pattern.to_string(), request.reason);
    }
    for hook in manifest.hooks() {
        let what = if hook.event.is_before() {
            "sees every such event, and may deny or change it"
        } else {
            "sees every such event"
        };
        println!("  {:<40} {what}", format!("hook.{}", hook.event));
    }
    for denial in manifest.denied() {
        println!("  and denies itself {}: {}", denial.pattern, denial.reason);
    }
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "{question} needs an answer, and standard input is not a terminal: pass --yes to consent"
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
