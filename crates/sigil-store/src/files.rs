//! Sigil's files are private to the user it runs as, whatever the umask.
//!
//! Every directory Sigil creates in its data directory is `0700` and every file `0600`, the
//! mode given when it is created (`mkdir`, `open` with `O_CREAT`): a umask can only narrow it,
//! so no umask makes one readable by others. Files are replaced by writing a new private
//! file beside them and renaming it over, so a rewrite never leaves a wider file behind.
//! SQLite gives a database's `-wal` and `-shm` files the mode of the database itself, so
//! creating `sigil.db` private before SQLite opens it keeps those private too.
//!
//! Every writer in the data directory goes through these functions (the runtime, the tiers,
//! the gateway and the command line); `sigil doctor` reports paths found wider
//! ([`wider_than_private`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The mode of every directory Sigil creates in its data directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// The mode of every file Sigil creates in its data directory (an executable copied into a
/// plugin's directory keeps its owner's execute bit, and nothing for others).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` and each missing parent, each `0700`. Directories that exist are left as
/// they are.
///
/// # Errors
/// When a directory cannot be created.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(dir)
}

/// Options that create a new file `mode` (never opening one that exists, nor following a
/// link placed where it is to be created).
fn new_file_options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// Creates the file `path`, `0600`, failing if it exists.
///
/// # Errors
/// When it exists or cannot be created.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    new_file_options(PRIVATE_FILE_MODE).open(path)
}

/// Creates `path` empty and `0600` unless it exists; an existing file is left as it is. For
/// a database file, before SQLite opens (and would otherwise create) it.
///
/// # Errors
/// When it does not exist and cannot be created.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    match create_private_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `bytes`, atomically: a reader sees the old content or the new, never
/// part of it. The new content is written to a new `0600` file beside `path`, synced, and
/// renamed over it; then the directory is synced. `path` is `0600` afterwards, whatever it was.
///
/// # Errors
/// When the temporary file cannot be written or renamed; it is removed then.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static UNIQUE: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and per write: concurrent writers never share a temporary file.
    let temporary = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    let written = create_private_file(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    // The rename is durable once the directory is synced; failing that loses at most this
    // write in a power cut, which is not worth failing it for.
    if let Ok(directory) = File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Copies the file `from` to the new file `to`, keeping only its owner's permission bits
/// (an executable stays executable, for its owner alone).
///
/// # Errors
/// When `from` cannot be read, or `to` exists or cannot be written.
pub fn copy_private(from: &Path, to: &Path) -> io::Result<u64> {
    let mut source = File::open(from)?;
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        source.metadata()?.permissions().mode() & 0o700
    };
    #[cfg(not(unix))]
    let mode = PRIVATE_FILE_MODE;
    let mut target = new_file_options(mode).open(to)?;
    let copied = io::copy(&mut source, &mut target)?;
    target.sync_all()?;
    Ok(copied)
}

/// The permission bits `metadata` gives beyond its owner (group or others), as the whole
/// mode, when it gives any: what `sigil doctor` warns about. `None` for a private path (and
/// for a symbolic link, whose own mode means nothing).
pub fn wider_than_private(metadata: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        (!metadata.file_type().is_symlink() && mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// Narrows the directory `dir` to `0700` when it gives its group or others any access.
/// Returns the mode it had when it was narrowed.
///
/// # Errors
/// When its mode cannot be read or changed (it belongs to another user), and for a directory
/// with the sticky bit (`/tmp` and the like), which is shared by design and left as it is.
pub fn narrow_dir(dir: &Path) -> io::Result<Option<u32>> {
    let metadata = std::fs::metadata(dir)?;
    let Some(mode) = wider_than_private(&metadata) else {
        return Ok(None);
    };
    if mode & 0o1000 != 0 {
        return Err(io::Error::other(
            "it is a shared directory (sticky bit); give Sigil a directory of its own",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(Some(mode))
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_rewrite_leaves_a_private_file_even_where_a_wider_one_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sigil.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn a_copy_keeps_only_its_owners_bits() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("plugin");
        std::fs::write(&from, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o755)).unwrap();
        let to = dir.path().join("copy");
        copy_private(&from, &to).unwrap();
        assert_eq!(mode(&to), 0o700);
        assert!(
            copy_private(&from, &to).is_err(),
            "an existing file was replaced"
        );
    }

    #[test]
    fn a_wide_directory_is_narrowed_and_its_old_mode_told() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        create_private_dir_all(&data.join("a/b")).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("a/b")), 0o700);
        assert_eq!(narrow_dir(&data).unwrap(), None);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(narrow_dir(&data).unwrap(), Some(0o755));
        assert_eq!(mode(&data), 0o700);
    }
}
