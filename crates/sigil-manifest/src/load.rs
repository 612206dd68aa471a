//! Finding and reading a plugin directory's manifest: the only I/O in this crate.

use std::io::Read;
use std::path::Path;

use crate::diagnostic::ManifestErrors;
use crate::validated::ValidatedManifest;
use crate::{Format, Rules, parse_str_with};

/// Manifest file names, in order of preference.
pub const MANIFEST_FILES: &[(&str, Format)] = &[
    ("plugin.toml", Format::Toml),
    ("plugin.yaml", Format::Yaml),
    ("plugin.yml", Format::Yaml),
];

/// Largest manifest read, in bytes. Manifests come from untrusted packages.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Reads and validates the manifest of the plugin in `dir`; see [`crate::load_dir`].
pub(crate) fn load_dir(dir: &Path, rules: &Rules<'_>) -> Result<ValidatedManifest, ManifestErrors> {
    let present: Vec<(String, Format)> = MANIFEST_FILES
        .iter()
        // Present whatever it is: a link or special file named like a manifest is refused
        // when read, not passed over.
        .filter(|(name, _)| dir.join(name).symlink_metadata().is_ok())
        .map(|(name, format)| (dir.join(name).display().to_string(), *format))
        .collect();
    let (file, format) = match present.as_slice() {
        [] => {
            return Err(ManifestErrors::whole_file(
                dir.display().to_string(),
                format!(
                    "no manifest in `{}`: expected plugin.toml (or plugin.yaml)",
                    dir.display()
                ),
            ));
        }
        [one] => one.clone(),
        [first, second, ..] => {
            return Err(ManifestErrors::whole_file(
                second.0.clone(),
                format!(
                    "more than one manifest in `{}`: `{}` and `{}`; keep only one",
                    dir.display(),
                    first.0,
                    second.0
                ),
            ));
        }
    };
    let text = read_limited(Path::new(&file))
        .map_err(|message| ManifestErrors::whole_file(file.clone(), message))?;
    parse_str_with(&text, format, &file, rules)
}

/// Reads the manifest without following a link (a plugin's author could point it at any file
/// the host can read, and parse errors quote the text) and only if it is a regular file (a
/// FIFO would wait for a writer).
fn read_limited(path: &Path) -> Result<String, String> {
    use rustix::fs::{CWD, FileType, Mode, OFlags};
    let describe = |e: std::io::Error| format!("cannot read the manifest: {}", lowercase(&e));
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(CWD, path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => {
            return Err(
                "the manifest is a symbolic link; plugins may not contain links".to_string(),
            );
        }
        Err(error) => return Err(describe(error.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| describe(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err("the manifest is not a regular file".to_string());
    }
    let file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(describe)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "the manifest is larger than {} KiB",
            MAX_MANIFEST_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the manifest is not valid utf-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn lowercase(error: &std::io::Error) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}
