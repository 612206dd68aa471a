//! `sigil plugin install DIR`: validate, ask for consent, copy atomically, record consent.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sigil::manifest::{Rules, Tier, ValidatedManifest};

/// The largest plugin directory accepted, in bytes.
const MAX_PLUGIN_BYTES: u64 = 256 * 1024 * 1024;

pub fn install(
    home: Option<&Path>,
    source: &Path,
    yes: bool,
    force: bool,
    reserved: &[String],
) -> Result<ExitCode> {
    let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let manifest = match sigil::manifest::load_dir_with(
        source,
        &Rules {
            reserved_commands: &reserved,
        },
    ) {
        Ok(manifest) => manifest,
        Err(errors) => {
            for d in errors.iter() {
                eprintln!("{d}");
            }
            bail!(
                "{} is not a valid plugin ({} problem(s)); nothing was installed",
                source.display(),
                errors.len()
            );
        }
    };
    if manifest.execution().tier == Tier::Builtin {
        bail!("tier `builtin` is only for plugins compiled into sigil; nothing was installed");
    }
    if let Some(entry) = &manifest.execution().entry
        && !source.join(entry).is_file()
    {
        bail!(
            "{} is missing; build the plugin first with `sigil plugin build {}`",
            source.join(entry).display(),
            source.display()
        );
    }
    let sigil_home = sigil::Home::resolve(home)?;
    let id = manifest.id().to_string();
    let target = sigil_home.plugins_dir().join(&id);
    if target.exists() && !force {
        bail!(
            "plugin `{id}` is already installed at {}; pass --force to replace it",
            target.display()
        );
    }

    show_request(&manifest);
    let consent: Vec<String> = manifest
        .requested()
        .iter()
        .map(|c| c.pattern.to_string())
        .collect();
    if !consent.is_empty() && !yes && !confirm(&format!("grant plugin `{id}` these capabilities?"))?
    {
        eprintln!("not installed: consent refused");
        return Ok(ExitCode::FAILURE);
    }

    copy_plugin(source, &sigil_home.plugins_dir(), &id)?;
    record_consent(&sigil_home.config_path(), &id, &consent)?;
    println!(
        "installed {id} {} into {}",
        manifest.version(),
        target.display()
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

fn show_request(manifest: &ValidatedManifest) {
    println!(
        "{} {} ({}) asks for:",
        manifest.id(),
        manifest.version(),
        manifest.execution().tier
    );
    if manifest.requested().is_empty() {
        println!("  nothing");
    }
    for request in manifest.requested() {
        println!("  {:<40} {}", request.pattern.to_string(), request.reason);
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

/// Copies `source` to `<plugins>/<id>` through a temporary directory and a rename, so a
/// failed copy leaves nothing half-installed. Symbolic links are refused: a plugin package
/// may not point outside itself.
fn copy_plugin(source: &Path, plugins: &Path, id: &str) -> Result<()> {
    std::fs::create_dir_all(plugins).with_context(|| format!("creating {}", plugins.display()))?;
    let staging = plugins.join(format!(".installing-{id}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let mut total = 0u64;
    let result = copy_tree(source, &staging, &mut total);
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    let target = plugins.join(id);
    if target.exists() {
        let old = plugins.join(format!(".replaced-{id}-{}", std::process::id()));
        std::fs::rename(&target, &old)
            .with_context(|| format!("moving aside {}", target.display()))?;
        std::fs::rename(&staging, &target)
            .with_context(|| format!("installing {}", target.display()))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staging, &target)
            .with_context(|| format!("installing {}", target.display()))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path, total: &mut u64) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path: PathBuf = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if name == ".git" || name == "target" || name == "__pycache__" {
            continue;
        }
        if kind.is_symlink() {
            bail!(
                "{} is a symbolic link; plugins may not contain links",
                path.display()
            );
        } else if kind.is_dir() {
            copy_tree(&path, &to.join(&name), total)?;
        } else if kind.is_file() {
            *total += entry.metadata()?.len();
            if *total > MAX_PLUGIN_BYTES {
                bail!(
                    "{} is larger than {} MiB",
                    from.display(),
                    MAX_PLUGIN_BYTES >> 20
                );
            }
            std::fs::copy(&path, to.join(&name))
                .with_context(|| format!("copying {}", path.display()))?;
        } else {
            bail!("{} is not a regular file or directory", path.display());
        }
    }
    Ok(())
}

/// Writes `[plugins.<id>] consent = [...]` into sigil.toml, keeping its comments and layout.
fn record_consent(config: &Path, id: &str, consent: &[String]) -> Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", config.display()))?;
    let plugins = document
        .entry("plugins")
        .or_insert_with(|| {
            let mut table = toml_edit::Table::new();
            table.set_implicit(true);
            toml_edit::Item::Table(table)
        })
        .as_table_mut()
        .with_context(|| format!("{}: `plugins` is not a table", config.display()))?;
    let plugin = plugins
        .entry(id)
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .with_context(|| format!("{}: `plugins.{id}` is not a table", config.display()))?;
    let mut list = toml_edit::Array::new();
    for pattern in consent {
        list.push(pattern.as_str());
    }
    plugin["consent"] = toml_edit::value(list);
    let staging = config.with_extension("toml.new");
    std::fs::write(&staging, document.to_string())
        .with_context(|| format!("writing {}", staging.display()))?;
    std::fs::rename(&staging, config).with_context(|| format!("replacing {}", config.display()))?;
    Ok(())
}
