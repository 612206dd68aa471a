//! Reaching a path by handle: one component at a time, each looked up in the directory
//! already opened, never following a link.
//!
//! Every function here blocks (it makes system calls on paths the caller chose); the plugin
//! runs them on the blocking pool.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};
use sigil_runtime::ToolError;

/// How each component is looked up: the object itself, whatever it is, without opening it
/// (a FIFO does not wait for a writer, a device is not touched) and without following a link.
const LOOKUP: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// What a walk found.
#[derive(Debug)]
pub(super) enum Step {
    /// The path leads to this object; no link was followed on the way.
    Reached(Opened),
    /// A symbolic link stands on the path. `target` is the whole path with the link replaced by
    /// what it points to, normalised: it must be authorised, then walked from the start.
    Link {
        /// Where the path leads through the link.
        target: PathBuf,
    },
}

/// An object reached by [`walk`], held by an `O_PATH` handle: nothing has been read from it.
#[derive(Debug)]
pub(super) struct Opened {
    path: PathBuf,
    /// The directory the object was found in, and its name there; `None` for `/`.
    parent: Option<(OwnedFd, OsString)>,
    handle: OwnedFd,
    stat: Stat,
}

/// What kind of object a path leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl Kind {
    fn of(stat: &Stat) -> Kind {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            FileType::Unknown => Kind::Unknown,
        }
    }

    /// The name `list_dir` reports.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char_device",
            Kind::BlockDevice => "block_device",
            Kind::Unknown => "unknown",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a named pipe (FIFO)",
            Kind::Socket => "a socket",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Unknown => "a file of unknown kind",
        }
    }
}

/// `path` with `.`, `..`, repeated and trailing separators resolved lexically. `path` is
/// absolute; so is the result. `..` at `/` stays at `/`.
pub(super) fn normalised(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// Walks the normalised absolute `path` from `/`, opening each component in the directory
/// opened before it with `O_PATH | O_NOFOLLOW`. Stops at the first symbolic link and says
/// where it leads ([`Step::Link`]); otherwise returns the object the path names.
///
/// # Errors
/// A component is missing, or is not a directory where one is needed, or cannot be opened.
pub(super) fn walk(path: &Path) -> Result<Step, ToolError> {
    let names: Vec<&OsStr> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let root = PathBuf::from("/");
    let mut dir = rustix::fs::openat(CWD, "/", LOOKUP | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| failed(&root, e))?;
    if names.is_empty() {
        let stat = rustix::fs::fstat(&dir).map_err(|e| failed(&root, e))?;
        return Ok(Step::Reached(Opened {
            path: root,
            parent: None,
            handle: dir,
            stat,
        }));
    }
    let mut here = root;
    for (index, name) in names.iter().enumerate() {
        let at = here.join(name);
        let handle =
            rustix::fs::openat(&dir, *name, LOOKUP, Mode::empty()).map_err(|e| failed(&at, e))?;
        let stat = rustix::fs::fstat(&handle).map_err(|e| failed(&at, e))?;
        let last = index + 1 == names.len();
        match Kind::of(&stat) {
            Kind::Symlink => {
                // Read from the handle, not by name: this is the link that was looked up.
                let target =
                    rustix::fs::readlinkat(&handle, "", Vec::new()).map_err(|e| failed(&at, e))?;
                let mut next = here.join(OsStr::from_bytes(target.as_bytes()));
                for rest in &names[index + 1..] {
                    next.push(rest);
                }
                return Ok(Step::Link {
                    target: normalised(&next),
                });
            }
            _ if last => {
                return Ok(Step::Reached(Opened {
                    path: at,
                    parent: Some((dir, name.to_os_string())),
                    handle,
                    stat,
                }));
            }
            Kind::Dir => {
                dir = handle;
                here = at;
            }
            other => {
                return Err(ToolError::Failed(format!(
                    "{} is {}, not a directory",
                    at.display(),
                    other.described()
                )));
            }
        }
    }
    Err(ToolError::Failed(format!(
        "{}: nothing to open",
        path.display()
    )))
}

impl Opened {
    /// The path walked to it.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the object for reading: exactly the one walked to, and only if it is a regular
    /// file.
    ///
    /// # Errors
    /// It is anything else (a directory, a FIFO, a device, a socket), or it was replaced
    /// between the walk and this open.
    pub(super) fn open_file(&self) -> Result<File, ToolError> {
        self.require(Kind::File)?;
        let Some((dir, name)) = &self.parent else {
            return Err(self.refused(Kind::Dir));
        };
        // By name once more, but in the directory already held and without following a link,
        // and then checked to be the same object: a swap in between is refused, never read.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name.as_os_str(), flags, Mode::empty())
            .map_err(|e| failed(&self.path, e))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| failed(&self.path, e))?;
        if (stat.st_dev, stat.st_ino) != (self.stat.st_dev, self.stat.st_ino)
            || Kind::of(&stat) != Kind::File
        {
            return Err(ToolError::Failed(format!(
                "{} was replaced while it was being opened; nothing was read",
                self.path.display()
            )));
        }
        Ok(File::from(fd))
    }

    /// Lists the directory walked to: each entry's name, kind and size, links and special
    /// files described, never followed or opened.
    ///
    /// # Errors
    /// It is not a directory, or cannot be read.
    pub(super) fn entries(&self) -> Result<Vec<(String, Kind, u64)>, ToolError> {
        self.require(Kind::Dir)?;
        // `.` in the directory held: the same directory, whatever its name leads to now.
        let fd = rustix::fs::openat(
            &self.handle,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed(&self.path, e))?;
        let dir = rustix::fs::Dir::new(fd).map_err(|e| failed(&self.path, e))?;
        let mut listed = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| failed(&self.path, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let (kind, size) =
                match rustix::fs::statat(&self.handle, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => (Kind::of(&stat), u64::try_from(stat.st_size).unwrap_or(0)),
                    Err(_) => (Kind::Unknown, 0),
                };
            let name = OsStr::from_bytes(name.to_bytes())
                .to_string_lossy()
                .into_owned();
            listed.push((name, kind, size));
        }
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listed)
    }

    fn require(&self, wanted: Kind) -> Result<(), ToolError> {
        match Kind::of(&self.stat) {
            kind if kind == wanted => Ok(()),
            kind => Err(self.refused(kind)),
        }
    }

    /// Why an object of `kind` is not what the tool wanted.
    fn refused(&self, kind: Kind) -> ToolError {
        let shown = self.path.display();
        ToolError::Failed(match kind {
            Kind::Dir => format!("{shown} is a directory; list it with `fs/list_dir`"),
            Kind::File => format!("{shown} is a regular file, not a directory"),
            kind => format!(
                "{shown} is {}; the fs tools open only regular files and directories",
                kind.described()
            ),
        })
    }
}

fn failed(path: &Path, error: rustix::io::Errno) -> ToolError {
    ToolError::Failed(format!(
        "{}: {}",
        path.display(),
        std::io::Error::from(error)
    ))
}
