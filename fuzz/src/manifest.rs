//! The manifest properties: no panic; every error is located inside the text; a manifest that
//! validates reads back to itself from its canonical form.

use sigil_manifest::{Format, ManifestErrors, ValidatedManifest, parse_str};

const FILE: &str = "plugins/fuzz/plugin";

/// Parses and validates `data` as a manifest in `format`, and checks the properties.
pub fn check(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else {
        // `load_dir` refuses a manifest that is not UTF-8 before parsing.
        return;
    };
    match parse_str(text, format, FILE) {
        Ok(manifest) => round_trip(&manifest, format),
        Err(errors) => located(text, &errors),
    }
}

/// Every diagnostic names the file and a line and column that exist in `text`, and says
/// what is wrong; none is an internal inconsistency.
fn located(text: &str, errors: &ManifestErrors) {
    assert!(!errors.is_empty(), "an error without diagnostics");
    let lines: Vec<&str> = text.split('\n').collect();
    for d in errors {
        assert_eq!(d.file, FILE, "{d}");
        assert!(
            !d.message.trim().is_empty(),
            "a diagnostic without a message: {d:?}"
        );
        assert!(
            !d.message.contains("internal error"),
            "validation disagrees with loading: {d}"
        );
        let line = usize::try_from(d.line).unwrap_or(usize::MAX);
        assert!(
            (1..=lines.len()).contains(&line),
            "line {} of a {}-line text: {d}",
            d.line,
            lines.len()
        );
        let width = lines[line - 1].chars().count();
        let column = usize::try_from(d.column).unwrap_or(usize::MAX);
        assert!(
            (1..=width + 1).contains(&column),
            "column {} of a line {width} characters long: {d}",
            d.column
        );
    }
}

/// The canonical form of a valid manifest (what `sigil plugin inspect` shows) is itself a
/// valid manifest, and it means the same.
fn round_trip(manifest: &ValidatedManifest, format: Format) {
    let text = match format {
        // JSON is YAML, so the canonical JSON must read back as a YAML manifest.
        Format::Yaml => manifest.to_json().to_string(),
        Format::Toml => match toml::to_string(manifest) {
            Ok(text) => text,
            // TOML cannot say everything JSON can (a `null` in a config schema); nothing to
            // compare then.
            Err(_) => return,
        },
    };
    match parse_str(&text, format, FILE) {
        Ok(again) => assert_eq!(
            &again, manifest,
            "the canonical form reads back differently:\n{text}"
        ),
        Err(errors) => panic!("the canonical form does not validate:\n{text}\n{errors}"),
    }
}
