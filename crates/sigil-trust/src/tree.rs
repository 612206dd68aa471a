//! A plugin directory read by handle: the one way its files are hashed, checked and copied.
//!
//! A plugin directory comes from its author, who may change it while Sigil reads it. So no
//! entry is looked at by one system call and read by another: each is opened in the directory
//! handle already held, with `O_NOFOLLOW | O_NONBLOCK`, and what was opened is classified by
//! `fstat` of that very descriptor. A symbolic link fails to open (`ELOOP`) and is refused; a
//! FIFO, socket or device is refused once opened, before anything is read. Only the directory
//! given is opened by its path.
//!
//! [`DigestList`](crate::DigestList) hashes and checks directories with [`walk`];
//! [`copy_plugin_dir`] copies one with it, and checks what landed.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::TrustError;

/// How every entry is opened: never through a link, never waiting on a FIFO, never taking a
/// terminal.
const ENTRY: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Why an entry is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfit {
    /// A symbolic link.
    Link,
    /// A FIFO, socket, device or anything else that is neither a regular file nor a directory.
    Special,
}

/// An entry of a plugin directory, opened.
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    /// A directory; its entries are visited next.
    Dir,
    /// A regular file, open for reading, with its permission bits.
    File(&'a mut File, u32),
}

/// Visits every directory and regular file under `root`, depth first in name order, a
/// directory before what it holds. `skip` leaves out an entry by its path relative to `root`
/// (nothing of it is opened); `unfit` makes the error for a link or special file, which ends
/// the walk.
///
/// # Errors
/// The first error of `visit` or `unfit`; [`TrustError::Io`] when something cannot be read.
pub(crate) fn walk(
    root: &Path,
    skip: &dyn Fn(&Path) -> bool,
    unfit: &dyn Fn(&Path, Unfit) -> TrustError,
    visit: &mut dyn FnMut(&Path, Entry<'_>) -> Result<(), TrustError>,
) -> Result<(), TrustError> {
    let dir = rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(root, e))?;
    let mut walker = Walker {
        root,
        skip,
        unfit,
        visit,
    };
    walker.dir(&dir, Path::new(""))
}

struct Walker<'a> {
    root: &'a Path,
    skip: &'a dyn Fn(&Path) -> bool,
    unfit: &'a dyn Fn(&Path, Unfit) -> TrustError,
    visit: &'a mut dyn FnMut(&Path, Entry<'_>) -> Result<(), TrustError>,
}

impl Walker<'_> {
    fn dir(&mut self, dir: &OwnedFd, relative: &Path) -> Result<(), TrustError> {
        for name in names(dir, &self.root.join(relative))? {
            let relative = relative.join(&name);
            if (self.skip)(&relative) {
                continue;
            }
            let path = self.root.join(&relative);
            match open_entry(dir, &name, &path)? {
                Err(unfit) => return Err((self.unfit)(&relative, unfit)),
                Ok(Opened::Dir(inner)) => {
                    (self.visit)(&relative, Entry::Dir)?;
                    self.dir(&inner, &relative)?;
                }
                Ok(Opened::File(mut file, mode)) => {
                    (self.visit)(&relative, Entry::File(&mut file, mode))?;
                }
            }
        }
        Ok(())
    }
}

enum Opened {
    Dir(OwnedFd),
    File(File, u32),
}

/// Opens `name` in `dir` by handle and says what it is; `path` names it in errors.
fn open_entry(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
) -> Result<Result<Opened, Unfit>, TrustError> {
    let fd = match rustix::fs::openat(dir, name, ENTRY, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => return Ok(Err(Unfit::Link)),
        // A socket, or a device without a driver, cannot be opened at all: say what it is,
        // from a look that decides nothing (nothing is opened through it).
        Err(error) => {
            return match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Symlink => Ok(Err(Unfit::Link)),
                    FileType::RegularFile | FileType::Directory => Err(io(path, error)),
                    _ => Ok(Err(Unfit::Special)),
                },
                Err(_) => Err(io(path, error)),
            };
        }
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io(path, e))?;
    Ok(match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => Ok(Opened::Dir(fd)),
        FileType::RegularFile => Ok(Opened::File(File::from(fd), stat.st_mode & 0o777)),
        FileType::Symlink => Err(Unfit::Link),
        _ => Err(Unfit::Special),
    })
}

/// The entries of `dir`, sorted, without `.` and `..`.
fn names(dir: &OwnedFd, path: &Path) -> Result<Vec<OsString>, TrustError> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(|e| io(path, e))? {
        let entry = entry.map_err(|e| io(path, e))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(OsStr::from_bytes(name.to_bytes()).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Reads the regular file `name` at the top of `dir` by handle, at most `max` bytes; `None`
/// when there is no such entry (or no `dir`).
///
/// # Errors
/// [`TrustError::Refused`] when it is a link, a special file or larger than `max`;
/// [`TrustError::Io`] when it cannot be read.
pub(crate) fn read_top(dir: &Path, name: &str, max: u64) -> Result<Option<Vec<u8>>, TrustError> {
    let path = dir.join(name);
    let dir = match rustix::fs::openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(error) => return Err(io(dir, error)),
    };
    let fd = match rustix::fs::openat(&dir, name, ENTRY, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err(refused(&path, LINK)),
        Err(error) => return Err(io(&path, error)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io(&path, e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(refused(&path, "is not a regular file"));
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TrustError::io(&path, &e))?;
    if bytes.len() as u64 > max {
        return Err(refused(&path, &format!("is larger than {max} bytes")));
    }
    Ok(Some(bytes))
}

/// What a plugin directory holds, by path relative to it: every directory, and every regular
/// file with its permission bits and the SHA-256 of its bytes.
type Listing = BTreeMap<PathBuf, Node>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { mode: u32, sha256: [u8; 32] },
}

/// What [`copy_plugin_dir`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Regular files copied.
    pub files: usize,
    /// Their bytes, in all.
    pub bytes: u64,
}

/// The refusal of a link, as every front end words it.
const LINK: &str = "is a symbolic link; plugins may not contain links";

/// Copies the plugin directory `from` into `to`, which must not exist, by handle: every entry
/// opened in its directory without following links, links and special files
/// refused, the entries in [`SKIPPED_NAMES`](crate::SKIPPED_NAMES) left out, private to the
/// owner: directories `0700`, files the owner's bits of the source (group, others, set-id and
/// sticky bits dropped). Each file is read once, from its descriptor; what is
/// written must hash to what was read, and once done, `to` is walked again and must hold
/// exactly what was copied.
///
/// # Errors
/// [`TrustError::Refused`] for a link, a special file, more than `max_bytes` in all, or a copy
/// that does not match what was read; [`TrustError::Io`] when something cannot be read or
/// written. What was written into `to` is left for the caller to remove.
///
/// # Security
/// Nothing outside `from` is read, whatever its author changes in it meanwhile: a file swapped
/// for a link is refused, never followed. A file whose content changes during the copy is
/// copied as read, once; callers that checked the directory before (its signature, its
/// manifest) check the copy again.
pub fn copy_plugin_dir(from: &Path, to: &Path, max_bytes: u64) -> Result<Copied, TrustError> {
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(to).map_err(|e| TrustError::io(to, &e))?;
    let target = rustix::fs::openat(
        CWD,
        to,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(to, e))?;
    let mut copier = Copier {
        from,
        to,
        target,
        max_bytes,
        bytes: 0,
        copied: Listing::new(),
    };
    walk(
        from,
        &|relative| relative.file_name().is_some_and(crate::is_skipped),
        &|relative, unfit| unfit_error(&from.join(relative), unfit),
        &mut |relative, entry| copier.copy(relative, entry),
    )?;
    let Copier { copied, bytes, .. } = copier;
    let landed = listing(to)?;
    if landed != copied {
        let differs: Vec<String> = copied
            .iter()
            .filter(|(path, node)| landed.get(*path) != Some(*node))
            .chain(
                landed
                    .iter()
                    .filter(|(path, _)| !copied.contains_key(*path)),
            )
            .map(|(path, _)| path.display().to_string())
            .collect();
        return Err(refused(
            to,
            &format!(
                "does not hold what was copied into it (differs: {})",
                differs.join(", ")
            ),
        ));
    }
    let files = copied
        .values()
        .filter(|node| matches!(node, Node::File { .. }))
        .count();
    Ok(Copied { files, bytes })
}

/// One copy in progress.
struct Copier<'a> {
    from: &'a Path,
    to: &'a Path,
    /// `to`, opened.
    target: OwnedFd,
    max_bytes: u64,
    /// Bytes copied so far.
    bytes: u64,
    copied: Listing,
}

impl Copier<'_> {
    fn copy(&mut self, relative: &Path, entry: Entry<'_>) -> Result<(), TrustError> {
        let node = match entry {
            Entry::Dir => {
                rustix::fs::mkdirat(&self.target, relative, Mode::from_raw_mode(0o700))
                    .map_err(|e| io(&self.to.join(relative), e))?;
                Node::Dir
            }
            Entry::File(source, mode) => {
                // Private to the owner like everything in the data directory: the owner's
                // bits of the source (its execute bit included), none for group or others.
                let mode = mode & 0o700;
                Node::File {
                    mode,
                    sha256: self.file(relative, source, mode)?,
                }
            }
        };
        self.copied.insert(relative.to_path_buf(), node);
        Ok(())
    }

    /// Copies `source` to `relative` in the target, hashing what it reads; then reads the copy
    /// back and checks that it hashes the same.
    fn file(
        &mut self,
        relative: &Path,
        source: &mut File,
        mode: u32,
    ) -> Result<[u8; 32], TrustError> {
        let read_from = self.from.join(relative);
        let written_to = self.to.join(relative);
        let created = rustix::fs::openat(
            &self.target,
            relative,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| io(&written_to, e))?;
        // The mode given at creation passes through the umask; the copy keeps the one given.
        rustix::fs::fchmod(&created, Mode::from_raw_mode(mode)).map_err(|e| io(&written_to, e))?;
        let mut copy = File::from(created);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = source
                .read(&mut buffer)
                .map_err(|e| TrustError::io(&read_from, &e))?;
            if read == 0 {
                break;
            }
            self.bytes += read as u64;
            if self.bytes > self.max_bytes {
                return Err(refused(
                    self.from,
                    &format!("is larger than {} MiB", self.max_bytes >> 20),
                ));
            }
            hasher.update(&buffer[..read]);
            copy.write_all(&buffer[..read])
                .map_err(|e| TrustError::io(&written_to, &e))?;
        }
        let read = digest_of(hasher);
        copy.rewind().map_err(|e| TrustError::io(&written_to, &e))?;
        if sha256(&mut copy, &written_to)? != read {
            return Err(refused(
                &written_to,
                &format!("does not hold what was read from {}", read_from.display()),
            ));
        }
        Ok(read)
    }
}

/// The refusal of an entry no plugin may hold.
fn unfit_error(path: &Path, unfit: Unfit) -> TrustError {
    match unfit {
        Unfit::Link => refused(path, LINK),
        Unfit::Special => refused(path, "is not a regular file or directory"),
    }
}

/// What `dir` holds, read by handle; links and special files refused.
fn listing(dir: &Path) -> Result<Listing, TrustError> {
    let mut listed = Listing::new();
    let unfit = |relative: &Path, unfit: Unfit| unfit_error(&dir.join(relative), unfit);
    walk(dir, &|_| false, &unfit, &mut |relative, entry| {
        let node = match entry {
            Entry::Dir => Node::Dir,
            Entry::File(file, mode) => Node::File {
                mode,
                sha256: sha256(file, &dir.join(relative))?,
            },
        };
        listed.insert(relative.to_path_buf(), node);
        Ok(())
    })?;
    Ok(listed)
}

/// The SHA-256 of what remains to be read from `file`; `path` names it in errors.
pub(crate) fn sha256(file: &mut File, path: &Path) -> Result<[u8; 32], TrustError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| TrustError::io(path, &e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(digest_of(hasher))
}

fn digest_of(hasher: Sha256) -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&hasher.finalize());
    digest
}

fn refused(path: &Path, reason: &str) -> TrustError {
    TrustError::Refused {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn io(path: &Path, error: Errno) -> TrustError {
    TrustError::io(path, &std::io::Error::from(error))
}
