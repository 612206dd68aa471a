//! The digest list: every file of a plugin directory with its SHA-256.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::TrustError;

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
    /// top and the entries named in [`SKIPPED_NAMES`].
    ///
    /// # Errors
    /// [`TrustError::Unsignable`] for a symbolic link (links are refused whether or not they
    /// lead out of the directory), a special file, or a name that is not UTF-8 or holds a
    /// newline or backslash; [`TrustError::Io`] when something cannot be read.
    pub fn compute(dir: &Path) -> Result<DigestList, TrustError> {
        let mut files = BTreeMap::new();
        walk(dir, "", &mut files, is_skipped, &mut |path, _| {
            sha256_file(path)
        })?;
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
        let mut files = BTreeMap::new();
        walk(dir, "", &mut files, checked_skip, &mut |path, _| {
            sha256_file(path)
        })?;
        self.compare(dir, &files)
    }

    /// Copies the plugin in `from` into the empty directory `to`, hashing the bytes as they are
    /// written, and checks the copy against this list as [`DigestList::check`] does. Only
    /// files are copied (read-only, keeping their execute bits); the digest list and its
    /// signature are left out, and so is every name [`DigestList::check`] skips.
    ///
    /// What the copy holds is exactly what was hashed: a file edited in `from` while (or after)
    /// it is copied either fails the check or does not reach the copy.
    ///
    /// # Errors
    /// [`TrustError::Tampered`] naming every file that differs, with the copy left incomplete
    /// for the caller to remove; [`TrustError::Io`] when a file cannot be read or written; the
    /// errors of [`DigestList::compute`].
    pub fn copy_verified(&self, from: &Path, to: &Path) -> Result<(), TrustError> {
        let mut files = BTreeMap::new();
        walk(from, "", &mut files, checked_skip, &mut |path, relative| {
            copy_hashed(path, &to.join(relative))
        })?;
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

/// Visits every regular file under `dir` (refusing links and special files), recording what
/// `file` returns for it (its digest) under its relative path.
fn walk(
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, String>,
    skipped: fn(&std::ffi::OsStr) -> bool,
    file: &mut dyn FnMut(&Path, &str) -> Result<String, TrustError>,
) -> Result<(), TrustError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TrustError::io(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrustError::io(dir, &e))?;
        let path = entry.path();
        let name = entry.file_name();
        if skipped(&name) {
            continue;
        }
        let unsignable = |reason: &str| TrustError::Unsignable {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let name = name
            .to_str()
            .ok_or_else(|| unsignable("the name is not UTF-8, so it cannot be listed"))?;
        if name.contains(['\n', '\r', '\\']) {
            return Err(unsignable(
                "the name holds a newline or backslash, so it cannot be listed",
            ));
        }
        let relative = format!("{prefix}{name}");
        if prefix.is_empty() && (name == DIGESTS_FILE || name == SIGNATURE_FILE) {
            continue;
        }
        let kind = entry.file_type().map_err(|e| TrustError::io(&path, &e))?;
        if kind.is_symlink() {
            return Err(unsignable(
                "is a symbolic link; a signed plugin may not contain links",
            ));
        } else if kind.is_dir() {
            walk(&path, &format!("{relative}/"), files, skipped, file)?;
        } else if kind.is_file() {
            let digest = file(&path, &relative)?;
            files.insert(relative, digest);
        } else {
            return Err(unsignable("is not a regular file or directory"));
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, TrustError> {
    let mut file = std::fs::File::open(path).map_err(|e| TrustError::io(path, &e))?;
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
    Ok(hex(&hasher.finalize()))
}

/// Copies `from` to the new file `to` (creating its directory), read-only but for `from`'s
/// execute bits, and returns the SHA-256 of the bytes written.
fn copy_hashed(from: &Path, to: &Path) -> Result<String, TrustError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut source = std::fs::File::open(from).map_err(|e| TrustError::io(from, &e))?;
    let mode = source
        .metadata()
        .map_err(|e| TrustError::io(from, &e))?
        .permissions()
        .mode();
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| TrustError::io(parent, &e))?;
    }
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444 | (mode & 0o111))
        .open(to)
        .map_err(|e| TrustError::io(to, &e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = source
            .read(&mut buffer)
            .map_err(|e| TrustError::io(from, &e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        target
            .write_all(&buffer[..read])
            .map_err(|e| TrustError::io(to, &e))?;
    }
    target.sync_all().map_err(|e| TrustError::io(to, &e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
