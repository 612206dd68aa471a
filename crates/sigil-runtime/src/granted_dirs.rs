//! Granted directories: resolved once when a plugin loads, then held open and used by handle.
//!
//! A grant of a whole directory (`fs.read:/srv/data/**`, `fs.write:/srv/data/**`) means the
//! directory its path named when the operator's consent took effect, that is, when the plugin
//! loaded. [`granted_dirs`] turns a plugin's grants into that view, one function for every
//! tier: each directory is resolved to its real path once, opened there (`O_PATH`,
//! `O_DIRECTORY`, `O_NOFOLLOW`) and kept open with its device and inode. A tier hands the plugin
//! the held directory (a WASI preopen of the handle, a bind mount of the handle), never the
//! name again, so a symbolic link swapped in for the directory later redirects nothing.
//!
//! The name is still checked, so that a change is refused on the record rather than silently
//! ignored: before every call ([`GrantedDir::authorize`]) and before every start of a plugin's
//! process ([`GrantedDir::check`]), the granted path must still resolve to the held directory,
//! at the same real path. If it does not, the directory is refused, with an audited deny saying
//! why, and never followed; reloading the plugin resolves its grants afresh.
//!
//! # Security
//! What is authorised per call is the directory's real path (`fs.read:<real path>`), checked
//! at every layer with denies carving into it refused: a grant through a link must also hold
//! where the link leads.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use sigil_policy::CapabilitySet;

use crate::tool::{Call, ToolError};

/// A directory opened once (`O_PATH`) at its real path, with the identity it had then.
/// Cheap to clone: clones share the one open handle, which closes with the last of them.
#[derive(Debug, Clone)]
pub struct HeldDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl HeldDir {
    /// Resolves `path` to its real path and opens the directory there without following a
    /// link, checking that the real path still names what was opened.
    ///
    /// # Errors
    /// A sentence naming `path`: missing, not a directory, not resolvable, or changed while it
    /// was being opened.
    pub fn open(path: &Path) -> Result<HeldDir, String> {
        let real = std::fs::canonicalize(path)
            .map_err(|e| format!("{} cannot be resolved: {e}", path.display()))?;
        let fd = rustix::fs::open(
            &real,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            format!(
                "{} (resolved to {}) cannot be opened as a directory: {e}",
                path.display(),
                real.display()
            )
        })?;
        let file = std::fs::File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| format!("{} cannot be examined: {e}", real.display()))?;
        let held = HeldDir {
            fd: Arc::new(OwnedFd::from(file)),
            path: real,
            dev: meta.dev(),
            ino: meta.ino(),
        };
        // A component swapped for a link between resolving and opening would have sent the
        // open elsewhere: the real path must still name what was opened.
        match held.moved(&held.path) {
            None => Ok(held),
            Some(how) => Err(format!(
                "{} changed while it was being opened: it {how}",
                path.display()
            )),
        }
    }

    /// The directory's real path when it was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open handle (`O_PATH`), for a tier that binds or preopens it.
    pub fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// How `name` no longer leads to this directory, or `None` when it still does (resolving
    /// to the same real path and the same device and inode).
    pub fn moved(&self, name: &Path) -> Option<String> {
        let real = match std::fs::canonicalize(name) {
            Ok(real) => real,
            Err(e) => return Some(format!("no longer resolves ({e})")),
        };
        if real != self.path {
            return Some(format!("now resolves to {}", real.display()));
        }
        match std::fs::metadata(&real) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => None,
            Ok(_) => Some("now names another directory in its place".to_string()),
            Err(e) => Some(format!("cannot be examined ({e})")),
        }
    }

    /// A path naming the held directory itself (`/proc/self/fd/<fd>`), for an API that takes
    /// only paths. Checked to lead to the held directory now; it keeps doing so while this
    /// handle is open, whatever happens to the directory's name.
    ///
    /// # Errors
    /// When `/proc` does not show the handle as this directory (no procfs mounted, say).
    pub fn handle_path(&self) -> Result<PathBuf, String> {
        let path = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(path),
            Ok(_) => Err(format!(
                "{} does not lead to the directory held for {}",
                path.display(),
                self.path.display()
            )),
            Err(e) => Err(format!(
                "the directory held for {} cannot be reached through {}: {e}",
                self.path.display(),
                path.display()
            )),
        }
    }
}

/// A whole directory a plugin was granted, held since load.
#[derive(Debug, Clone)]
pub struct GrantedDir {
    held: HeldDir,
    /// The grants naming it, as written (`fs.read:/srv/data/**`), with the path each names.
    grants: Vec<(String, PathBuf)>,
    write: bool,
}

impl GrantedDir {
    /// The directory's real path at load: where a tier shows it to the plugin.
    pub fn path(&self) -> &Path {
        self.held.path()
    }

    /// Whether it was granted for writing (`fs.write`), not only reading.
    pub fn write(&self) -> bool {
        self.write
    }

    /// The same directory, for reading only: for a tier binding a directory granted for
    /// writing whose writing was not consented to.
    pub fn read_only(&self) -> GrantedDir {
        GrantedDir {
            write: false,
            ..self.clone()
        }
    }

    /// The held directory.
    pub fn held(&self) -> &HeldDir {
        &self.held
    }

    /// The capability a call's actor must hold for the plugin to have this directory during
    /// the call: `fs.read:<real path>` or `fs.write:<real path>`.
    pub fn capability(&self) -> String {
        let action = if self.write { "fs.write" } else { "fs.read" };
        format!("{action}:{}", self.held.path().display())
    }

    /// Checks that every grant naming this directory still resolves to it.
    ///
    /// # Errors
    /// Why not, in a sentence for the operator: which grant, where its path leads now, and
    /// that it was refused rather than followed.
    pub fn check(&self) -> Result<(), String> {
        for (grant, name) in &self.grants {
            if let Some(how) = self.held.moved(name) {
                return Err(format!(
                    "the directory granted by `{grant}` {how}, no longer the directory held since the plugin loaded ({}); refused, not followed (reload the plugin to grant what the path names now)",
                    self.held.path().display()
                ));
            }
        }
        Ok(())
    }

    /// Decides whether `call` may have this directory: [`GrantedDir::check`] (a failure is
    /// refused and recorded as a deny of the call), then the capability for the call's actor
    /// at every layer (an audited decision), then that no deny carves into it.
    ///
    /// # Errors
    /// [`ToolError::Denied`] naming the capability and why.
    pub async fn authorize(&self, call: &Call) -> Result<(), ToolError> {
        let text = self.capability();
        if let Err(reason) = self.check() {
            return Err(call.refuse(&text, &reason).await);
        }
        let capability = call.authorize(&text).await?;
        if let Some(deny) = call.deny_within(&capability) {
            return Err(ToolError::Denied {
                capability: text,
                rule: format!(
                    "`{deny}` reaches inside a directory the plugin is given whole, which cannot leave it out"
                ),
            });
        }
        Ok(())
    }
}

/// The directories a plugin's grants give it whole, and the grants that give none.
#[derive(Debug, Default)]
pub struct GrantedDirs {
    /// Each directory, resolved and held, in the order first granted.
    pub dirs: Vec<GrantedDir>,
    /// Why each `fs.read:`/`fs.write:` grant that is not a held directory is not one.
    pub refused: Vec<String>,
}

/// The filesystem view of `grants`: every pattern granting a whole directory
/// (`fs.read:/dir/**`, `fs.write:/dir/**`, `/**` for the root) resolved to its real path and
/// held (see the module docs). Grants of one real directory are merged, writable if any is.
/// Other `fs.read`/`fs.write` patterns (a file, a glob) give no directory and are reported in
/// [`GrantedDirs::refused`]; consent and denies are for the caller and each call to decide.
pub fn granted_dirs(grants: &CapabilitySet) -> GrantedDirs {
    let mut view = GrantedDirs::default();
    for pattern in grants.patterns() {
        let text = pattern.as_str();
        let Some((action, path)) = text.split_once(':') else {
            continue;
        };
        let write = match action {
            "fs.read" => false,
            "fs.write" => true,
            _ => continue,
        };
        let name = match path.strip_suffix("/**") {
            Some("") => PathBuf::from("/"),
            Some(dir) if !dir.contains('*') => PathBuf::from(dir),
            _ => {
                view.refused.push(format!(
                    "`{text}` gives no directory: grant a whole directory, as `{action}:/dir/**`"
                ));
                continue;
            }
        };
        let held = match HeldDir::open(&name) {
            Ok(held) => held,
            Err(e) => {
                view.refused
                    .push(format!("`{text}` gives no directory: {e}"));
                continue;
            }
        };
        let grant = (text.to_string(), name);
        match view.dirs.iter_mut().find(|d| d.held.path == held.path) {
            Some(existing) => {
                existing.write |= write;
                existing.grants.push(grant);
            }
            None => view.dirs.push(GrantedDir {
                held,
                grants: vec![grant],
                write,
            }),
        }
    }
    view
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn grants(texts: &[&str]) -> CapabilitySet {
        texts
            .iter()
            .map(|t| sigil_policy::Pattern::parse(t).unwrap())
            .collect()
    }

    #[test]
    fn whole_directories_are_held_at_their_real_path_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        std::os::unix::fs::symlink(root.join("data"), root.join("link")).unwrap();
        let r = root.display();
        let view = granted_dirs(&grants(&[
            &format!("fs.read:{r}/data/**"),
            &format!("fs.write:{r}/link/**"),
            &format!("fs.read:{r}/data/*.txt"),
            &format!("fs.read:{r}/missing/**"),
            "kv.read:x",
        ]));
        assert_eq!(view.dirs.len(), 1, "{view:?}");
        let data = &view.dirs[0];
        assert_eq!(data.path(), root.join("data"));
        assert!(data.write());
        assert_eq!(data.capability(), format!("fs.write:{r}/data"));
        assert!(data.check().is_ok());
        assert_eq!(view.refused.len(), 2, "{:?}", view.refused);
        assert!(view.refused[0].contains("grant a whole directory"));
        assert!(view.refused[1].contains("cannot be resolved"));
    }

    #[test]
    fn a_name_swapped_for_a_link_is_reported_and_the_handle_keeps_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        std::fs::write(root.join("data/mine.txt"), "mine").unwrap();
        std::fs::create_dir(root.join("elsewhere")).unwrap();
        let view = granted_dirs(&grants(&[&format!("fs.read:{}/data/**", root.display())]));
        let data = &view.dirs[0];
        std::fs::rename(root.join("data"), root.join("data.old")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("data")).unwrap();
        let error = data.check().unwrap_err();
        assert!(
            error.contains(&format!(
                "now resolves to {}",
                root.join("elsewhere").display()
            )),
            "{error}"
        );
        let through_handle = data.held().handle_path().unwrap();
        assert_eq!(
            std::fs::read_to_string(through_handle.join("mine.txt")).unwrap(),
            "mine"
        );
        // A directory put in its place under the same name is not the one held either.
        std::fs::remove_file(root.join("data")).unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        let error = data.check().unwrap_err();
        assert!(error.contains("another directory in its place"), "{error}");
    }
}
