//! Installing a plugin from a directory and uninstalling it: the file side of
//! `POST /v1/plugins` and `DELETE /v1/plugins/{id}`.
//!
//! Install validates the manifest (every problem reported), refuses the builtin tier and
//! missing artifacts, checks the plugin's signature and the tier its trust level may use
//! ([`check_trust`]), records the consent in the audit log, copies the directory into
//! `<home>/plugins/<id>` through a staging directory and a rename (a failed copy leaves nothing
//! half-installed), then records consent to every requested capability in `sigil.toml`,
//! keeping the file's comments and layout.
//!
//! # Security
//! The source directory is its author's, who may change it during the install. It is read
//! once, by handle, by [`sigil_trust::copy_plugin_dir`]: no entry is followed through a link,
//! links and special files are refused, anything over [`MAX_PLUGIN_BYTES`] is refused, and what
//! was written is checked against what was read. The staged copy must then hold the manifest
//! and trust level that were checked before it was made; only then is it renamed into place.

use std::path::{Path, PathBuf};

use sigil_manifest::{Rules, Tier, ValidatedManifest};
use sigil_runtime::{Config, Home, Trust};

/// The largest plugin directory accepted, in bytes.
pub const MAX_PLUGIN_BYTES: u64 = 256 * 1024 * 1024;

/// Why a plugin could not be installed or uninstalled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstallError {
    /// The source is not an absolute path to a directory.
    #[error("{0}")]
    BadSource(String),
    /// The manifest did not validate.
    #[error("{dir} is not a valid plugin ({} problem(s)): {}", problems.len(), problems.join("; "))]
    Invalid {
        /// The plugin directory.
        dir: String,
        /// Every problem, with file, line and column.
        problems: Vec<String>,
    },
    /// Something about the plugin makes it uninstallable as it is.
    #[error("{0}")]
    Refused(String),
    /// A plugin with this id is installed and replacing it was not asked for.
    #[error("plugin `{id}` is already installed at {dir}; install with force to replace it")]
    AlreadyInstalled {
        /// The plugin id.
        id: String,
        /// Where it is.
        dir: String,
    },
    /// The consent could not be recorded in the audit log; nothing was installed.
    #[error("the consent could not be recorded in the audit log, so nothing was installed: {0}")]
    NotRecorded(String),
    /// A file operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A plugin copied into the data directory.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// Where it was installed.
    pub dir: PathBuf,
    /// The capabilities consented to (every one it requests).
    pub consent: Vec<String>,
    /// Its trust level, as checked before it was copied (checked again when it loads).
    pub trust: Trust,
}

/// Writes the audit record of a consent (the manifest, the capabilities consented to, the
/// plugin's trust level) before the install it allows; an error stops the install.
pub type RecordConsent<'a> =
    dyn Fn(&ValidatedManifest, &[String], &Trust) -> Result<(), String> + 'a;

/// Validates the plugin in `source` and installs it into `home`, consenting to every
/// capability it requests: [`validate_dir`], [`check_trust`], `record` (which writes the
/// consent's audit record; see [`sigil_runtime::consent_record`]), then
/// [`install_validated`], for a `source` that must be an absolute path (it comes from a
/// remote client, not a shell in some directory).
///
/// # Errors
/// [`InstallError`]; nothing is left half-installed, and nothing is installed whose consent
/// `record` could not record.
///
/// # Security
/// The caller must have decided that the requester may install plugins and grant them what
/// they request (the gateway checks `admin.plugins`).
pub fn install_dir(
    home: &Home,
    source: &Path,
    force: bool,
    reserved: &[String],
    builtins: &[String],
    record: &RecordConsent<'_>,
) -> Result<Installed, InstallError> {
    if !source.is_absolute() {
        return Err(InstallError::BadSource(format!(
            "`{}` is not an absolute path; give the plugin directory's full path on the server",
            source.display()
        )));
    }
    let manifest = validate_dir(source, reserved, builtins)?;
    if let Some(target) = installed_at(home, &manifest)
        && !force
    {
        return Err(InstallError::AlreadyInstalled {
            id: manifest.id().to_string(),
            dir: target.display().to_string(),
        });
    }
    let trust = check_trust(home, source, &manifest)?;
    record(&manifest, &consent_to(&manifest), &trust).map_err(InstallError::NotRecorded)?;
    install_validated(home, source, &manifest, force, trust)
}

/// The trust level the plugin in `source` will load with, under the trust store and tier
/// policy of `home`'s `sigil.toml`: its signature checked, its files against their signed
/// digests, and its tier against the policy, before anything is copied.
///
/// # Errors
/// [`InstallError::Refused`] for a broken signature, files changed after signing (named), or
/// a tier its trust level may not use (naming the policy key); [`InstallError::Io`] when
/// `sigil.toml` cannot be read.
pub fn check_trust(
    home: &Home,
    source: &Path,
    manifest: &ValidatedManifest,
) -> Result<Trust, InstallError> {
    let config = Config::load(&home.config_path()).map_err(|e| InstallError::Io {
        path: e.path.display().to_string(),
        message: e.message,
    })?;
    sigil_runtime::directory_trust(source, manifest, &config).map_err(InstallError::Refused)
}

/// The capabilities consented to at install: every one the manifest requests, and
/// `hook.<event>` for each event its hooks subscribe to (a hook sees, and a before-hook may
/// change or stop, every call of that event, so it runs only with the operator's consent).
pub fn consent_to(manifest: &ValidatedManifest) -> Vec<String> {
    manifest
        .requested()
        .iter()
        .map(|c| c.pattern.to_string())
        .chain(manifest.hooks().iter().map(|h| format!("hook.{}", h.event)))
        .collect()
}

/// Validates the plugin in `source` for installing: its manifest (every problem reported;
/// `reserved` are command names plugins may not contribute), its tier (not `builtin`), its
/// built artifact, and its id (not one of `builtins`, the compiled-in plugins).
///
/// # Errors
/// [`InstallError::BadSource`], [`InstallError::Invalid`] or [`InstallError::Refused`].
pub fn validate_dir(
    source: &Path,
    reserved: &[String],
    builtins: &[String],
) -> Result<ValidatedManifest, InstallError> {
    if !source.is_dir() {
        return Err(InstallError::BadSource(format!(
            "{} is not a directory",
            source.display()
        )));
    }
    let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let manifest = sigil_manifest::load_dir_with(
        source,
        &Rules {
            reserved_commands: &reserved,
        },
    )
    .map_err(|errors| InstallError::Invalid {
        dir: source.display().to_string(),
        problems: errors.iter().map(ToString::to_string).collect(),
    })?;
    if manifest.execution().tier == Tier::Builtin {
        return Err(InstallError::Refused(
            "tier `builtin` is only for plugins compiled into sigil".into(),
        ));
    }
    if let Some(entry) = &manifest.execution().entry
        && !source.join(entry).is_file()
    {
        return Err(InstallError::Refused(format!(
            "{} is missing; build the plugin first with `sigil plugin build {}`",
            source.join(entry).display(),
            source.display()
        )));
    }
    let id = manifest.id().to_string();
    if builtins.contains(&id) {
        return Err(InstallError::Refused(format!(
            "plugin id `{id}` is that of a plugin compiled into sigil; choose another id"
        )));
    }
    Ok(manifest)
}

/// Where `manifest`'s plugin is (or would be) installed in `home`, if it is there already.
pub fn installed_at(home: &Home, manifest: &ValidatedManifest) -> Option<PathBuf> {
    let target = home.plugins_dir().join(manifest.id().as_str());
    target.exists().then_some(target)
}

/// Copies the validated plugin in `source` into `<home>/plugins/<id>` and records consent to
/// every capability it requests in `sigil.toml`. `trust` is what [`check_trust`] found.
///
/// # Errors
/// [`InstallError::AlreadyInstalled`] unless `force`, [`InstallError::Refused`] for links or
/// size, [`InstallError::Io`]. Nothing is left half-installed.
///
/// # Security
/// This is the consent: call it only once the operator (or a requester holding
/// `admin.plugins`) has agreed to what the manifest requests.
pub fn install_validated(
    home: &Home,
    source: &Path,
    manifest: &ValidatedManifest,
    force: bool,
    trust: Trust,
) -> Result<Installed, InstallError> {
    let id = manifest.id().to_string();
    if let Some(target) = installed_at(home, manifest)
        && !force
    {
        return Err(InstallError::AlreadyInstalled {
            id,
            dir: target.display().to_string(),
        });
    }
    let consent = consent_to(manifest);
    copy_plugin(home, source, manifest, &trust)?;
    set_consent(&home.config_path(), &id, Some(&consent))?;
    Ok(Installed {
        id,
        version: manifest.version().to_string(),
        dir: home.plugins_dir().join(manifest.id().as_str()),
        consent,
        trust,
    })
}

/// Deletes an installed plugin's directory (only if it lies in `<home>/plugins`) and its
/// consent in `sigil.toml`. Returns whether a directory was deleted.
///
/// # Errors
/// [`InstallError::Io`] when the directory or `sigil.toml` cannot be changed.
pub fn uninstall(home: &Home, id: &str, dir: &Path) -> Result<bool, InstallError> {
    let installed = home.plugins_dir().join(id);
    let deleted = if dir == installed && installed.is_dir() {
        std::fs::remove_dir_all(&installed).map_err(|e| io(&installed, &e))?;
        true
    } else {
        false
    };
    set_consent(&home.config_path(), id, None)?;
    Ok(deleted)
}

fn io(path: &Path, error: &dyn std::fmt::Display) -> InstallError {
    InstallError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// Copies `source` to `<plugins>/<id>` through a staging directory and a rename, once the
/// staged copy has proved to be what was checked ([`same_as_checked`]).
fn copy_plugin(
    home: &Home,
    source: &Path,
    manifest: &ValidatedManifest,
    trust: &Trust,
) -> Result<(), InstallError> {
    let plugins = home.plugins_dir();
    let id = manifest.id().as_str();
    sigil_runtime::files::create_private_dir_all(&plugins).map_err(|e| io(&plugins, &e))?;
    let unique = format!("{}-{}", std::process::id(), unique_suffix());
    let staging = plugins.join(format!(".installing-{id}-{unique}"));
    let staged = sigil_trust::copy_plugin_dir(source, &staging, MAX_PLUGIN_BYTES)
        .map_err(|error| match error {
            sigil_trust::TrustError::Io { path, message } => InstallError::Io {
                path: path.display().to_string(),
                message,
            },
            other => InstallError::Refused(other.to_string()),
        })
        .and_then(|_| same_as_checked(home, &staging, manifest, trust));
    if let Err(error) = staged {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    let target = plugins.join(id);
    if target.exists() {
        let old = plugins.join(format!(".replaced-{id}-{unique}"));
        std::fs::rename(&target, &old).map_err(|e| io(&target, &e))?;
        std::fs::rename(&staging, &target).map_err(|e| io(&target, &e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staging, &target).map_err(|e| io(&target, &e))?;
    }
    Ok(())
}

/// The staged copy is what was checked before it was made: the same manifest (the one the
/// consent was given for), its entry present, and the same trust level computed again from
/// the copied files. The author of a source directory can change it between the checks and
/// the copy; this is where that is caught.
fn same_as_checked(
    home: &Home,
    staged: &Path,
    manifest: &ValidatedManifest,
    trust: &Trust,
) -> Result<(), InstallError> {
    let changed = |what: &str| {
        InstallError::Refused(format!(
            "the plugin {what} while it was being installed; nothing was installed"
        ))
    };
    let copied = sigil_manifest::load_dir(staged).map_err(|_| changed("manifest changed"))?;
    if copied.to_json() != manifest.to_json() {
        return Err(changed("manifest changed"));
    }
    if let Some(entry) = &manifest.execution().entry {
        let present = staged
            .join(entry)
            .symlink_metadata()
            .is_ok_and(|m| m.is_file());
        if !present {
            return Err(changed(&format!("entry `{}` disappeared", entry.display())));
        }
    }
    if check_trust(home, staged, manifest)? != *trust {
        return Err(changed("signature or files changed"));
    }
    Ok(())
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Writes (`Some`) or removes (`None`) `[plugins.<id>] consent` in sigil.toml through its one
/// editor, keeping its comments and layout; a change that would not load is not written.
fn set_consent(config: &Path, id: &str, consent: Option<&[String]>) -> Result<(), InstallError> {
    sigil_store::ConfigFile::new(config)
        .edit(
            |settings| {
                settings
                    .set_consent(id, consent)
                    .map_err(InstallError::from)
            },
            |text| {
                sigil_runtime::Config::parse(text, config)
                    .map(|_| ())
                    .map_err(|e| InstallError::Refused(e.to_string()))
            },
        )
        .map(|_| ())
}

impl From<sigil_store::ConfigFileError> for InstallError {
    fn from(error: sigil_store::ConfigFileError) -> InstallError {
        match error {
            sigil_store::ConfigFileError::Io { path, message } => InstallError::Io {
                path: path.display().to_string(),
                message,
            },
            other => InstallError::Refused(other.to_string()),
        }
    }
}
