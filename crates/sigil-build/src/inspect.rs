use std::path::{Path, PathBuf};

use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use crate::BuildError;

/// The names a component imports and exports at its top level, in the order it lists them:
/// interfaces such as `sigil:plugin/tool@0.1.0` and `wasi:cli/environment@0.2.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInterfaces {
    imports: Vec<String>,
    exports: Vec<String>,
}

impl ComponentInterfaces {
    /// What the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// What the component exports.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }
}

/// Validates the component at `path` and lists its top-level imports and exports.
///
/// # Errors
///
/// [`BuildError::Io`] if the file cannot be read, [`BuildError::Invalid`] if it is not a valid
/// component.
pub fn inspect_component(path: &Path) -> Result<ComponentInterfaces, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| BuildError::io("cannot read", path, e))?;
    validate(&bytes, path)?;
    let invalid = |e: wasmparser::BinaryReaderError| BuildError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    };

    let mut interfaces = ComponentInterfaces {
        imports: Vec::new(),
        exports: Vec::new(),
    };
    // Nested modules and components come back from the same parser, each between its own
    // `Version` and `End`; only the outermost level (depth 1) is the component's interface.
    let mut depth = 0_usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    interfaces
                        .imports
                        .push(import.map_err(invalid)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    interfaces
                        .exports
                        .push(export.map_err(invalid)?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(interfaces)
}

/// Validates `bytes` as a component with the component model's features; `path` names it in
/// the error.
pub(crate) fn validate(bytes: &[u8], path: &Path) -> Result<(), BuildError> {
    if !Parser::is_component(bytes) {
        return Err(BuildError::Invalid {
            path: PathBuf::from(path),
            message: "not a webassembly component".to_owned(),
        });
    }
    Validator::new_with_features(WasmFeatures::default() | WasmFeatures::COMPONENT_MODEL)
        .validate_all(bytes)
        .map(drop)
        .map_err(|e| BuildError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}
