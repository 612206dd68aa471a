//! `fs`: read text files and list directories.
//!
//! # Security
//! Every access asks the enforcer for `fs.read:<path>` twice when needed: first for the path
//! as given (normalised, without touching the disk), then for the path after symlinks are
//! resolved, so a link inside a granted directory cannot lead outside it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sigil_runtime::{Builtin, Call, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait};

const MAX_BYTES: u64 = 256 * 1024;

/// The `fs` builtin.
pub fn plugin() -> Builtin {
    Builtin {
        manifest: include_str!("plugin.toml"),
        plugin: std::sync::Arc::new(Files),
    }
}

#[derive(Debug)]
struct Files;

#[async_trait]
impl ToolPlugin for Files {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![
            ToolDescriptor {
                name: "read_text".into(),
                description: "Read a UTF-8 text file. Relative paths are resolved against the working directory.".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "minLength": 1, "description": "file to read" },
                        "max_bytes": { "type": "integer", "minimum": 1, "maximum": MAX_BYTES, "description": "read at most this many bytes (default 65536)" }
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "text": { "type": "string" },
                        "bytes": { "type": "integer" },
                        "truncated": { "type": "boolean" }
                    },
                    "required": ["path", "text", "bytes", "truncated"]
                })),
                steps: Steps::default(),
            },
            ToolDescriptor {
                name: "list_dir".into(),
                description: "List a directory's entries with their kind and size.".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": { "path": { "type": "string", "minLength": 1 } },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                output_schema: None,
                steps: Steps::default(),
            },
        ]
    }

    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError> {
        let path = input
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = authorized_path(call, path).await?;
        match call.tool() {
            "read_text" => {
                let max = input
                    .get("max_bytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(64 * 1024);
                read_text(&path, max)
            }
            "list_dir" => list_dir(&path),
            other => Err(ToolError::Failed(format!("no tool `{other}`"))),
        }
    }
}

/// Authorises `fs.read` for the path as given and, if it differs, for its real location.
async fn authorized_path(call: &Call, raw: &str) -> Result<PathBuf, ToolError> {
    let absolute = std::path::absolute(raw)
        .map_err(|e| ToolError::InvalidInput(format!("path `{raw}`: {e}")))?;
    let text = utf8(&absolute)?;
    let granted = call.authorize(&format!("fs.read:{text}")).await?;
    let real =
        std::fs::canonicalize(&absolute).map_err(|e| ToolError::Failed(format!("{text}: {e}")))?;
    let real = format!("fs.read:{}", utf8(&real)?);
    // The first check was on the lexically normalised path; if a symlink leads elsewhere,
    // the real location must be allowed too.
    if granted.as_str() != real {
        call.authorize(&real).await?;
    }
    Ok(PathBuf::from(&real["fs.read:".len()..]))
}

fn utf8(path: &Path) -> Result<String, ToolError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| ToolError::InvalidInput(format!("path {} is not UTF-8", path.display())))
}

fn read_text(path: &Path, max: u64) -> Result<Value, ToolError> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| ToolError::Failed(format!("{shown}: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    file.take(max.min(MAX_BYTES))
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(format!("{shown}: {e}")))?;
    let truncated = size > bytes.len() as u64;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // A cut may fall inside a character; keep what is valid.
        Err(e) if truncated => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
        Err(_) => return Err(ToolError::Failed(format!("{shown} is not UTF-8 text"))),
    };
    Ok(json!({ "path": shown.to_string(), "bytes": size, "truncated": truncated, "text": text }))
}

fn list_dir(path: &Path) -> Result<Value, ToolError> {
    let shown = path.display();
    let entries =
        std::fs::read_dir(path).map_err(|e| ToolError::Failed(format!("{shown}: {e}")))?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ToolError::Failed(format!("{shown}: {e}")))?;
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => "symlink",
            Ok(t) if t.is_dir() => "dir",
            Ok(_) => "file",
            Err(_) => "unknown",
        };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        listed.push(
            json!({ "name": entry.file_name().to_string_lossy(), "kind": kind, "bytes": size }),
        );
    }
    listed.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({ "path": shown.to_string(), "entries": listed }))
}
