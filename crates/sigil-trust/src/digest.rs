//! The digest list: every file of a plugin directory with its SHA-256.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::TrustError;
use crate::tree::{self, Entry, Unfit};

/// The digest list's file name, at the top of the plugin directory.
pub const DIGESTS_FILE: &str = "SIGIL-DIGESTS";

/// The signature's file name, at the top of the plugin directory.
pub const SIGNATURE_FILE: &str = "SIGIL-DIGESTS.minisig";

/// Names left out of a plugin wherever they appear: they are build and tool leftovers, and
/// `sigil plugin install` does not copy them either, so a signed list never names a file an
/// installed copy lacks.
pub const SKIPPED_NAMES: &[&str] = &[".git", "target", "__pycache__"];

/// Whether an entry called `name` is left out of a plugin (see [`SKIPPED_NAMES`]).
pub fn is_skipped(name: &std::ffi::OsStr) -> bool {
    SKIPPED_NAMES.iter().any(|skipped| name == *skipped)
}

/// The files of a plugin directory and their SHA-256 digests, by relative path (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestList {
    files: BTreeMap<String, String>,
}

impl DigestList {
    /// Hashes every regular file under `dir`, except the digest list and its signature at the
    /// top and the entries named in [`SKIPPED_NAMES`]. Each entry is opened by handle, never
    /// through a link, and hashed from what was opened.
    ///
    /// # Errors
    /// [`TrustError::Unsignable`] for a symbolic link (links are refused whether or not they
    /// lead out of the directory), a special file, or a name that is not UTF-8 or holds a
    /// newline or backslash; [`TrustError::Io`] when something cannot be read.
    pub fn compute(dir: &Path) -> Result<DigestList, TrustError> {
        let files = hash_files(dir, is_skipped, None)?;
        Ok(DigestList { files })
    }

    /// Parses a digest list; `path` names it in errors.
    ///
    /// # Errors
    /// [`TrustError::BadDigestList`] naming the line: not `<64 hex digits>  <path>`, a path
    /// that is absolute, holds `.` or `..` or empty components, names the signature files, or
    /// is listed twice.
    pub fn parse(text: &str, path: &Path) -> Result<DigestList, TrustError> {
        let mut files = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let bad = |message: String| TrustError::BadDigestList {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let (digest, file) = line
                .split_once("  ")
                .ok_or_else(|| bad("expected `<sha256 hex>  <path>`".into()))?;
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(format!(
                    "`{digest}` is not a SHA-256 digest in lowercase hex"
                )));
            }
            let valid = !file.is_empty()
                && !file.starts_with('/')
                && !file.contains('\\')
                && file
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if !valid {
                return Err(bad(format!(
                    "`{file}` is not a relative path inside the plugin"
                )));
            }
            if file == DIGESTS_FILE || file == SIGNATURE_FILE {
                return Err(bad(format!("`{file}` cannot list itself")));
            }
            if files.insert(file.to_string(), digest.to_string()).is_some() {
                return Err(bad(format!("`{file}` is listed twice")));
            }
        }
        Ok(DigestList { files })
    }

    /// The list as written to `SIGIL-DIGESTS`: sorted by path, one `<digest>  <path>` line each.
    pub fn render(&self) -> String {
        self.files
            .iter()
            .map(|(file, digest)| format!("{digest}  {file}\n"))
            .collect()
    }

    /// Whether `path` (relative, `/`-separated) is listed.
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// How many files are listed.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is listed.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Each listed path with its digest, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(f, d)| (f.as_str(), d.as_str()))
    }

    /// Checks the files under `dir` against this list: every listed file present with its
    /// digest, and no other file (the signature files and [`SKIPPED_NAMES`] aside, but for
    /// `__pycache__`: bytecode there would run in place of the signed sources).
    ///
    /// # Errors
    /// [`TrustError::Tampered`] naming every file that changed, is missing or was added; the
    /// errors of [`DigestList::compute`].
    pub fn check(&self, dir: &Path) -> Result<(), TrustError> {
        let files = hash_files(dir, checked_skip, None)?;
        self.compare(dir, &files)
    }

    /// Copies the plugin in `from` into the empty directory `to`, by handle as
    /// [`DigestList::check`] reads it, hashing the bytes as they are read, and checks the copy
    /// against this list as [`DigestList::check`] does. Only directories and files are copied
    /// (private to the owner, files read-only but for the owner's execute bit); the digest
    /// list and its signature are left out, and so is every name [`DigestList::check`] skips.
    ///
    /// What the copy holds is exactly what was hashed: a file edited in `from` while (or after)
    /// it is copied either fails the check or does not reach the copy.
    ///
    /// # Errors
    /// [`TrustError::Tampered`] naming every file that differs, with the copy left incomplete
    /// for the caller to remove; [`TrustError::Unsignable`] for a link or special file;
    /// [`TrustError::Io`] when a file cannot be read or written.
    pub fn copy_verified(&self, from: &Path, to: &Path) -> Result<(), TrustError> {
        let files = hash_files(from, checked_skip, Some(to))?;
        self.compare(from, &files)
    }

    /// Checks `bytes`, read from the listed file `path` (relative, `/`-separated) of the plugin
    /// in `dir`, against its signed digest: for a tier that reads a file once and runs what it
    /// read.
    ///
    /// # Errors
    /// [`TrustError::Tampered`] when `path` is not listed or its bytes differ from the signed
    /// ones.
    pub fn check_file(&self, dir: &Path, path: &str, bytes: &[u8]) -> Result<(), TrustError> {
        let problem = match self.files.get(path) {
            None => format!("{path} is not in the signed digest list"),
            Some(digest) if *digest != hex(&Sha256::digest(bytes)) => {
                format!("{path} was changed after signing")
            }
            Some(_) => return Ok(()),
        };
        Err(TrustError::Tampered {
            dir: dir.to_path_buf(),
            problems: vec![problem],
        })
    }

    /// The differences between this list and the files found in `dir`.
    fn compare(&self, dir: &Path, actual: &BTreeMap<String, String>) -> Result<(), TrustError> {
        let mut problems = Vec::new();
        for (file, digest) in &self.files {
            match actual.get(file) {
                None => problems.push(format!("{file} is listed but missing")),
                Some(found) if found != digest => {
                    problems.push(format!("{file} was changed after signing"));
                }
                Some(_) => {}
            }
        }
        for file in actual.keys() {
            if file.split('/').any(|part| part == "__pycache__") {
                problems.push(format!(
                    "{file} is bytecode, which is never signed: delete the __pycache__ directories"
                ));
            } else if !self.files.contains_key(file) {
                problems.push(format!("{file} was added after signing"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TrustError::Tampered {
                dir: dir.to_path_buf(),
                problems,
            })
        }
    }
}

/// The names a check skips: [`SKIPPED_NAMES`] but `__pycache__`. Python runs bytecode it finds
/// in `__pycache__` beside a source whose time and size match: such a file is never signed, so
/// a signed plugin holding one is refused.
fn checked_skip(name: &std::ffi::OsStr) -> bool {
    is_skipped(name) && name != "__pycache__"
}

/// Creates the new file `path` with `mode`, never through a link placed there.
fn new_file(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes every regular file under `dir` by handle (see `tree.rs`) but those `skipped` by
/// name and the digest list and its signature at the top. With `copy_to`, each directory and
/// file is also written there as it is read: directories `0700`, files read-only to their
/// owner but for the owner's execute bit, created new and never through a link.
fn hash_files(
    dir: &Path,
    skipped: fn(&std::ffi::OsStr) -> bool,
    copy_to: Option<&Path>,
) -> Result<BTreeMap<String, String>, TrustError> {
    let mut files = BTreeMap::new();
    let skip = |relative: &Path| {
        relative.file_name().is_some_and(skipped)
            || relative == Path::new(DIGESTS_FILE)
            || relative == Path::new(SIGNATURE_FILE)
    };
    let unfit = |relative: &Path, unfit: Unfit| TrustError::Unsignable {
        path: dir.join(relative),
        reason: match unfit {
            Unfit::Link => "is a symbolic link; a signed plugin may not contain links",
            Unfit::Special => "is not a regular file or directory",
        }
        .to_string(),
    };
    tree::walk(dir, &skip, &unfit, &mut |relative, entry| {
        let path = dir.join(relative);
        let unsignable = |reason: &str| TrustError::Unsignable {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let listed = relative
            .to_str()
            .ok_or_else(|| unsignable("the name is not UTF-8, so it cannot be listed"))?;
        if listed.contains(['\n', '\r', '\\']) {
            return Err(unsignable(
                "the name holds a newline or backslash, so it cannot be listed",
            ));
        }
        let target = copy_to.map(|to| to.join(relative));
        match entry {
            Entry::Dir => {
                if let Some(target) = &target {
                    let mut builder = std::fs::DirBuilder::new();
                    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                    builder
                        .create(target)
                        .map_err(|e| TrustError::io(target, &e))?;
                }
            }
            Entry::File(file, mode) => {
                let mut copy = match &target {
                    Some(target) => Some(
                        new_file(target, 0o400 | (mode & 0o100))
                            .map_err(|e| TrustError::io(target, &e))?,
                    ),
                    None => None,
                };
                let mut hasher = Sha256::new();
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let read = file
                        .read(&mut buffer)
                        .map_err(|e| TrustError::io(&path, &e))?;
                    if read == 0 {
                        break;
                    }
                    hasher.update(&buffer[..read]);
                    if let (Some(copy), Some(target)) = (&mut copy, &target) {
                        copy.write_all(&buffer[..read])
                            .map_err(|e| TrustError::io(target, &e))?;
                    }
                }
                if let (Some(copy), Some(target)) = (&copy, &target) {
                    copy.sync_all().map_err(|e| TrustError::io(target, &e))?;
                }
                files.insert(listed.to_string(), hex(&hasher.finalize()));
            }
        }
        Ok(())
    })?;
    Ok(files)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_named() {
        let cases = [
            ("abc  x\n", 1, "not a SHA-256"),
            (
                &format!("{}  /etc/passwd\n", "0".repeat(64)),
                1,
                "relative path",
            ),
            (&format!("{}  a/../b\n", "0".repeat(64)), 1, "relative path"),
            (
                &format!("{z}  a\n{z}  a\n", z = "0".repeat(64)),
                2,
                "listed twice",
            ),
            (
                &format!("{}  SIGIL-DIGESTS\n", "0".repeat(64)),
                1,
                "cannot list itself",
            ),
            ("no separator\n", 1, "expected"),
        ];
        for (text, line, expected) in cases {
            match DigestList::parse(text, Path::new("SIGIL-DIGESTS")) {
                Err(TrustError::BadDigestList {
                    line: found,
                    message,
                    ..
                }) => {
                    assert_eq!(found, line, "{text}");
                    assert!(message.contains(expected), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
