//! The digest list: every file of a plugin directory with its SHA-256.

use std::collections::BTreeMap;
use std::path::Path;

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
        let files = hash_files(dir, is_skipped)?;
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
        // Python runs bytecode it finds in `__pycache__` beside a source whose time and size
        // match: such a file is never signed, so a signed plugin holding one is refused.
        let files = hash_files(dir, |name| is_skipped(name) && name != "__pycache__")?;
        let actual = DigestList { files };
        let mut problems = Vec::new();
        for (file, digest) in &self.files {
            match actual.files.get(file) {
                None => problems.push(format!("{file} is listed but missing")),
                Some(found) if found != digest => {
                    problems.push(format!("{file} was changed after signing"));
                }
                Some(_) => {}
            }
        }
        for file in actual.files.keys() {
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

/// Hashes every regular file under `dir` by handle (see `tree.rs`) but those `skipped` by
/// name and the digest list and its signature at the top.
fn hash_files(
    dir: &Path,
    skipped: fn(&std::ffi::OsStr) -> bool,
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
        if let Entry::File(file, _) = entry {
            let digest = tree::sha256(file, &path)?;
            files.insert(
                listed.to_string(),
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            );
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
