//! Validation of host paths before they reach bubblewrap's argv.

use std::path::{Component, Path, PathBuf};

use crate::SandboxError;

/// Host trees that are never bound into a sandbox from a grant, at or below.
const FORBIDDEN_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Checks a manifest-derived host path and returns its canonical form, the one to bind.
///
/// The path must be absolute and already normalised (no `.`, no `..`, no repeated or trailing
/// `/`), valid UTF-8 without NUL or other control characters, and must not be `/` or lie at or
/// below `/proc`, `/sys` or `/dev`. It must exist; symlinks are then resolved and the result is
/// checked again, so a link cannot lead a grant to `/` or into `/proc`.
///
/// # Errors
///
/// [`SandboxError::InvalidPath`] naming the path and the rule it broke, or that it could not be
/// resolved.
///
/// # Security
///
/// Every path that ends up in a `--bind`/`--ro-bind` argument goes through here; the argv is
/// built from the returned canonical path, never from the original text. A path resolved here
/// is resolved again at every spawn: hand the sandbox a directory held open
/// ([`HostDir::Held`](crate::HostDir::Held)) where what the path names must not change.
pub fn validate_path(p: &Path) -> Result<PathBuf, SandboxError> {
    let invalid = |reason: &str| SandboxError::InvalidPath {
        path: p.to_string_lossy().into_owned(),
        reason: reason.to_owned(),
    };
    check_text(p)?;
    let canonical = std::fs::canonicalize(p)
        .map_err(|e| invalid(&format!("cannot be resolved on the host: {e}")))?;
    let Some(canonical_text) = canonical.to_str() else {
        return Err(invalid("resolves to a path that is not valid UTF-8"));
    };
    if canonical_text.chars().any(char::is_control) {
        return Err(invalid("resolves to a path with a control character"));
    }
    check_tree(canonical_text)
        .map_err(|reason| invalid(&format!("resolves to {canonical_text:?}, which {reason}")))?;
    Ok(canonical)
}

/// The rules of [`validate_path`] that need no file system: absolute, normalised, valid UTF-8
/// without control characters, not `/` and not at or below `/proc`, `/sys` or `/dev`. For the
/// path of a directory held open, which is bound by its handle and never resolved again.
pub(crate) fn check_text(p: &Path) -> Result<(), SandboxError> {
    let invalid = |reason: &str| SandboxError::InvalidPath {
        path: p.to_string_lossy().into_owned(),
        reason: reason.to_owned(),
    };
    let Some(text) = p.to_str() else {
        return Err(invalid("not valid UTF-8"));
    };
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("contains a NUL or control character"));
    }
    if !text.starts_with('/') {
        return Err(invalid("not absolute"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(invalid("contains `..`"));
    }
    if text
        .split('/')
        .skip(1)
        .any(|part| part.is_empty() || part == ".")
    {
        if text == "/" {
            return Err(invalid("is the root directory"));
        }
        return Err(invalid(
            "not normalised (empty or `.` component, or trailing `/`)",
        ));
    }
    check_tree(text).map_err(|reason| invalid(&reason))
}

fn check_tree(text: &str) -> Result<(), String> {
    if text == "/" {
        return Err("is the root directory".to_owned());
    }
    for tree in FORBIDDEN_TREES {
        if is_at_or_below(text, tree) {
            return Err(format!("lies at or below {tree}, which is never bound"));
        }
    }
    Ok(())
}

/// Whether `path` is `tree` or below it (component-wise, so `/devices` is not below `/dev`).
pub(crate) fn is_at_or_below(path: &str, tree: &str) -> bool {
    path == tree
        || path
            .strip_prefix(tree)
            .is_some_and(|rest| rest.starts_with('/'))
}
