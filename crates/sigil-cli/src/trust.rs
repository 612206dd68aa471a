//! `sigil trust …` (the operator's trusted keys, `[trust.keys]` in sigil.toml) and
//! `sigil plugin sign | verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sigil_trust::{KeyPair, PublicKey, Signature, valid_key_name};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Create a minisign key pair for signing plugins: the secret key at PATH, the public key
    /// beside it with the extension `.pub`.
    Keygen {
        /// Where to write the secret key.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Encrypt the secret key with the password in this environment variable. Without it
        /// the secret key is written unencrypted (readable by its owner only): keep it safe.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Trust a public key: plugins it signs load as `verified`.
    Add {
        /// A minisign public key file, or the key's base64 line (`RW…`).
        key: String,
        /// The key's name in the trust store (default: the file's stem, else `key-<ID>`).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the trusted keys.
    List,
    /// Stop trusting a key; plugins it signed load as `sandboxed` from then on.
    Remove {
        /// The key's name.
        name: String,
    },
}

pub fn run(home: Option<&Path>, command: TrustCommand) -> Result<ExitCode> {
    match command {
        TrustCommand::Keygen { out, password_env } => {
            let public = out.with_extension("pub");
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let pair = match password(password_env.as_deref())? {
                Some(password) => KeyPair::generate_encrypted(password)?,
                None => KeyPair::generate_unencrypted()?,
            };
            pair.write(&out, &public)?;
            println!(
                "secret key {} ({}), public key {}; key id {}",
                out.display(),
                if password_env.is_some() {
                    "encrypted"
                } else {
                    "unencrypted: keep it safe"
                },
                public.display(),
                pair.public().id()
            );
            println!("trust it with: sigil trust add {}", public.display());
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Add { key, name } => {
            let path = Path::new(&key);
            let (key, default_name) = if path.is_file() {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let key = PublicKey::parse(&text, &path.display().to_string())?;
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .filter(|s| valid_key_name(s))
                    .map(str::to_string);
                (key, stem)
            } else {
                (PublicKey::parse(&key, "the key argument")?, None)
            };
            let name = name
                .or(default_name)
                .unwrap_or_else(|| format!("key-{}", key.id()));
            let home = sigil::Home::resolve(home)?;
            let config = sigil::Config::load(&home.config_path())?;
            if let Some((other, _)) = config.trust().keys().by_id(key.id()) {
                bail!("key {} is already trusted as `{other}`", key.id());
            }
            edit_keys(&home.config_path(), |settings| {
                if !settings.add_trust_key(&name, &key.to_base64())? {
                    bail!("a trusted key is already named `{name}`; pass --name to choose another");
                }
                Ok(())
            })?;
            println!(
                "trusting key `{name}` ({}): plugins it signs load as verified",
                key.id()
            );
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::List => {
            let home = sigil::Home::resolve(home)?;
            let config = sigil::Config::load(&home.config_path())?;
            let keys = config.trust().keys();
            if keys.is_empty() {
                println!(
                    "no trusted keys: every installed plugin is sandboxed (`sigil trust add`)"
                );
            }
            for (name, key) in keys.iter() {
                println!("{name:<20} {}  {}", key.id(), key.to_base64());
            }
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Remove { name } => {
            let home = sigil::Home::resolve(home)?;
            edit_keys(&home.config_path(), |settings| {
                if !settings.remove_trust_key(&name)? {
                    bail!("no trusted key named `{name}` (see `sigil trust list`)");
                }
                Ok(())
            })?;
            println!(
                "no longer trusting key `{name}`: plugins it signed load as sandboxed from the next start or reload"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sigil plugin sign DIR --key FILE`.
pub fn sign(dir: &Path, key: &Path, password_env: Option<&str>) -> Result<ExitCode> {
    if let Err(errors) = sigil::manifest::load_dir(dir) {
        for problem in errors.iter() {
            eprintln!("{problem}");
        }
        bail!(
            "{} is not a valid plugin; nothing was signed",
            dir.display()
        );
    }
    let pair = KeyPair::read(key, password(password_env)?)?;
    let signed = sigil_trust::sign_dir(dir, &pair)?;
    println!(
        "signed {} file(s) of {} with key {}: wrote {} and {}",
        signed.digests.len(),
        dir.display(),
        signed.key_id,
        sigil_trust::DIGESTS_FILE,
        sigil_trust::SIGNATURE_FILE
    );
    Ok(ExitCode::SUCCESS)
}

/// `sigil plugin verify DIR`: succeeds only for a plugin that would load as `verified`.
pub fn verify(home: Option<&Path>, dir: &Path) -> Result<ExitCode> {
    let home = sigil::Home::resolve(home)?;
    let config = sigil::Config::load(&home.config_path())?;
    match sigil_trust::verify_dir(dir, config.trust().keys())? {
        Signature::Verified { key, id, digests } => {
            println!(
                "{}: {} file(s) match {}, signed by trusted key `{key}` ({id}): verified",
                dir.display(),
                digests.len(),
                sigil_trust::DIGESTS_FILE
            );
            Ok(ExitCode::SUCCESS)
        }
        Signature::UnknownSigner { id } => {
            println!(
                "{}: signed by key {id}, which is not in the trust store (`sigil trust add`): it would load as sandboxed",
                dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Signature::Unsigned => {
            println!(
                "{}: unsigned (no {}): it would load as sandboxed",
                dir.display(),
                sigil_trust::SIGNATURE_FILE
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn password(var: Option<&str>) -> Result<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        _ => bail!("environment variable `{var}` (the key's password) is not set"),
    }
}

/// Changes `[trust.keys]` in sigil.toml through its one editor, keeping its comments and
/// layout, and writes it only if the result still loads.
fn edit_keys(
    config: &Path,
    edit: impl FnOnce(&mut sigil_store::Settings<'_>) -> Result<()>,
) -> Result<()> {
    sigil_store::ConfigFile::new(config).edit(edit, |text| {
        sigil::Config::parse(text, config)?;
        Ok(())
    })?;
    Ok(())
}
